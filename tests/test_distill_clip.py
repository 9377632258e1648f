"""The CLIP describer, on a tiny random CLIP checkpoint built offline in a temporary folder."""
import json
import re
import sys

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")

from moewir.data.io import write_image  # noqa: E402
from moewir.distill.analysis import make_describer  # noqa: E402
from moewir.distill.clip import PROMPTS, ClipDescriber  # noqa: E402
from moewir.distill.database import ReferenceDB  # noqa: E402
from moewir.distill.features import RAIN_TYPES, rain_type_of_caption  # noqa: E402

PROJECTION = 16
#: Every word the built-in caption (time, intensity, form, scene parts) may use.
BUILTIN_WORDS = {"day", "night", "photo", "light", "moderate", "heavy", "rain", "streaks", "drops",
                 "dark", "dim", "bright", "scene"}


def _write_tokenizer(folder):
    """A CLIP BPE vocabulary (vocab.json + merges.txt) that spells every prompt word as one token."""
    words = sorted({w for choices in PROMPTS.values() for prompts in choices.values() for p in prompts
                    for w in re.findall(r"[a-z]+", p.lower())})
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = letters + [c + "</w>" for c in letters]
    merges = []
    for word in words:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pair = (parts[0], parts[1])
            if " ".join(pair) not in merges:
                merges.append(" ".join(pair))
                vocab.append(pair[0] + pair[1])
            parts = [pair[0] + pair[1]] + parts[2:]
    vocab = list(dict.fromkeys(vocab)) + ["<|startoftext|>", "<|endoftext|>"]
    ids = {token: i for i, token in enumerate(vocab)}
    (folder / "vocab.json").write_text(json.dumps(ids))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return ids


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny-clip")
    vocab_dir = tmp_path_factory.mktemp("vocab")
    ids = _write_tokenizer(vocab_dir)
    tokenizer = CLIPTokenizer.from_pretrained(str(vocab_dir), local_files_only=True)
    tokenizer.save_pretrained(str(folder))
    bos, eos = ids["<|startoftext|>"], ids["<|endoftext|>"]
    config = CLIPConfig(
        text_config=dict(vocab_size=len(ids), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=32, bos_token_id=bos, eos_token_id=eos,
                         pad_token_id=eos),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=PROJECTION)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(str(folder))
    # What CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=32).save_pretrained writes; written by
    # hand because transformers 5 makes CLIPImageProcessor depend on torchvision.
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": 32},
        "resample": 3, "do_center_crop": True, "crop_size": {"height": 32, "width": 32}, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "do_convert_rgb": True}))
    return folder


def _image(seed, shape=(48, 40)):
    rng = np.random.default_rng(seed)
    return rng.random((*shape, 3), dtype=np.float32)


def test_describe_gives_normalized_embedding_and_builtin_caption(tiny_clip):
    d = ClipDescriber(str(tiny_clip))
    for seed, shape in [(0, (48, 40)), (1, (20, 70)), (2, (32, 32))]:
        out = d.describe(_image(seed, shape))
        assert out.visual.dtype == np.float32 and out.visual.shape == (PROJECTION,)
        assert np.isfinite(out.visual).all()
        assert np.linalg.norm(out.visual) == pytest.approx(1.0, abs=1e-5)
        words = set(re.findall(r"[a-z]+", out.caption))
        assert words <= BUILTIN_WORDS, out.caption
        assert re.fullmatch(r"(day|night) photo, (light|moderate|heavy) rain (streaks|drops), "
                            r"(dark|dim|bright) scene", out.caption)
        assert out.rain_type in RAIN_TYPES and out.rain_type == rain_type_of_caption(out.caption)


def test_describe_is_deterministic(tiny_clip):
    d = ClipDescriber(str(tiny_clip))
    img = _image(3)
    a, b = d.describe(img), d.describe(img.copy())
    assert a.caption == b.caption and a.rain_type == b.rain_type
    np.testing.assert_array_equal(a.visual, b.visual)
    other = ClipDescriber(str(tiny_clip)).describe(img)
    np.testing.assert_allclose(other.visual, a.visual, atol=1e-6)
    assert not np.allclose(d.describe(_image(4)).visual, a.visual)


def test_make_describer_builds_clip(tiny_clip):
    d = make_describer("clip:" + str(tiny_clip))
    assert isinstance(d, ClipDescriber) and d.name == "clip"
    assert d.describe(_image(5)).visual.shape == (PROJECTION,)


def test_missing_folder_or_weights(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no CLIP model") as err:
        ClipDescriber(missing)
    assert str(err.value) == (f"{missing}: no CLIP model (config.json + weights) found; "
                              "the clip describer works only from local files")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="only from local files"):
        make_describer("clip:" + str(tmp_path / "empty"))


def test_without_transformers(tiny_clip, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ValueError, match="pip install transformers"):
        ClipDescriber(str(tiny_clip))


def test_index_with_clip_describer(tiny_clip, tmp_path):
    refs = tmp_path / "refs"
    refs.mkdir()
    for i in range(3):
        write_image(refs / f"r{i}.png", _image(10 + i, (36, 44)))
    spec = "clip:" + str(tiny_clip)
    report = ReferenceDB(tmp_path / "db").index([refs], describer=spec)
    assert report.added == 3 and report.total == 3 and not report.failed
    loaded = ReferenceDB(tmp_path / "db").load()
    assert loaded.describer == spec
    assert loaded.visual.shape == (3, PROJECTION)
    assert all(t in RAIN_TYPES for t in loaded.types)
    assert all(set(re.findall(r"[a-z]+", c)) <= BUILTIN_WORDS for c in loaded.captions)
