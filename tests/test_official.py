"""The baselines' official checkpoints: Restormer's ``{"params": ...}`` .pth (WithBias and BiasFree
norms) and PromptIR's Lightning .ckpt, built here from moewir's own modules with the official
names and layouts written out as facts, then loaded, converted and refused when they are bad.
(The comparison with the official code itself is ``bench/official_parity.py``, in
docs/evaluation.md.)"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import moewir
from moewir.cli.main import main
from moewir.data import read_image, write_image
from moewir.inference import Restorer
from moewir.models import build_from_weights, convert_weights, read_metadata
from moewir.models.layers import LayerNorm2d
from moewir.models.official import LAYOUTS
from moewir.models.promptir import PromptGeneration
from moewir.models.registry import build_model

BENCH = Path(__file__).resolve().parent.parent / "bench"
TINY = dict(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 2, 2))
TINY_PROMPT = dict(TINY, prompt_dims=(4, 8, 8), prompt_sizes=(4, 3, 2), prompt_len=3, prompt_heads=2)

# ---- the official names, as the official code (restormer_arch.py, PromptIR net/model.py) has them

#: moewir module prefix -> official module prefix
OFFICIAL_MODULES = {
    "embed": "patch_embed.proj", "encoders.0": "encoder_level1", "encoders.1": "encoder_level2",
    "encoders.2": "encoder_level3", "downs.0": "down1_2", "downs.1": "down2_3", "downs.2": "down3_4",
    "bottleneck": "latent", "ups.0": "up4_3", "ups.1": "up3_2", "ups.2": "up2_1",
    "reduces.0": "reduce_chan_level3", "reduces.1": "reduce_chan_level2", "decoders.0": "decoder_level3",
    "decoders.1": "decoder_level2", "decoders.2": "decoder_level1", "refinement": "refinement", "output": "output",
    "bridges.0.generate": "prompt3", "bridges.0.interact": "noise_level3", "bridges.0.reduce": "reduce_noise_level3",
    "bridges.1.generate": "prompt2", "bridges.1.interact": "noise_level2", "bridges.1.reduce": "reduce_noise_level2",
    "bridges.2.generate": "prompt1", "bridges.2.interact": "noise_level1", "bridges.2.reduce": "reduce_noise_level1",
}
#: moewir name inside a module -> official name
OFFICIAL_LEAVES = {
    "norm1.weight": "norm1.body.weight", "norm1.bias": "norm1.body.bias",
    "norm2.weight": "norm2.body.weight", "norm2.bias": "norm2.body.bias",
    "attn.temperature": "attn.temperature", "attn.qkv.pointwise.weight": "attn.qkv.weight",
    "attn.qkv.depthwise.weight": "attn.qkv_dwconv.weight", "attn.project_out.weight": "attn.project_out.weight",
    "ffn.project_in.weight": "ffn.project_in.weight", "ffn.dwconv.weight": "ffn.dwconv.weight",
    "ffn.project_out.weight": "ffn.project_out.weight", "components": "prompt_param",
    "weights.weight": "linear_layer.weight", "weights.bias": "linear_layer.bias", "conv.weight": "conv3x3.weight",
    "weight": "weight", "body.0.weight": "body.0.weight",
}
#: One transformer block of the official code, in its state dict (WithBias norms).
OFFICIAL_BLOCK = ["norm1.body.weight", "norm1.body.bias", "attn.temperature", "attn.qkv.weight",
                  "attn.qkv_dwconv.weight", "attn.project_out.weight", "norm2.body.weight", "norm2.body.bias",
                  "ffn.project_in.weight", "ffn.dwconv.weight", "ffn.project_out.weight"]
#: PromptIR's __init__ builds these and its forward never uses them.
PROMPTIR_UNUSED = ["chnl_reduce1", "chnl_reduce2", "chnl_reduce3",
                   "reduce_noise_channel_1", "reduce_noise_channel_2", "reduce_noise_channel_3"]


def official_name(name: str) -> str:
    """The official name of a moewir tensor of a Restormer / PromptIR with one block per level."""
    module = max((m for m in OFFICIAL_MODULES if name.startswith(m + ".")), key=len)
    rest = name[len(module) + 1:]
    index, _, leaf = rest.partition(".") if rest.split(".")[0].isdigit() else ("", "", rest)
    return ".".join(p for p in (OFFICIAL_MODULES[module], index, OFFICIAL_LEAVES[leaf]) if p)


def official_keys(promptir: bool, layer_norm: str) -> set[str]:
    """Every tensor name of the official state dict (one block per level), from its __init__."""
    block = [k for k in OFFICIAL_BLOCK if layer_norm == "with_bias" or not k.endswith("body.bias")]
    blocks = ["encoder_level1", "encoder_level2", "encoder_level3", "latent", "decoder_level3", "decoder_level2",
              "decoder_level1", "refinement"]
    keys = {f"{b}.0.{k}" for b in blocks for k in block}
    keys |= {"patch_embed.proj.weight", "output.weight", "reduce_chan_level3.weight", "reduce_chan_level2.weight"}
    keys |= {f"{m}.body.0.weight" for m in ("down1_2", "down2_3", "down3_4", "up4_3", "up3_2", "up2_1")}
    if promptir:
        for n in (1, 2, 3):
            keys |= {f"prompt{n}.prompt_param", f"prompt{n}.linear_layer.weight", f"prompt{n}.linear_layer.bias",
                     f"prompt{n}.conv3x3.weight", f"reduce_noise_level{n}.weight"}
            keys |= {f"noise_level{n}.{k}" for k in block}
    return keys


def randomized(network: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter random, the norms and temperatures too (so a mix-up cannot hide)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in network.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2 + (1 if p.ndim == 1 else 0))
    return network.eval()


def official_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A moewir state dict under the official names and layouts (prompts: a leading 1 dim)."""
    return {official_name(k): v[None] if k.endswith(".components") else v for k, v in state.items()}


