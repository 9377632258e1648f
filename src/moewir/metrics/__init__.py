"""Image quality metrics with the conventions papers report (BasicSR's PSNR / SSIM)."""
from .fidelity import psnr, rgb_to_y, ssim

__all__ = ["psnr", "ssim", "rgb_to_y"]
