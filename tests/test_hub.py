"""hubconf.py: torch.hub finds one entry per registered model, and pretrained=True is the shipped network."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

import moewir
from moewir.models import needs_weights, read_tensors, shipped_weights

REPO = Path(__file__).resolve().parent.parent


def _hubconf():
    spec = importlib.util.spec_from_file_location("hubconf_under_test", REPO / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entries(module) -> set[str]:
    """What torch.hub.list shows: the module's public callables."""
    return {name for name in dir(module) if callable(getattr(module, name)) and not name.startswith("_")}


def test_one_entry_per_registered_model():
    assert _entries(_hubconf()) == {name.replace("-", "_") for name in moewir.list_models()}


def test_pretrained_loads_the_shipped_weights():
    net = torch.hub.load(str(REPO), "moewirnet_tiny", source="local", pretrained=True)
    reference = moewir.load("moewirnet-tiny", device="cpu").network
    assert type(net) is type(reference) and not net.training
    x = torch.rand(1, 3, 24, 40, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out, expected = net(x), reference(x)
    assert out.shape == x.shape
    assert torch.equal(out, expected)
    assert (out - x).abs().mean() > 1e-3  # the shipped weights do something (a zero-init net returns x)


def test_without_pretrained_the_weights_are_random():
    torch.manual_seed(0)
    net = torch.hub.load(str(REPO), "moewirnet_tiny", source="local")
    assert net.training
    shipped = read_tensors(shipped_weights("moewirnet-tiny"))
    assert any(not torch.equal(v, shipped[k]) for k, v in net.state_dict().items() if v.is_floating_point())


def test_overrides_reach_the_config():
    net = torch.hub.load(str(REPO), "moewirnet_tiny", source="local", window_size=16)
    assert net.config.window_size == 16


def test_pretrained_without_shipped_weights_is_a_clear_error():
    assert shipped_weights("moewirnet") is None
    with pytest.raises(ValueError, match=r"no weights are shipped for 'moewirnet' \(models with shipped weights: "
                                         r"moewirnet_tiny, restormer_tiny_matched\)"):
        torch.hub.load(str(REPO), "moewirnet", source="local", pretrained=True)


def test_docstrings_say_which_entries_have_weights():
    """torch.hub.help shows the docstring: it must not promise weights that are not shipped."""
    hubconf = _hubconf()
    for name in moewir.list_models():
        doc = getattr(hubconf, name.replace("-", "_")).__doc__
        if not needs_weights(name):
            assert "learns nothing" in doc, name
        elif shipped_weights(name) is None:
            assert "No shipped weights" in doc, name
        else:
            assert "pretrained=True" in doc and "No shipped weights" not in doc, name


def test_dependencies_are_the_runtime_requirements():
    """torch.hub checks ``dependencies`` before a call: they are pyproject's, as module names."""
    module_of = {"pillow": "PIL", "pyyaml": "yaml"}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [module_of.get(n, n) for n in (re.split(r"[<>=!~ \[]", d)[0].lower() for d in project["dependencies"])]
    source = (REPO / "hubconf.py").read_text()
    found = re.search(r"^dependencies = (\[.*\])$", source, re.M)
    assert found and sorted(eval(found.group(1))) == sorted(wanted)


def test_importing_hubconf_imports_nothing_heavy():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import hubconf; "
            "print(sorted(m for m in ('torch', 'numpy', 'moewir', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
