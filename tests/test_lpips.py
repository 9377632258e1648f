"""LPIPS from local files: torchvision / lpips key layouts, and agreement with a naive reference."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from moewir.metrics import LPIPS, lpips

# torchvision.models.alexnet().features / vgg16().features: conv index -> (out, in, k)
ALEX_CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
VGG_CONVS = {0: (64, 3, 3), 2: (64, 64, 3), 5: (128, 64, 3), 7: (128, 128, 3), 10: (256, 128, 3),
             12: (256, 256, 3), 14: (256, 256, 3), 17: (512, 256, 3), 19: (512, 512, 3), 21: (512, 512, 3),
             24: (512, 512, 3), 26: (512, 512, 3), 28: (512, 512, 3)}
LIN_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
CONVS = {"alex": ALEX_CONVS, "vgg": VGG_CONVS}


def _torchvision_layout(convs):
    names = []
    for i, (out, inp, k) in convs.items():
        names += [(f"features.{i}.weight", (out, inp, k, k)), (f"features.{i}.bias", (out,))]
    return names


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_key_layout_is_torchvision_and_lpips(net):
    state = LPIPS(net).state_dict()
    expected = _torchvision_layout(CONVS[net])
    expected += [(f"lin{k}.model.1.weight", (1, c, 1, 1)) for k, c in enumerate(LIN_CHANNELS[net])]
    assert [(k, tuple(v.shape)) for k, v in state.items()] == expected


def _random_files(tmp_path, net, full_model=True):
    """He-initialised convolutions (activations stay O(1) through VGG16), small biases, positive lin weights."""
    g = torch.Generator().manual_seed(0)
    backbone = {}
    for name, shape in _torchvision_layout(CONVS[net]):
        std = (2 / np.prod(shape[1:])) ** 0.5 if name.endswith("weight") else 0.1
        backbone[name] = torch.randn(shape, generator=g) * std
    if full_model:  # as in torchvision's checkpoint: the classifier is there too, and ignored
        backbone["classifier.1.weight"] = torch.randn(10, 4, generator=g)
    else:  # the state dict of the `features` sub-module alone
        backbone = {k.removeprefix("features."): v for k, v in backbone.items()}
    linear = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(LIN_CHANNELS[net])}
    torch.save(backbone, tmp_path / f"{net}_backbone.pth")
    torch.save(linear, tmp_path / f"{net}_lin.pth")
    return tmp_path / f"{net}_backbone.pth", tmp_path / f"{net}_lin.pth", backbone, linear


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Random checkpoints in torchvision's full-model layout, written once per net."""
    cache = {}

    def get(net):
        if net not in cache:
            cache[net] = _random_files(tmp_path_factory.mktemp(net), net)
        return cache[net]
    return get


def _reference(a, b, backbone, linear, net):
    """Backbone written out with functional calls; normalisation and averaging in float64 numpy."""
    def w(i):
        return backbone.get(f"features.{i}.weight", backbone.get(f"{i}.weight"))

    def bias(i):
        return backbone.get(f"features.{i}.bias", backbone.get(f"{i}.bias"))

    def features(x):
        shift, scale = torch.tensor([-.030, -.088, -.188]), torch.tensor([.458, .448, .450])
        x = (2 * x - 1 - shift.view(1, 3, 1, 1)) / scale.view(1, 3, 1, 1)
        taps = []
        if net == "alex":
            # conv index, max-pool (3, stride 2) before it, stride, padding; every ReLU output is a tap
            for i, pool, stride, pad in [(0, False, 4, 2), (3, True, 1, 2), (6, True, 1, 1), (8, False, 1, 1),
                                         (10, False, 1, 1)]:
                x = F.max_pool2d(x, 3, 2) if pool else x
                x = F.relu(F.conv2d(x, w(i), bias(i), stride=stride, padding=pad))
                taps.append(x)
        else:
            blocks = [(0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28)]
            for n, block in enumerate(blocks):
                if n:
                    x = F.max_pool2d(x, 2, 2)
                for i in block:
                    x = F.relu(F.conv2d(x, w(i), bias(i), padding=1))
                taps.append(x)
        return [t.double().numpy() for t in taps]

    total = np.zeros(a.shape[0])
    for k, (fa, fb) in enumerate(zip(features(a), features(b))):
        na = fa / (np.sqrt(np.sum(fa ** 2, axis=1, keepdims=True)) + 1e-10)
        nb = fb / (np.sqrt(np.sum(fb ** 2, axis=1, keepdims=True)) + 1e-10)
        weights = linear[f"lin{k}.model.1.weight"].double().numpy().reshape(1, -1, 1, 1)
        total += np.mean(np.sum(weights * (na - nb) ** 2, axis=1), axis=(1, 2))
    return total


