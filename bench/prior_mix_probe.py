"""How much of the dark channel prior a ``prior: dcp_mix`` network takes, per task: the mean of
its mix ``M`` (``I_hat = I + M (P - I) + H_refine``, models/unet.py) over each of 10 held-out
256-px centre crops of data/v2's test split, per task (issue 17, docs/architecture.md, choice 13).

    python bench/prior_mix_probe.py experiments/weights_v7/checkpoints/net_ema_800.safetensors
"""
import statistics
import sys
from pathlib import Path

import torch

from moewir.data import read_image
from moewir.models import build_from_weights
torch.set_num_threads(1)
ckpt = sys.argv[1]
net = build_from_weights(ckpt).eval()
seen = []
net.prior_mix.register_forward_hook(lambda m, i, o: seen.append(o.mean().item()))
root = Path("data/v2/test")
for task in sorted(p.name for p in root.iterdir()):
    seen.clear()
    for f in sorted((root / task / "input").glob("*.png"))[:10]:
        a = read_image(f)
        h, w = a.shape[:2]
        i, j = (h - 256) // 2, (w - 256) // 2
        x = torch.from_numpy(a[i:i + 256, j:j + 256]).permute(2, 0, 1)[None]
        with torch.no_grad():
            net(x)
    print(f"{task}: mean M {statistics.mean(seen):.3f} (min {min(seen):.3f}, max {max(seen):.3f}, {len(seen)} crops)")