def lightning_checkpoint(state: dict[str, torch.Tensor]) -> dict:
    """What Lightning 2 writes for PromptIR's LightningModule (the network is its ``net``): the
    plain-data entries as a Lightning 2.6 checkpoint of PromptIR's training setup holds them."""
    return {"epoch": 119, "global_step": 1000, "pytorch-lightning_version": "2.0.1",
            "state_dict": {f"net.{k}": v for k, v in state.items()},
            "loops": {"fit_loop": {"state_dict": {}, "epoch_loop.state_dict": {"_batches_that_stepped": 1000},
                                   "epoch_progress": {"total": {"ready": 120, "completed": 119}}}},
            "callbacks": {"ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, "
                          "'every_n_epochs': 1, 'train_time_interval': None}": {
                              "monitor": None, "best_model_score": None, "best_model_path": "/ckpt/epoch=119.ckpt",
                              "dirpath": "/ckpt", "best_k_models": {}, "kth_value": torch.tensor(float("inf"))}},
            "optimizer_states": [{"state": {0: {"step": torch.tensor(1000.0), "exp_avg": torch.zeros(2)}},
                                  "param_groups": [{"lr": 2e-4, "betas": (0.9, 0.999), "eps": 1e-8,
                                                    "weight_decay": 0.01, "amsgrad": False, "foreach": None,
                                                    "params": [0]}]}],
            "lr_schedulers": [{"warmup_epochs": 15, "max_epochs": 150, "base_lrs": [2e-4], "last_epoch": 119,
                               "_step_count": 120, "_get_lr_called_within_step": False, "_last_lr": [1e-5]}]}


def restormer_release(tmp_path: Path, layer_norm: str, seed: int = 0, name: str = "release.pth"):
    network = randomized(build_model("restormer", **TINY, layer_norm=layer_norm), seed)
    path = tmp_path / name
    torch.save({"params": official_state(network.state_dict())}, path)
    return network, path


def promptir_release(tmp_path: Path, seed: int = 0):
    network = randomized(build_model("promptir", **TINY_PROMPT), seed)
    state = official_state(network.state_dict())
    state.update({f"{m}.weight": torch.randn(4, 4, 1, 1) for m in PROMPTIR_UNUSED})  # any shape: never used
    path = tmp_path / "model.ckpt"
    torch.save(lightning_checkpoint(state), path)
    return network, path


