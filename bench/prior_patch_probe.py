"""How good is the dark channel prior on a 128-px training patch, against the whole photo's prior
cropped to the same patch (issue 17: is the prior a network with ``model.prior: dcp`` sees in
training, computed on its patch, worse than the one it sees at inference, computed on the photo?)

    python bench/prior_patch_probe.py        # needs data/v2 (bench/default_weights.py data-v2)

24 haze training photos of data/v2 (a fixed random draw), 4 random 128-px patches each; PSNR on Y
against the clean patch, mean and standard deviation over the 96 patches. One thread.
"""
import random
import statistics
from pathlib import Path

import torch

from moewir.data import read_image
from moewir.metrics.fidelity import psnr
from moewir.models.dcp import DarkChannelPrior, DCPConfig
torch.set_num_threads(1)
root = Path("data/v2/train/HAZE"); files = sorted((root / "input").glob("*.png"))
rng = random.Random(0); files = rng.sample(files, 24)
dcp = DarkChannelPrior(DCPConfig()).eval()
def load(p): return torch.from_numpy(read_image(p)).permute(2, 0, 1)[None]
rows = {"input": [], "whole-image prior, cropped": [], "prior of the 128 patch": [], "prior of a 256 crop around it": []}
with torch.no_grad():
    for f in files:
        x, y = load(f), load(root / "target" / f.name)
        whole = dcp(x).clamp(0, 1)
        H, W = x.shape[-2:]
        for _ in range(4):
            i, j = rng.randrange(0, H - 127), rng.randrange(0, W - 127)
            sl = (..., slice(i, i + 128), slice(j, j + 128))
            rows["input"].append(psnr(x[sl], y[sl], y_channel=True).item())
            rows["whole-image prior, cropped"].append(psnr(whole[sl], y[sl], y_channel=True).item())
            rows["prior of the 128 patch"].append(psnr(dcp(x[sl]).clamp(0, 1), y[sl], y_channel=True).item())
            i2, j2 = max(0, min(i - 64, H - 256)), max(0, min(j - 64, W - 256))
            big = dcp(x[..., i2:i2 + 256, j2:j2 + 256]).clamp(0, 1)
            rows["prior of a 256 crop around it"].append(psnr(big[..., i - i2:i - i2 + 128, j - j2:j - j2 + 128], y[sl], y_channel=True).item())
print(f"{len(files)} haze training photos of data/v2, 4 random 128-px patches each, PSNR on Y (dB), mean ± std over patches")
for k, v in rows.items(): print(f"| {k} | {statistics.mean(v):.2f} ± {statistics.stdev(v):.2f} |")
