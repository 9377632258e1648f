"""ONNX export of a restoration network, with dynamic batch, height and width.

The exported graph has one input, ``image``: ``(B, 3, H, W)`` float32 RGB in ``[0, 1]``, and
one output, ``restored``: ``(B, 3, H, W)`` float32, the network's raw output (the global
residual ``I + H(I)``, *not* clamped: clamp it to ``[0, 1]`` before converting to 8 bits, as
:class:`moewir.inference.Restorer` does). ``B``, ``H`` and ``W`` are free (``H, W >= 5``); the
reflect padding to a multiple of 8 and the crop back happen inside the graph.

The graph is captured with ``torch.onnx.export(..., dynamo=True)`` (``torch.export`` then
onnxscript), which needs the optional packages ``onnx`` and ``onnxscript``;
:func:`check_onnx` needs ``onnxruntime``. ``pip install 'moewir[onnx]'`` installs all three.
See ``docs/export.md`` for the operators and opsets involved and for measurements.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..data.io import atomic_file
from ..models import model_spec

__all__ = ["export_onnx", "ExportReport", "onnx_model_bytes", "check_onnx", "check_sizes",
           "require_onnx", "OnnxExportError", "DEFAULT_OPSET", "MIN_OPSET", "INPUT_NAME", "OUTPUT_NAME",
           "MIN_SIZE", "MIN_EXAMPLE_SIZE", "INSTALL_HINT"]

#: Opset written by default: the first with a one-node ``Gelu``; ``DFT`` takes its length and
#: axis as inputs from 20 on.
DEFAULT_OPSET = 20
#: The oldest opset torch's ONNX function library targets (``LayerNormalization`` needs 17, and
#: the ONNX version converter cannot take ``Pad`` down to 17).
MIN_OPSET = 18
INPUT_NAME = "image"
OUTPUT_NAME = "restored"
#: Smallest height / width the exported graph accepts. The reflect padding to a multiple of 8
#: must be shorter than the side it mirrors, which holds from 5 pixels on; below that PyTorch
#: switches to replicate padding, while onnxruntime stops with an error in the first ``Pad``.
MIN_SIZE = 5
INSTALL_HINT = "pip install 'moewir[onnx]'"
#: Smallest example (tracing) size. torch.export specialises sizes it sees equal to 1, so every
#: internal size must be at least 2 in the example: from 65 pixels on, the 1/8-resolution
#: bottleneck has two 8x8 attention windows and two FFT patches per side. (Traced at 8x8, the
#: graph failed at nearly every other size; traced at 72x100 or 256x256 it matched PyTorch at
#: every size tried, 8x8 to 200x136.)
MIN_EXAMPLE_SIZE = 72
#: Batch size of the example input (2, for the same reason).
_EXAMPLE_BATCH = 2
_DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}


class OnnxExportError(ValueError):
    """The network could not be exported, or the export does not match PyTorch."""


def require_onnx(runtime: bool = False) -> None:
    """Raise :class:`ImportError` (one line, with the install command) when the packages that
    export (``onnx``, ``onnxscript``) or, with ``runtime``, run (``onnxruntime``) are missing."""
    needed = ["onnx", "onnxscript"] + (["onnxruntime"] if runtime else [])
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"moewir export needs the optional packages onnx, onnxscript and onnxruntime "
                          f"(missing: {', '.join(missing)}): {INSTALL_HINT}")


def _size_pair(size: Sequence[int], what: str, minimum: int = MIN_SIZE) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be (height, width), got {size!r}") from None
    if min(h, w) < minimum:
        why = " (smaller examples make torch.export specialise internal sizes of 1)" if minimum > MIN_SIZE else ""
        raise ValueError(f"{what} must be at least {minimum}x{minimum}{why}, got {h}x{w}")
    return h, w


def check_sizes(example_size: Sequence[int]) -> list[tuple[int, int]]:
    """Sizes to verify an export at: not the example size, and not multiples of 8 (so that the
    in-graph padding is exercised), height different from width."""
    h, w = _size_pair(example_size, "example size", MIN_EXAMPLE_SIZE)
    height = next(n for n in range(h + 11, h + 20) if n % 8)
    width = next(n for n in range(w + 21, w + 40) if n % 8 and n != height)
    return [(height, width)]


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's warnings and log lines (e.g. about torchvision not being installed)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _fast_tracing() -> contextlib.AbstractContextManager:
    """Turn off torch's fake-tensor dispatch cache while tracing: with this network's symbolic
    sizes, rebuilding outputs from cache entries costs more than it saves (moewirnet-tiny,
    without the optimiser: 40 s of CPU instead of 52 s). A private torch setting: skipped when
    absent."""
    config = getattr(getattr(torch, "_dynamo", None), "config", None)
    if config is None or not hasattr(config, "fake_tensor_cache_enabled"):
        return contextlib.nullcontext()
    return config.patch(fake_tensor_cache_enabled=False)


@contextlib.contextmanager
def _eval_mode(network: nn.Module) -> Iterator[nn.Module]:
    was_training = network.training
    network.eval()
    try:
        yield network
    finally:
        network.train(was_training)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _one_line(exc: BaseException, limit: int = 400) -> str:
    """The gist of an exporter error: its "Exception summary" line (torch.onnx's errors run to
    pages) and the model line that raised it, else the first line; colour codes removed."""
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    for before, after in zip(lines, lines[1:]):
        if before.startswith("## Exception summary"):
            text = re.sub(r"^<class '(?:[\w.]*\.)?(\w+)'>", r"\1", after)
        elif before.startswith("The following call raised this error"):
            where = re.match(r'File "([^"]+)", line (\d+)', after)
            text += f" (at {Path(where.group(1)).name}:{where.group(2)})" if where else ""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def onnx_model_bytes(network: nn.Module, opset: int = DEFAULT_OPSET,
                     example_size: Sequence[int] = (256, 256),
                     metadata: dict[str, str] | None = None, optimize: bool = True) -> bytes:
    """The serialised ONNX model of ``network``, exported in eval mode on the device its
    parameters are on.

    ``example_size`` only shapes the example input the graph is traced with; the graph accepts
    any ``B x 3 x H x W`` with ``H, W >= 5``. ``metadata`` is stored in the model's
    ``metadata_props`` next to the model name and config. ``optimize`` runs onnxscript's graph
    optimiser (constant folding, fusions): the model runs a little faster in onnxruntime (7% for
    moewirnet-tiny), but the export takes much longer (moewirnet: 12 minutes instead of 2.5).
    """
    require_onnx()
    if not (hasattr(torch.export, "Dim") and hasattr(getattr(torch, "compiler", None), "is_exporting")):
        raise OnnxExportError(f"ONNX export needs a newer torch than {torch.__version__} "
                              "(the dynamo exporter with dynamic shapes; tested with torch 2.13)")
    if int(opset) < MIN_OPSET:
        raise ValueError(f"opset {opset} is too old: the export needs opset {MIN_OPSET} or newer "
                         f"(default {DEFAULT_OPSET})")
    h, w = _size_pair(example_size, "example size", MIN_EXAMPLE_SIZE)
    device = next(network.parameters(), torch.empty(0)).device
    # (Its values do not matter; a private generator leaves the global random state alone.)
    example = torch.rand(_EXAMPLE_BATCH, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device)
    with _eval_mode(network), _quiet_exporter(), _fast_tracing():
        try:
            program = torch.onnx.export(
                network, (example,), dynamo=True, opset_version=int(opset), verbose=False,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], optimize=optimize,
                dynamic_shapes={INPUT_NAME: dict(_DYNAMIC_AXES)})
            proto = program.model_proto
        except Exception as exc:  # the exporter raises many error types, with pages of detail
            raise OnnxExportError(f"ONNX export of {model_spec(network)[0]} failed: {_one_line(exc)}") from exc
    # Drop the exporter's per-node debugging annotations (Python stack traces with this machine's
    # file paths, FX node names, module scopes): nothing a runtime reads, and without the
    # optimiser half of moewirnet-tiny's file (14.5 MB -> 7.2 MB).
    for node in [*proto.graph.node, *(n for f in proto.functions for n in f.node)]:
        del node.metadata_props[:]
    # The output has the input's shape; name its axes like the input's (the exporter writes the
    # crop's symbolic expressions, e.g. ``Min(height, 8*((height + 7)//8))``).
    for value in proto.graph.output:
        for axis, name in _DYNAMIC_AXES.items():
            dim = value.type.tensor_type.shape.dim[axis]
            dim.Clear()
            dim.dim_param = name
    written = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=None)
    if written != int(opset):
        raise OnnxExportError(f"the exporter wrote opset {written} instead of the requested {opset}; "
                              f"use an opset between {MIN_OPSET} and {written or DEFAULT_OPSET}")
    name, config = model_spec(network)
    info = {"moewir.model_name": name, "moewir.model_config": json.dumps(config, sort_keys=True),
            "moewir.input": f"{INPUT_NAME}: (batch, 3, height, width) float32 RGB in [0, 1], height and "
                            f"width >= {MIN_SIZE}",
            "moewir.output": f"{OUTPUT_NAME}: (batch, 3, height, width) float32, not clamped; "
                             "clamp to [0, 1]"}
    info.update({str(k): str(v) for k, v in (metadata or {}).items()})
    for key, value in info.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = "moewir image restoration network; see the metadata for its input and output"
    return proto.SerializeToString()


@dataclass
class ExportReport:
    """What :func:`export_onnx` did: the file, its size, the export time and the checks made.

    It stands for its file where a path is expected (``open(report)``, ``Path(report)``)."""

    path: Path
    num_bytes: int
    opset: int
    example_size: tuple[int, int]
    seconds: float
    #: ``((height, width), max abs difference)`` per size checked with onnxruntime (batch 2).
    checks: list[tuple[tuple[int, int], float]] = field(default_factory=list)

    def __fspath__(self) -> str:
        return os.fspath(self.path)


def export_onnx(network: nn.Module, path: str | os.PathLike, opset: int = DEFAULT_OPSET,
                example_size: Sequence[int] = (256, 256), verify: bool = False, atol: float = 1e-3,
                metadata: dict[str, str] | None = None, optimize: bool = True) -> ExportReport:
    """Export ``network`` to the ONNX file ``path``; returns an :class:`ExportReport`.

    The model is written to a temporary file beside ``path`` (opened before the export starts,
    so an unwritable folder fails at once) and renamed into place only when everything
    succeeded: a failure leaves no file behind. With ``verify``, the model is first run with
    onnxruntime at :func:`check_sizes` (batch 2) and must match PyTorch within ``atol``
    (:class:`OnnxExportError` otherwise). ``metadata`` and ``optimize``: see
    :func:`onnx_model_bytes`.
    """
    require_onnx(runtime=verify)
    if not atol > 0:
        raise ValueError(f"atol must be positive, got {atol}")
    path = Path(path)
    example = _size_pair(example_size, "example size", MIN_EXAMPLE_SIZE)
    # The temporary file is created before the (long) export, so an unwritable path fails at
    # once; it is renamed onto ``path`` only when the export (and the check) succeeded.
    with atomic_file(path) as f:
        start = time.perf_counter()
        data = onnx_model_bytes(network, opset, example, metadata, optimize)
        report = ExportReport(path, len(data), int(opset), example, time.perf_counter() - start)
        for size in check_sizes(example) if verify else ():
            diff = check_onnx(network, data, size)
            if not diff <= atol:  # also catches NaN
                raise OnnxExportError(f"onnxruntime and PyTorch differ by {diff:.3g} at {_EXAMPLE_BATCH}x3x"
                                      f"{size[0]}x{size[1]} (more than {atol:g}); {path} not written")
            report.checks.append((size, diff))
        f.write(data)
    return report


def check_onnx(network: nn.Module, model: str | os.PathLike | bytes, size: Sequence[int],
               batch: int = _EXAMPLE_BATCH, seed: int = 0) -> float:
    """Largest absolute difference between onnxruntime (CPU) running the ONNX ``model`` (a file
    or its bytes) and ``network`` in PyTorch, on a random ``batch x 3 x H x W`` image in [0, 1]."""
    require_onnx(runtime=True)
    import onnxruntime as ort

    h, w = _size_pair(size, "check size")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    source = model if isinstance(model, bytes) else str(model)
    if not isinstance(model, bytes) and not Path(source).is_file():
        raise ValueError(f"{source}: no such ONNX file")
    try:
        session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own error types
        raise OnnxExportError(f"onnxruntime cannot load the model: {_one_line(exc)}") from None
    image = torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))
    device = next(network.parameters(), torch.empty(0)).device
    with _eval_mode(network), torch.no_grad():
        expected = network(image.to(device)).float().cpu().numpy()
    try:
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: image.numpy()})
    except Exception as exc:
        raise OnnxExportError(f"onnxruntime failed on a {batch}x3x{h}x{w} input: {_one_line(exc)}") from None
    if got.shape != expected.shape:
        raise OnnxExportError(f"onnxruntime returned shape {got.shape} for a {batch}x3x{h}x{w} input, "
                              f"PyTorch {expected.shape}")
    return float(np.abs(got.astype(np.float64) - expected).max())
