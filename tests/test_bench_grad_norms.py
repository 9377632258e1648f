"""bench/grad_norms.py: the gradient norm it reports is the one the trainer's clip sees."""
import torch

import moewir
from moewir.models import save_weights
from moewir.training.losses import CompositeLoss

def test_norms_match_clip_grad_norm(tmp_path, bench_module):
    grad_norms = bench_module("grad_norms")
    torch.manual_seed(0)
    net = moewir.create_model("moewirnet-tiny", dim=12, heads=(1, 1, 1, 1))
    weights = tmp_path / "net_5.safetensors"
    save_weights(weights, net)
    batches = [{t: (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)) for t in ("haze", "rain")}
               for _ in range(2)]
    criterion = CompositeLoss()
    norms = grad_norms.gradient_norms(weights, batches, criterion)

    # Independent reference: the norm torch's clip computes, one batch at a time, loss summed over tasks.
    net.train()
    for batch, reported in zip(batches, norms["total"]):
        net.zero_grad()
        sum(criterion(net(x), y) for x, y in batch.values()).backward()
        expected = torch.nn.utils.clip_grad_norm_(net.parameters(), float("inf"))
        assert abs(reported - float(expected)) < 1e-4 * float(expected)
    shares = [norms[f"share/{name}"] for name in ("channel", "spatial", "frequency")]
    assert len(shares[0]) == 2 * 9  # two batches x nine MoE blocks (encoder 3, bottleneck 2, decoder 3, refinement 1)
    for per_module in zip(*shares):  # the experts are part of the module: their squares sum below 1
        assert all(s > 0 for s in per_module) and sum(s * s for s in per_module) < 1
