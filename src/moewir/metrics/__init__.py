"""Image quality metrics with the conventions papers report (BasicSR's PSNR / SSIM / NIQE; LPIPS v0.1)."""
from .fidelity import psnr, ssim
from .lpips import LPIPS, lpips
from .niqe import niqe

__all__ = ["psnr", "ssim", "niqe", "LPIPS", "lpips"]
