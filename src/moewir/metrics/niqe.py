"""NIQE, the Natural Image Quality Evaluator (Mittal, Soundararajan & Bovik, "Making a 'Completely
Blind' Image Quality Analyzer", IEEE Signal Processing Letters 20(3), 2013).

A no-reference score: lower means closer to the statistics of pristine natural images. The
computation follows the authors' MATLAB release (``niqe_release/computequality.m``, LIVE, UT Austin)
with the input conventions of BasicSR's ``calculate_niqe``:

* ``image`` is an ``H x W x 3`` RGB array in ``[0, 1]`` (or ``H x W`` grey), rounded to 8-bit
  levels, as the MATLAB code reads ``uint8`` files;
* ``y_channel=True`` measures MATLAB's ``rgb2ycbcr`` luma (BT.601 studio range,
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` for 0-255 ``R, G, B``), else MATLAB's
  ``rgb2gray`` (``0.2989 R + 0.5870 G + 0.1140 B``, what ``computequality.m`` does with RGB files),
  either one rounded to an integer level;
* ``crop_border`` pixels are removed on every side, then the image is trimmed to whole 96x96 blocks;
* features at two scales: the image and its half-size version from MATLAB's bicubic, antialiased
  ``imresize`` (:func:`imresize`), with 48x48 blocks at the second scale.

The pristine model (mean and covariance of the 36 features over the release's corpus of natural
images) ships in ``data/niqe_pristine.npz``; see ``data/ATTRIBUTION.txt``.
"""
from __future__ import annotations

import functools
import math
from importlib import resources

import numpy as np
import torch

from ..ops.color import luma
from ..ops.filters import gaussian_blur

__all__ = ["niqe", "imresize"]

BLOCK = 96  # block side at the first scale, as in the release's example call
_GAUSSIAN_RADIUS, _GAUSSIAN_SIGMA = 3, 7 / 6  # fspecial('gaussian', 7, 7/6)
_SHAPES = np.arange(200, 10001) / 1000  # the release's search grid 0.2:0.001:10 for the shape
_NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (1, -1))  # circshift offsets: horizontal, vertical, two diagonals


@functools.cache
def _pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(36,)`` and covariance ``(36, 36)`` of the pristine features (``modelparameters.mat``)."""
    source = resources.files("moewir.metrics").joinpath("data/niqe_pristine.npz")
    with source.open("rb") as f, np.load(f, allow_pickle=False) as data:
        return data["mu"], data["cov"]


@functools.cache
def _shape_ratios() -> np.ndarray:
    """``rho(a) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))`` over the shape grid (the AGGD moment ratio)."""
    lg = np.vectorize(math.lgamma)
    return np.exp(2 * lg(2 / _SHAPES) - lg(1 / _SHAPES) - lg(3 / _SHAPES))


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with ``a = -0.5`` (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    near = 1.5 * ax ** 3 - 2.5 * ax ** 2 + 1
    far = -0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2
    return np.where(ax <= 1, near, np.where(ax <= 2, far, 0.0))


def _resize_matrix(length: int, scale: float) -> np.ndarray:
    """The ``(ceil(scale * length), length)`` matrix MATLAB's ``imresize`` applies along one axis.

    Output sample ``u`` (0-based) sits at input coordinate ``(u + 0.5) / scale - 0.5``; when shrinking,
    the kernel is stretched to ``x -> scale * cubic(scale * x)`` (antialiasing, width ``4 / scale``).
    Each row's weights are normalised to sum to 1 and taps beyond the ends are mirrored with the
    edge sample repeated (``..., x1, x0 | x0, x1, ...``).
    """
    out_length = math.ceil(length * scale)
    shrink = min(scale, 1.0)
    width = 4.0 / shrink
    centres = (np.arange(out_length) + 0.5) / scale - 0.5
    taps = np.floor(centres - width / 2)[:, None] + np.arange(math.ceil(width) + 2)
    weights = shrink * _cubic(shrink * (centres[:, None] - taps))
    weights /= weights.sum(axis=1, keepdims=True)
    mirrored = np.mod(taps.astype(np.int64), 2 * length)
    mirrored = np.where(mirrored < length, mirrored, 2 * length - 1 - mirrored)
    matrix = np.zeros((out_length, length))
    np.add.at(matrix, (np.arange(out_length)[:, None], mirrored), weights)
    return matrix


def imresize(image: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB's ``imresize(image, scale)`` for a 2-D array: bicubic, antialiased when shrinking.

    The output is ``ceil(scale * H) x ceil(scale * W)``; rows are resized first, then columns.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"imresize expects a 2-D array, got shape {image.shape}")
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    rows = _resize_matrix(image.shape[0], scale) @ image
    return rows @ _resize_matrix(image.shape[1], scale).T


def _local_mean(image: np.ndarray) -> np.ndarray:
    """``imfilter(image, window, 'replicate')`` with the release's normalised 7x7 Gaussian window
    (sigma 7/6) of eqs. (2)-(3): separable, edges repeated, in the direct summation order."""
    blurred = gaussian_blur(torch.from_numpy(image), _GAUSSIAN_SIGMA, _GAUSSIAN_RADIUS, "replicate", "direct")
    return blurred.numpy()


def _mscn(image: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients, eq. (1): ``(I - mu) / (sigma + 1)``.

    ``mu`` and ``sigma`` are the Gaussian-weighted local mean and standard deviation of eqs. (2)-(3),
    the latter as ``sqrt(|E[I^2] - mu^2|)`` like the release.
    """
    mu = _local_mean(image)
    sigma = np.sqrt(np.abs(_local_mean(image * image) - mu * mu))
    return (image - mu) / (sigma + 1)


