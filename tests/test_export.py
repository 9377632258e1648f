"""ONNX export (``moewir.inference.export``, ``moewir export``): onnxruntime against PyTorch.

Each network is exported once, which dominates the run time (tens of seconds of symbolic
tracing each): ``moewirnet-tiny`` through the Python API in a child process, so that it runs
on the second core while ``restormer-tiny`` is exported in this process through the CLI's
``main``. Both are traced at 72x80 and run by onnxruntime at another size, batch 2, with sides
that are not multiples of 8.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx", reason="ONNX export needs the optional package onnx (pip install 'moewir[onnx]')")
pytest.importorskip("onnxscript", reason="ONNX export needs the optional package onnxscript "
                                         "(pip install 'moewir[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="the export check needs the optional package onnxruntime "
                                                "(pip install 'moewir[onnx]')")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402

import moewir  # noqa: E402
from moewir import create_model  # noqa: E402
from moewir.cli.main import main  # noqa: E402
from moewir.inference import export as export_module  # noqa: E402
from moewir.inference import load  # noqa: E402
from moewir.inference.export import (INPUT_NAME, OUTPUT_NAME, ExportReport, OnnxExportError,  # noqa: E402
                                     check_onnx, check_sizes, export_onnx, onnx_model_bytes)
from moewir.models import model_spec, save_weights  # noqa: E402

EXPORT_SIZE = (72, 80)  # the smallest example size allowed (moewir.inference.export.MIN_EXAMPLE_SIZE)
RUN_SHAPE = (2, 3, 61, 100)  # another size and batch; neither side a multiple of 8
ATOL = 1e-4

# Run in a child process: load the weights, export with the API (without onnxscript's graph
# optimiser, a quarter of this network's export time; the CLI export below runs it).
_CHILD_EXPORT = """
import sys
from moewir.inference import load
from moewir.inference.export import export_onnx
network = load(sys.argv[1], device="cpu", tile=None).network
export_onnx(network, sys.argv[2], example_size=(int(sys.argv[3]), int(sys.argv[4])), optimize=False)
"""


def _weights(folder: Path, name: str, **config) -> Path:
    torch.manual_seed(0)
    path = folder / f"{name}.safetensors"
    network = create_model(name, **config)
    if "prior" in config:  # the prior's modules start at zero: give them weight
        with torch.no_grad():
            network.prior_embed.weight.normal_(0, 0.1)
            if network.prior_mix is not None:
                network.prior_mix.conv.weight.normal_(0, 0.01)
                network.prior_mix.conv.bias.fill_(0.3)
    save_weights(path, network)
    return path


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def moewirnet_child(tmp_path_factory):
    """Start exporting ``moewirnet-tiny`` (random weights, saved with save_weights) in a child
    process; yields the weights, the ONNX path and the process."""
    folder = tmp_path_factory.mktemp("moewirnet")
    weights = _weights(folder, "moewirnet-tiny")
    path = folder / "moewirnet-tiny.onnx"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(moewir.__file__).resolve().parents[1])] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    log = folder / "child.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-c", _CHILD_EXPORT, str(weights), str(path),
                                    *map(str, EXPORT_SIZE)], env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    yield weights, path, process, log
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def restormer_cli(tmp_path_factory):
    """``moewir export --weights restormer-tiny.safetensors --onnx ... --check`` through
    ``main``: exit code, stdout, output, network. With the dark channel prior as input, so its
    airlight search and guided filter export too (at sizes other than the traced one), embedded
    and mixed into the output (``dcp_mix``)."""
    folder = tmp_path_factory.mktemp("restormer")
    weights = _weights(folder, "restormer-tiny", prior="dcp_mix")
    out = folder / "out" / "restormer-tiny.onnx"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["export", "--weights", str(weights), "--onnx", str(out), "--size", *map(str, EXPORT_SIZE),
                     "--check"])
    return code, stdout.getvalue(), out, load(weights, device="cpu", tile=None).network


@pytest.fixture(scope="module")
def moewirnet_onnx(moewirnet_child, restormer_cli):
    """The child's export, once it is done: the reloaded network and the ONNX path. (Requesting
    ``restormer_cli`` after starting the child runs the two exports side by side.)"""
    weights, path, process, log = moewirnet_child
    assert process.wait(timeout=900) == 0, log.read_text()[-3000:]
    return load(weights, device="cpu", tile=None).network, path


def _run_both(network: torch.nn.Module, path: Path, shape=RUN_SHAPE) -> tuple[np.ndarray, np.ndarray]:
    image = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: image.numpy()})
    with torch.no_grad():
        expected = network(image).numpy()
    return got, expected


def test_moewirnet_round_trip_other_size_and_batch(moewirnet_onnx):
    network, path = moewirnet_onnx
    got, expected = _run_both(network, path)
    assert got.shape == expected.shape == RUN_SHAPE and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_moewirnet_graph_interface(moewirnet_onnx):
    network, path = moewirnet_onnx
    model = onnx.load(str(path))
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == (INPUT_NAME, OUTPUT_NAME)
    for value in (inp, out):
        dims = value.type.tensor_type.shape.dim
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]
    assert {op.op_type for op in model.graph.node} >= {"DFT", "TopK"}  # the FFT and top-k experts
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["moewir.model_name"] == "moewirnet-tiny"
    assert json.loads(meta["moewir.model_config"]) == json.loads(json.dumps(model_spec(network)[1]))
    assert "not clamped" in meta["moewir.output"]
    # check_onnx (used by --check) agrees, on a third size and batch 1, reading the file
    assert check_onnx(network, path, (37, 53), batch=1) < ATOL


def test_restormer_cli_export_and_round_trip(restormer_cli):
    code, stdout, out, network = restormer_cli
    assert code == 0
    assert _files(out.parent) == [out.name]  # no temporary file left
    assert "restormer-tiny" in stdout and "RANDOM" not in stdout
    assert "check: onnxruntime vs PyTorch" in stdout
    got, expected = _run_both(network, out)
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_check_sizes_differ_from_the_export_size_and_are_not_multiples_of_8():
    for size in [(256, 256), (72, 72), (101, 93)]:
        for h, w in check_sizes(size):
            assert (h, w) != tuple(size) and h != w and h % 8 and w % 8


def _fail(capsys, argv) -> str:
    """Run the CLI expecting exit code 2 and a one-line error; returns the line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("moewir: error:") and "\n" not in err
    return err