def assert_same_network(loaded: torch.nn.Module, original: torch.nn.Module) -> None:
    ours, theirs = loaded.state_dict(), original.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    x = torch.rand(1, 3, 19, 26, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), original(x))


# ---- the layouts, both ways


@pytest.mark.parametrize("family,layer_norm", [("restormer", "with_bias"), ("restormer", "bias_free"),
                                               ("promptir", "with_bias")])
def test_names_map_both_ways_onto_the_official_state_dict(family, layer_norm):
    config = TINY_PROMPT if family == "promptir" else TINY
    layout = LAYOUTS[family]
    names = build_model(family, **config, layer_norm=layer_norm).state_dict()
    official = {layout.to_official(k) for k in names}
    assert official == official_keys(family == "promptir", layer_norm)  # every official tensor, nothing else
    for name in names:
        assert layout.to_official(name) == official_name(name)
        assert layout.to_moewir(official_name(name)) == name


def test_paper_size_promptir_has_the_release_shapes():
    """Shapes of the official PromptIR(decoder=True) at dim 48, from its __init__ (meta tensors)."""
    with torch.device("meta"):
        network = build_model("promptir")
    layout = LAYOUTS["promptir"]
    shapes = {layout.to_official(k): layout.official_shape(k, tuple(v.shape)) for k, v in network.state_dict().items()}
    assert shapes["prompt3.prompt_param"] == (1, 5, 320, 16, 16)
    assert shapes["prompt2.prompt_param"] == (1, 5, 128, 32, 32)
    assert shapes["prompt1.prompt_param"] == (1, 5, 64, 64, 64)
    assert shapes["prompt3.linear_layer.weight"] == (5, 384) and shapes["prompt1.linear_layer.weight"] == (5, 96)
    assert shapes["noise_level3.attn.qkv.weight"] == (3 * 704, 704, 1, 1)  # dim*2**2 + 512
    assert shapes["noise_level3.attn.temperature"] == (4, 1, 1)  # heads[2]
    assert shapes["reduce_noise_level3.weight"] == (192, 704, 1, 1)
    assert shapes["up4_3.body.0.weight"] == (384, 192, 3, 3)  # Upsample(dim*2**2)
    assert shapes["reduce_chan_level3.weight"] == (192, 288, 1, 1)  # dim*2**1 + 192 -> dim*2**2
    assert shapes["noise_level2.norm1.body.weight"] == (320,) and shapes["reduce_noise_level2.weight"] == (192, 320, 1, 1)
    assert shapes["noise_level1.ffn.project_out.weight"] == (160, int(160 * 2.66), 1, 1)
    assert shapes["reduce_noise_level1.weight"] == (96, 160, 1, 1)
    assert sum(v.numel() for v in network.parameters()) == 35_376_967  # official, without its 6 unused convs


# ---- the blocks PromptIR and the BiasFree norm add, by hand


def test_bias_free_layer_norm_divides_by_the_deviation_without_centring():
    x = torch.tensor([1.0, 2.0, 6.0]).reshape(1, 3, 1, 1)  # mean 3, variance 14/3
    norm = LayerNorm2d(3, bias=False)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
    expected = torch.tensor([1.0, 4.0, 3.0]) / (14 / 3 + 1e-5) ** 0.5
    assert torch.allclose(norm(x).flatten(), expected, atol=1e-6)
    assert "bias" not in dict(norm.named_parameters())
    centred = LayerNorm2d(3)(x).flatten()  # WithBias: (x - 3) / sqrt(14/3)
    assert torch.allclose(centred, torch.tensor([-2.0, -1.0, 3.0]) / (14 / 3 + 1e-5) ** 0.5, atol=1e-6)