def _rms(values: np.ndarray) -> float:
    """Root mean square, NaN for no values (MATLAB's ``sqrt(mean([]))``)."""
    return math.sqrt(np.mean(values * values)) if values.size else math.nan


def _fit_aggd(values: np.ndarray) -> tuple[float, float, float]:
    """Moment-matching fit of a zero-mode asymmetric generalised Gaussian: ``(shape, beta_l, beta_r)``.

    The left / right standard deviations give ``gamma_hat = sigma_l / sigma_r``; the shape is the grid
    value whose ratio ``rho`` is closest to ``r_hat (gamma_hat^3 + 1)(gamma_hat + 1) / (gamma_hat^2 + 1)^2``
    with ``r_hat = E[|x|]^2 / E[x^2]``, and ``beta = sigma sqrt(Gamma(1/a) / Gamma(3/a))`` on each side.
    If a side has no values its parameters are NaN and the shape is the grid's first value, which is
    what the release's ``min`` over a NaN vector returns.
    """
    left, right = _rms(values[values < 0]), _rms(values[values > 0])
    if math.isnan(left) or math.isnan(right):
        shape = _SHAPES[0]
    else:
        gamma_hat = left / right
        r_hat = np.mean(np.abs(values)) ** 2 / np.mean(values * values)
        r_norm = r_hat * (gamma_hat ** 3 + 1) * (gamma_hat + 1) / (gamma_hat ** 2 + 1) ** 2
        shape = _SHAPES[np.argmin((_shape_ratios() - r_norm) ** 2)]
    spread = math.sqrt(math.gamma(1 / shape) / math.gamma(3 / shape))
    return float(shape), left * spread, right * spread


def _block_features(block: np.ndarray) -> list[float]:
    """The 18 features of one block of MSCN coefficients (the release's ``computefeature``).

    Two for the coefficients themselves: the shape and the mean scale ``(beta_l + beta_r) / 2`` of an
    AGGD fit (the generalised Gaussian of the paper). Four for each product with a neighbour (shifted
    circularly inside the block): AGGD shape, mean ``eta = (beta_r - beta_l) Gamma(2/a) / Gamma(1/a)``,
    ``beta_l`` and ``beta_r``.
    """
    shape, beta_l, beta_r = _fit_aggd(block.ravel())
    features = [shape, (beta_l + beta_r) / 2]
    for offset in _NEIGHBOURS:
        products = block * np.roll(block, offset, axis=(0, 1))
        shape, beta_l, beta_r = _fit_aggd(products.ravel())
        eta = (beta_r - beta_l) * math.gamma(2 / shape) / math.gamma(1 / shape)
        features += [shape, eta, beta_l, beta_r]
    return features