def test_cli_bad_weights_file(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    err = _fail(capsys, ["export", "--weights", str(bad), "--onnx", str(tmp_path / "m.onnx")])
    assert "bad.safetensors" in err
    assert _files(tmp_path) == ["bad.safetensors"]


def test_cli_needs_weights_or_model(tmp_path, capsys):
    assert "--model" in _fail(capsys, ["export", "--onnx", str(tmp_path / "m.onnx")])
    assert _files(tmp_path) == []


def test_cli_unwritable_output_path(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _fail(capsys, ["export", "--model", "restormer-tiny", "--onnx", str(blocker / "m.onnx")])
    assert _files(tmp_path) == ["a-file"]


def test_cli_failure_after_the_temp_file_was_created_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    err = _fail(capsys, ["export", "--model", "restormer-tiny", "--onnx", str(out / "m.onnx"), "--opset", "17"])
    assert "opset 17" in err
    assert _files(out) == []


def test_cli_failed_check_writes_nothing(tmp_path, capsys, monkeypatch):
    # An export that onnxruntime cannot load fails --check; the output must not appear.
    monkeypatch.setattr(export_module, "onnx_model_bytes", lambda *args, **kwargs: b"not an onnx model")
    err = _fail(capsys, ["export", "--model", "restormer-tiny", "--onnx", str(tmp_path / "m.onnx"), "--check"])
    assert "onnxruntime" in err
    assert _files(tmp_path) == []


def test_cli_random_weights_are_labelled(tmp_path, capsys, monkeypatch):
    def fake_write(network, path, opset, example_size, **kwargs):
        assert network.model_name == "restormer-tiny" and kwargs["metadata"]["moewir.weights"].startswith("random")
        assert kwargs["optimize"] is False and (opset, tuple(example_size)) == (21, (96, 128))
        return ExportReport(Path(path), 1, opset, tuple(example_size), 0.0)

    monkeypatch.setattr(export_module, "export_onnx", fake_write)
    assert main(["export", "--model", "restormer-tiny", "--onnx", str(tmp_path / "m.onnx"), "--opset", "21",
                 "--size", "96", "128", "--no-optimize"]) == 0
    assert "RANDOM weights" in capsys.readouterr().out


def test_missing_packages_message(tmp_path, capsys, monkeypatch):
    real = export_module.importlib.util.find_spec
    monkeypatch.setattr(export_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    err = _fail(capsys, ["export", "--model", "restormer-tiny", "--onnx", str(tmp_path / "m.onnx"), "--check"])
    assert "onnxruntime" in err and "pip install 'moewir[onnx]'" in err
    with pytest.raises(ImportError, match="moewir\\[onnx\\]"):
        check_onnx(create_model("restormer-tiny"), b"", (16, 16))
    assert _files(tmp_path) == []


def test_api_rejects_bad_arguments_before_exporting(tmp_path):
    network = create_model("restormer-tiny")
    with pytest.raises(ValueError, match="opset"):
        onnx_model_bytes(network, opset=16)
    with pytest.raises(ValueError, match="at least 72x72"):
        export_onnx(network, tmp_path / "m.onnx", example_size=(64, 256))
    with pytest.raises(ValueError, match="at least 5x5"):
        check_onnx(network, b"", (4, 64))
    with pytest.raises(OnnxExportError, match="onnxruntime cannot load"):
        check_onnx(network, b"garbage", (16, 16))
    assert _files(tmp_path) == []