def test_prompt_generation_weighs_the_components_by_the_softmax_and_resizes_bilinearly():
    gen = PromptGeneration(width=2, prompt_dim=1, prompt_len=2, prompt_size=2)
    with torch.no_grad():
        gen.components.copy_(torch.tensor([[[[1.0, 3.0], [1.0, 3.0]]], [[[4.0, 4.0], [4.0, 4.0]]]]))
        gen.weights.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
        gen.weights.bias.zero_()
        gen.conv.weight.zero_()
        gen.conv.weight[0, 0, 1, 1] = 1.0  # identity 3x3 conv
    x = torch.zeros(1, 2, 2, 4)
    x[0, 0] = torch.log(torch.tensor(3.0))  # GAP -> logits (ln 3, 0) -> weights (3/4, 1/4)
    out = gen(x)
    # sum: [1.75, 3.25] per row; width 2 -> 4, half-pixel centres (align_corners=False): the
    # samples fall at -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1)
    row = torch.tensor([1.75, 0.75 * 1.75 + 0.25 * 3.25, 0.25 * 1.75 + 0.75 * 3.25, 3.25])
    assert out.shape == (1, 1, 2, 4) and torch.allclose(out, row.expand(1, 1, 2, 4), atol=1e-6)


# ---- loading


@pytest.mark.parametrize("layer_norm", ["with_bias", "bias_free"])
def test_restormer_release_loads_with_its_layer_norm(tmp_path, layer_norm):
    original, path = restormer_release(tmp_path, layer_norm)
    loaded = build_from_weights(path, "restormer", overrides=TINY)
    assert loaded.config.layer_norm == layer_norm and loaded.model_name == "restormer"
    assert_same_network(loaded, original)


def test_promptir_lightning_checkpoint_loads_and_names_its_family(tmp_path):
    original, path = promptir_release(tmp_path)
    assert_same_network(build_from_weights(path, "promptir", overrides=TINY_PROMPT), original)
    assert_same_network(build_from_weights(path, overrides=TINY_PROMPT), original)  # no model: from the keys


