"""One registry mechanism for every name -> object table (moewir.registry), and the tables using it."""
from __future__ import annotations

import numpy as np
import pytest

import moewir
from moewir.distill.analysis import DESCRIBERS, make_describer
from moewir.distill.judges import JUDGES
from moewir.evaluation.runner import METRICS, build_metrics
from moewir.metrics.lpips import BACKBONES, LPIPS
from moewir.ops.color import LUMA_CONVENTIONS, luma
from moewir.registry import Registry, UnknownNameError
from moewir.synth.tasks import TASKS, synthesize
from moewir.training.ablation import STUDIES, run_study
from moewir.training.optim import OPTIMIZERS
from moewir.training.weighting import WEIGHTINGS, create_weighting


def test_register_get_names_and_decorator():
    reg: Registry[int] = Registry("colour")
    assert reg.register("red", 1) == 1

    @reg.register("blue")
    def blue():
        return 2

    assert reg.get("blue") is blue and blue() == 2  # the decorator returns what it decorates
    assert reg.names() == ["red", "blue"] and list(reg) == ["red", "blue"]  # registration order
    assert reg.items() == [("red", 1), ("blue", blue)]
    assert "red" in reg and "green" not in reg and ["unhashable"] not in reg and len(reg) == 2
    assert "colour" in repr(reg) and "red, blue" in repr(reg)


def test_sorted_registry():
    reg = Registry("letter", sort=True)
    for name in "cab":
        reg.register(name, name.upper())
    assert reg.names() == ["a", "b", "c"] and [v for _, v in reg.items()] == ["A", "B", "C"]


def test_duplicate_registration_is_an_error():
    reg = Registry("colour")
    reg.register("red", 1)
    with pytest.raises(ValueError, match="colour 'red' is already registered"):
        reg.register("red", 2)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("red")(lambda: None)
    assert reg.get("red") == 1
    with pytest.raises(ValueError, match="non-empty string"):
        reg.register("", 3)


def test_unknown_names_list_the_valid_ones():
    reg = Registry("colour")
    reg.register("red", 1)
    reg.register("blue", 2)
    with pytest.raises(UnknownNameError) as info:
        reg.get("green")
    assert str(info.value) == "unknown colour 'green'; known: red, blue"
    assert isinstance(info.value, ValueError) and info.value.known == ["red", "blue"]
    assert info.value.names == ["green"] and info.value.kind == "colour"
    with pytest.raises(UnknownNameError, match=r"^unknown colour\(s\) 'green', 'pink'; known: red, blue$"):
        reg.require(["red", "green", "pink"])
    reg.require(["red", "blue"])  # all known: no error
    with pytest.raises(UnknownNameError, match="unknown colour"):
        reg.get(["not", "hashable"])
    custom = Registry("model", unknown="no {kind} called {names} (try {known})")
    with pytest.raises(ValueError, match=r"^no model called 'x' \(try \(none\)\)$"):
        custom.get("x")


# -- every real registry: unknown names list the valid ones --------------------------------
@pytest.mark.parametrize("registry,known", [
    (TASKS, {"haze", "rain", "snow", "raindrop", "nightrain", "nightraindrop", "rain+haze", "snow+haze"}),
    (WEIGHTINGS, {"equal", "rci", "ori", "unirain", "dwa", "uncertainty", "relative"}),
    (STUDIES, {"routing", "experts", "weighting", "topk"}),
    (DESCRIBERS, {"builtin", "clip"}),
    (JUDGES, {"builtin", "http"}),
    (LUMA_CONVENTIONS, {"bt601-studio", "bt601-full", "matlab-rgb2gray"}),
    (BACKBONES, {"alex", "vgg"}),
    (METRICS, {"psnr", "ssim", "niqe", "lpips"}),
    (OPTIMIZERS, {"adam", "adamw"}),
])
def test_real_registries(registry, known):
    assert set(registry.names()) == known
    with pytest.raises(UnknownNameError) as info:
        registry.get("nope")
    assert set(info.value.known) == known
    assert all(name in str(info.value) for name in known)


def test_models_unknown_name_keeps_its_wording():
    with pytest.raises(ValueError) as info:
        moewir.create_model("nope")
    assert str(info.value) == f"unknown model 'nope'; registered models: {', '.join(moewir.list_models())}"
    assert moewir.list_models() == sorted(moewir.list_models())
    from moewir.models.registry import register_model
    with pytest.raises(ValueError, match="model 'moewirnet' is already registered"):
        register_model("moewirnet", lambda **kw: None, {})


@pytest.mark.parametrize("call,message", [
    (lambda: synthesize(np.zeros((8, 8, 3)), "fog", 0, 0.5), "unknown synthesis task 'fog'; known: haze"),
    (lambda: create_weighting("gradnorm", ["rain"]), "unknown weighting 'gradnorm'; known: equal, rci, ori"),
    (lambda: run_study({}, "depth"), "unknown ablation study 'depth'; known: routing, experts, weighting, topk"),
    (lambda: make_describer("blip"), "unknown describer 'blip'; known: builtin, clip"),
    (lambda: luma(np.zeros((3, 2, 2)), "rec709"), "unknown luma convention 'rec709'; known: bt601"),
    (lambda: LPIPS("squeeze"), "unknown LPIPS backbone 'squeeze'; known: alex, vgg"),
    (lambda: build_metrics(["psnr", "fid", "kid"]), "unknown metric(s) 'fid', 'kid'; known: psnr, ssim, niqe, lpips"),
])
def test_callers_raise_the_registry_error(call, message):
    with pytest.raises(UnknownNameError) as info:
        call()
    assert str(info.value).startswith(message)


def test_describer_specs():
    assert make_describer("builtin").name == "builtin-v1"
    with pytest.raises(ValueError, match="takes no argument"):
        make_describer("builtin:extra")
    with pytest.raises(ValueError, match="clip:<folder>"):
        make_describer("clip")


def test_build_metrics_keeps_the_table_order():
    assert [m.name for m in build_metrics(["psnr", "ssim"])] == ["psnr", "ssim"]
    assert [m.name for m in build_metrics(["ssim", "niqe"])] == ["psnr", "ssim", "niqe"]
    with pytest.raises(ValueError, match="LPIPS needs local weights"):
        build_metrics(["lpips"])
