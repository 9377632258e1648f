"""Image quality metrics with the conventions papers report (BasicSR's PSNR / SSIM / NIQE; LPIPS v0.1)."""
from .fidelity import psnr, rgb_to_y, ssim
from .lpips import LPIPS, lpips
from .niqe import niqe

__all__ = ["psnr", "ssim", "rgb_to_y", "niqe", "LPIPS", "lpips"]