def test_moewir_load_and_convert_take_a_release(tmp_path, capsys):
    network = randomized(build_model("restormer-tiny", layer_norm="bias_free"))
    path = tmp_path / "denoise.pth"
    torch.save({"params": official_state(network.state_dict())}, path)
    image = np.random.default_rng(0).random((21, 30, 3)).astype(np.float32)
    expected = Restorer(network, device="cpu", tile=None).restore(image)
    np.testing.assert_array_equal(moewir.load(path, model="restormer-tiny", device="cpu", tile=None).restore(image),
                                  expected)
    out = tmp_path / "converted" / "denoise.safetensors"
    assert main(["convert", str(path), "--model", "restormer-tiny", "-o", str(out)]) == 0
    assert "restormer-tiny" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["format"] == "moewir" and meta["model_name"] == "restormer-tiny"
    assert '"layer_norm": "bias_free"' in meta["model_config"] and meta["converted_from"] == "denoise.pth"
    assert meta["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # the converted file needs no --model: its metadata says what it holds
    np.testing.assert_array_equal(moewir.load(out, device="cpu", tile=None).restore(image), expected)


def test_restore_cli_takes_a_release(tmp_path, capsys):
    network = randomized(build_model("restormer-tiny"), seed=3)
    path = tmp_path / "derain.pth"
    torch.save({"params": official_state(network.state_dict())}, path)
    image = (np.random.default_rng(1).random((24, 20, 3)) * 255).astype(np.uint8)
    write_image(tmp_path / "in" / "a.png", image)
    argv = ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--weights", str(path),
            "--model", "restormer-tiny", "--tile", "0", "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    expected = Restorer(network, device="cpu", tile=None).restore(image)
    np.testing.assert_array_equal(np.round(read_image(tmp_path / "out" / "a.png") * 255).astype(np.uint8), expected)


def test_eval_compare_takes_a_release_at_its_own_size(tmp_path, capsys):
    """No --model in eval: a release is scored at its family's release size (here the paper's
    Restormer, 26M parameters, on two 16-px images)."""
    with torch.device("meta"):
        shapes = build_model("restormer", layer_norm="bias_free").state_dict()
    path = tmp_path / "real_denoising.pth"
    torch.save({"params": official_state({k: torch.full(v.shape, 0.01) for k, v in shapes.items()})}, path)
    ours = tmp_path / "tiny.safetensors"
    moewir.models.save_weights(ours, randomized(build_model("restormer-tiny")))
    rng = np.random.default_rng(2)
    for i in range(2):
        write_image(tmp_path / "data" / "rain" / "input" / f"{i}.png", (rng.random((16, 16, 3)) * 255).astype(np.uint8))
        write_image(tmp_path / "data" / "rain" / "target" / f"{i}.png", (rng.random((16, 16, 3)) * 255).astype(np.uint8))
    assert main(["eval", "--weights", str(ours), "--compare", str(path), "--data", str(tmp_path / "data"),
                 "--tile", "0", "--device", "cpu", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "real_denoising" in out and "tiny" in out


# ---- refusing bad files


class _Payload:
    """Unpickling this runs a shell command that writes ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'echo pwned > "{self.marker}"',)


def test_a_malicious_pickle_never_runs(tmp_path, capsys):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"params": {"embed.weight": _Payload(marker)}}, path)
    pickle.loads(pickle.dumps(_Payload(marker)))  # the control: unpickled unsafely, it runs
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ValueError) as info:
        build_from_weights(path, "restormer")
    message = str(info.value)
    assert message.startswith(f"{path}: refused to load") and "system" in message and "\n" not in message
    assert main(["convert", str(path), "-o", str(tmp_path / "out.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"moewir: error: {path}: refused to load") and len(err.splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_an_unknown_key_is_named_in_one_line(tmp_path):
    _, path = restormer_release(tmp_path, "with_bias")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["params"]["skip.weight"] = torch.zeros(3)
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match=r"weights do not fit the model \(0 missing.*1 unexpected, e\.g\. "
                                         r"\['skip\.weight'\]") as info:
        build_from_weights(path, "restormer", overrides=TINY)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_a_wrong_shape_is_named_by_its_official_name(tmp_path):
    _, path = restormer_release(tmp_path, "with_bias")
    with pytest.raises(ValueError, match=r"release\.pth: weights do not fit.*of another shape, e\.g\. "
                                         r"\['patch_embed\.proj\.weight \(8, 3, 3, 3\) vs \(48, 3, 3, 3\)'"):
        build_from_weights(path, "restormer")  # the paper's size for a dim-8 file
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["params"]["latent.0.attn.temperature"]
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match=r"1 missing, e\.g\. \['latent\.0\.attn\.temperature'\]"):
        build_from_weights(path, "restormer", overrides=TINY)


def test_wrong_family_dual_pixel_and_non_checkpoints_are_one_line_errors(tmp_path):
    _, path = promptir_release(tmp_path)
    with pytest.raises(ValueError, match=r"model\.ckpt: holds official PromptIR weights, not 'restormer-tiny'"):
        build_from_weights(path, "restormer-tiny")
    with pytest.raises(ValueError, match=r"model\.ckpt: unknown model 'restormr'; registered models: dcp, mgf, moewirnet"):
        build_from_weights(path, "restormr")
    dual = tmp_path / "dual.pth"
    torch.save({"params": {"patch_embed.proj.weight": torch.zeros(48, 6, 3, 3), "skip_conv.weight": torch.zeros(1)}},
               dual)
    with pytest.raises(ValueError, match="dual.pth: a dual-pixel defocus-deblurring Restormer release"):
        build_from_weights(dual)
    other = tmp_path / "other.pth"
    torch.save({"params": {"conv.weight": torch.zeros(1)}}, other)
    with pytest.raises(ValueError, match=r"other.pth: not an official Restormer or PromptIR checkpoint"):
        build_from_weights(other)
    nested = tmp_path / "nested.pth"
    torch.save({"model": {"a": torch.zeros(1)}}, nested)
    with pytest.raises(ValueError, match=r"nested.pth: not a state dict: entry 'model' is not a named tensor"):
        build_from_weights(nested)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"broken.pth: not a readable PyTorch checkpoint"):
        build_from_weights(broken)
    with pytest.raises(ValueError, match=r"out.bin: the converted weights file must end in .safetensors"):
        convert_weights(path, tmp_path / "out.bin")


def test_parity_bench_skips_without_the_official_files(capsys):
    """bench/official_parity.py compares with the official code only when given its files."""
    spec = importlib.util.spec_from_file_location("official_parity", BENCH / "official_parity.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main([]) == 0
    assert "no official architecture file given" in capsys.readouterr().out