@pytest.mark.parametrize("net,full_model", [("alex", True), ("alex", False), ("vgg", True)])
def test_matches_naive_reference(tmp_path, files, net, full_model):
    backbone_path, lin_path, backbone, linear = files(net) if full_model else _random_files(tmp_path, net, False)
    model = LPIPS.from_files(backbone_path, lin_path, net=net)
    g = torch.Generator().manual_seed(1)
    size = (48, 56) if net == "alex" else (32, 40)  # VGG16 is slow on CPU
    a, b = torch.rand(2, 3, *size, generator=g), torch.rand(2, 3, *size, generator=g)
    ours = lpips(a, b, model)
    assert ours.shape == (2,) and ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), _reference(a, b, backbone, linear, net), rtol=1e-5)
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


def test_single_image_and_identity(files):
    model = LPIPS.from_files(*files("alex")[:2])
    a, b = torch.rand(2, 3, 40, 48), torch.rand(2, 3, 40, 48)
    assert lpips(a[1], b[1], model).item() == pytest.approx(lpips(a, b, model)[1].item(), rel=1e-6)
    np.testing.assert_array_equal(lpips(a, a, model).numpy(), 0.0)


def test_safetensors_and_gradients(tmp_path, files):
    from safetensors.torch import save_file
    _, lin_path, backbone, _ = files("alex")
    save_file(backbone, tmp_path / "alex.safetensors")
    model = LPIPS.from_files(tmp_path / "alex.safetensors", lin_path)
    a = torch.rand(1, 3, 40, 40, requires_grad=True)
    model(a, torch.rand(1, 3, 40, 40)).sum().backward()  # usable as a loss
    assert a.grad is not None and a.grad.abs().sum() > 0


def test_errors(tmp_path, files):
    alex_backbone, alex_lin, _, _ = files("alex")
    vgg_backbone, _, _, _ = files("vgg")
    with pytest.raises(ValueError, match=r"alex_lin\.pth: 10 of 10 expected keys missing, "
                                         r"first: features\.0\.weight, features\.0\.bias, features\.3\.weight$"):
        LPIPS.from_files(alex_lin, alex_lin)
    with pytest.raises(ValueError, match=r"vgg_backbone\.pth: 6 of 10 expected keys missing, "
                                         r"first: features\.3\.weight"):
        LPIPS.from_files(vgg_backbone, alex_lin, net="alex")
    with pytest.raises(ValueError, match=r"alex_lin\.pth: lin1\.model\.1\.weight has shape \(1, 192, 1, 1\), "
                                         r"expected \(1, 128, 1, 1\)"):
        LPIPS.from_files(vgg_backbone, alex_lin, net="vgg")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"garbage\.pth: not a readable weights file"):
        LPIPS.from_files(garbage, alex_lin)
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        LPIPS.from_files(tmp_path / "nowhere.pth", alex_lin)
    with pytest.raises(ValueError, match="unknown LPIPS backbone"):
        LPIPS("squeeze")
    model = LPIPS.from_files(alex_backbone, alex_lin)
    with pytest.raises(ValueError, match=r"at least 31x31"):
        lpips(torch.rand(3, 30, 64), torch.rand(3, 30, 64), model)
    with pytest.raises(ValueError, match="differ in shape"):
        lpips(torch.rand(3, 32, 32), torch.rand(3, 32, 40), model)