def _scale_features(image: np.ndarray, size: int) -> np.ndarray:
    """``(blocks, 18)`` features of the MSCN coefficients of ``image`` in ``size x size`` blocks, row-major."""
    coefficients = _mscn(image)
    rows, cols = image.shape[0] // size, image.shape[1] // size
    return np.array([_block_features(coefficients[r * size:(r + 1) * size, c * size:(c + 1) * size])
                     for r in range(rows) for c in range(cols)])


def _luma_levels(image: np.ndarray, y_channel: bool) -> np.ndarray:
    """0-255 integer levels of the Y (``rgb2ycbcr``) or grey (``rgb2gray``) channel, rounded as ``uint8``."""
    image = np.asarray(image, dtype=np.float64)
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"NIQE expects an H x W x 3 RGB or H x W grey image, got shape {image.shape}")
    if not np.isfinite(image).all():
        raise ValueError("NIQE got an image with NaN or infinite values")
    levels = np.floor(np.clip(image, 0, 1) * 255 + 0.5)
    if levels.ndim == 2:
        return levels
    convention = "bt601-studio" if y_channel else "matlab-rgb2gray"
    return np.floor(luma(levels, convention, channel_axis=-1, peak=255.0) + 0.5)


def _pinv(matrix: np.ndarray) -> np.ndarray:
    """MATLAB's ``pinv``: singular values below ``max(size) * eps(largest)`` are dropped."""
    largest = np.linalg.norm(matrix, 2)
    return np.linalg.pinv(matrix, rcond=max(matrix.shape) * np.spacing(largest) / largest)


def _mvg_distance(features: np.ndarray) -> float:
    """Distance between the image's and the pristine multivariate Gaussians (the NIQE index).

    ``sqrt((nu_1 - nu_2)^T ((Sigma_1 + Sigma_2) / 2)^+ (nu_1 - nu_2))``, with the image's model fitted as
    the release does: ``nanmean`` of the block features and ``nancov`` (blocks with any NaN dropped).
    """
    finite = features[np.isfinite(features).all(axis=1)]
    if len(finite) < 2:
        raise ValueError(f"NIQE is undefined here: only {len(finite)} of {len(features)} blocks have finite "
                         "features (flat image?)")
    mu_pristine, cov_pristine = _pristine_model()
    diff = mu_pristine - np.nanmean(features, axis=0)
    pooled = (cov_pristine + np.cov(finite, rowvar=False)) / 2
    return float(np.sqrt(diff @ _pinv(pooled) @ diff))


def niqe(image: np.ndarray, crop_border: int = 0, y_channel: bool = True) -> float:
    """NIQE of one image (lower is better); see the module docstring for the conventions.

    Needs at least two whole 96x96 blocks after ``crop_border`` (the block features' covariance is
    undefined for one block).
    """
    levels = _luma_levels(image, y_channel)
    if crop_border:
        levels = levels[crop_border:-crop_border, crop_border:-crop_border]
    h, w = levels.shape
    rows, cols = h // BLOCK, w // BLOCK
    if rows * cols < 2:
        raise ValueError(f"NIQE needs at least two whole {BLOCK}x{BLOCK} blocks (e.g. {BLOCK}x{2 * BLOCK} pixels) "
                         f"after crop_border={crop_border}, got a {h}x{w} image")
    levels = levels[:rows * BLOCK, :cols * BLOCK]
    features = np.hstack([_scale_features(levels, BLOCK), _scale_features(imresize(levels, 0.5), BLOCK // 2)])
    return _mvg_distance(features)
