"""Physically grounded weather generators.

Every generator is ``step(image, rng, severity, scene) -> (image, params)``: ``image`` is a
float32 ``H x W x 3`` RGB array in ``[0, 1]``, ``rng`` a NumPy generator (the only source of
randomness, so a seed fixes the output), ``severity`` in ``[0, 1]`` scales the physical
parameters, and ``scene`` is a dict shared by the steps of one sample (the night step leaves
its illumination map there for the lit streaks). Random draws are quantiles ``u ~ U(0, 1)``
mapped through ranges that grow with severity, so for one seed the degradation grows
monotonically with severity. ``params`` records every drawn parameter for the manifest.
"""
from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F

from ..ops.color import luma
from ..ops.filters import line_kernel
from .filters import convolve, gaussian_blur, gaussian_kernel, lowfreq_noise, screen

__all__ = ["depth_proxy", "haze", "rain", "raindrop", "snow", "night", "sensor_noise", "veil"]


def _lerp(lo: float, hi: float, t: float) -> float:
    return lo + (hi - lo) * t


def _px(image: np.ndarray, fraction: float) -> float:
    """A length given as a fraction of the shorter side, in pixels (generators scale with size)."""
    return fraction * min(image.shape[:2])


def depth_proxy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Relative depth in ``[0, 1]`` (1 = far) when no depth map is given.

    Outdoor photos are mostly farther towards the top; bright, smooth regions (sky) are far;
    a smooth random field breaks the ramp so haze is not a pure vertical gradient.
    """
    h, w = image.shape[:2]
    ramp = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None].repeat(w, axis=1)
    bright = gaussian_blur(luma(image, "bt601-full", channel_axis=-1), _px(image, 0.03))
    field = lowfreq_noise(h, w, rng, max(8.0, _px(image, 0.35)))
    depth = 0.6 * ramp + 0.2 * bright + 0.2 * field
    depth -= depth.min()
    return depth / max(float(depth.max()), 1e-6)


def veil(image: np.ndarray, beta: float, airlight: np.ndarray, depth: np.ndarray | float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Atmospheric scattering ``I = J t + A (1 - t)``, ``t = exp(-beta d)``; returns ``(I, t)``."""
    t = np.exp(-beta * np.asarray(depth, dtype=np.float32))
    t3 = t[..., None] if np.ndim(t) == 2 else t
    return image * t3 + airlight * (1.0 - t3), np.broadcast_to(t, image.shape[:2])


def haze(image, rng, severity, scene, depth: np.ndarray | None = None):
    """Haze by the scattering model with coloured airlight and a (proxy or given) depth map."""
    u_beta, u_a = rng.random(2)
    tint = rng.normal(0.0, 0.025, 3)
    d = depth_proxy(image, rng) if depth is None else np.clip(depth, 0, 1).astype(np.float32)
    beta = _lerp(0.2, 0.5, u_beta) + 1.6 * severity
    airlight = np.clip(_lerp(0.7, 0.95, u_a) + tint, 0.0, 1.0).astype(np.float32)
    out, t = veil(image, beta, airlight, d)
    return out, {"beta": beta, "airlight": airlight.tolist(), "mean_transmission": float(t.mean()),
                 "depth": "given" if depth is not None else "proxy"}


def _streak_layer(shape, rng, severity, length, angle, width, density):
    """Point seeds convolved with a line kernel (motion blur), softened to ``width``."""
    h, w = shape
    seeds = (rng.random((h, w)) < density).astype(np.float32) * rng.uniform(0.6, 1.0, (h, w)).astype(np.float32)
    streaks = convolve(seeds, line_kernel(length, angle).numpy())
    return np.clip(gaussian_blur(streaks, width), 0.0, 1.0) if width > 0 else np.clip(streaks, 0.0, 1.0)


def rain(image, rng, severity, scene):
    """Rain streaks in 1-3 depth layers (near layers longer, wider, sparser), blended as light,
    plus the veiling haze of heavy rain. At night (``scene["illumination"]``) the streaks are
    visible only where lights reach them."""
    h, w = image.shape[:2]
    n_layers = 1 + int(rng.integers(0, 3))
    base_angle = rng.uniform(-25.0, 25.0)
    light = np.zeros((h, w), np.float32)
    layers = []
    for i in range(n_layers):
        near = i / max(1, n_layers - 1) if n_layers > 1 else 0.5
        u_len, u_den, u_bri = rng.random(3)
        p = dict(length=_px(image, _lerp(0.04, 0.10, u_len) * (0.6 + 0.8 * near)) * (0.7 + 0.6 * severity),
                 angle=base_angle + rng.normal(0.0, 3.0), width=_lerp(0.3, 0.6, near) * max(1.0, _px(image, 0.004)),
                 density=(0.0005 + 0.006 * severity * _lerp(0.6, 1.0, u_den)) * (1.2 - 0.6 * near),
                 brightness=_lerp(0.55, 0.85, u_bri) * (0.5 + 0.5 * severity))
        layer = _streak_layer((h, w), rng, severity, p["length"], p["angle"], p["width"], p["density"])
        light = screen(light, p["brightness"] * layer)
        layers.append({k: float(v) for k, v in p.items()})
    illumination = scene.get("illumination")
    if illumination is not None:
        light = light * np.clip(0.15 + 1.5 * illumination, 0.0, 1.0)
    out = screen(image, light[..., None] * np.array([0.95, 0.97, 1.0], np.float32))
    params = {"layers": layers, "base_angle": float(base_angle)}
    if illumination is None:
        beta_v = 0.6 * severity ** 2 * rng.uniform(0.5, 1.0)
        out, _ = veil(out, beta_v, np.full(3, rng.uniform(0.75, 0.9), np.float32))
        params["veil_beta"] = float(beta_v)
    return np.clip(out, 0.0, 1.0), params


def raindrop(image, rng, severity, scene):
    """Drops on the lens: each is a small lens showing an inverted, minified and defocused view
    of the scene around it, with a soft edge, a darker rim and a highlight."""
    h, w = image.shape[:2]
    n = int(round(_lerp(3, 12, rng.random()) + 40 * severity))
    blur = _px(image, _lerp(0.004, 0.01, rng.random()))
    background = gaussian_blur(image, blur)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    src_y, src_x, alpha = ys.copy(), xs.copy(), np.zeros((h, w), np.float32)
    shade = np.ones((h, w), np.float32)
    drops = []
    for _ in range(n):
        r = _px(image, _lerp(0.015, 0.05, rng.random()) * (0.7 + 0.6 * severity))
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        elong = rng.uniform(1.0, 1.4)  # gravity stretches drops downwards
        mag = rng.uniform(1.5, 3.0)    # a drop lens sees a larger area, inverted
        y0, y1 = max(0, int(cy - r * elong) - 1), min(h, int(cy + r * elong) + 2)
        x0, x1 = max(0, int(cx - r) - 1), min(w, int(cx + r) + 2)
        if y0 >= y1 or x0 >= x1:
            continue
        dy, dx = ys[y0:y1, x0:x1] - cy, xs[y0:y1, x0:x1] - cx
        rho = np.sqrt((dx / r) ** 2 + (dy / (r * elong)) ** 2)
        inside = rho < 1.0
        a = np.clip((1.0 - rho) / 0.25, 0.0, 1.0)
        src_y[y0:y1, x0:x1] = np.where(inside, cy - mag * dy, src_y[y0:y1, x0:x1])
        src_x[y0:y1, x0:x1] = np.where(inside, cx - mag * dx, src_x[y0:y1, x0:x1])
        alpha[y0:y1, x0:x1] = np.maximum(alpha[y0:y1, x0:x1], a * inside)
        rim = 0.75 + 0.25 * (1.0 - np.clip((rho - 0.7) / 0.3, 0.0, 1.0))
        highlight = 0.25 * np.exp(-(((dx + 0.35 * r) / (0.2 * r)) ** 2 + ((dy + 0.35 * r) / (0.2 * r)) ** 2))
        shade[y0:y1, x0:x1] = np.where(inside, rim + highlight, shade[y0:y1, x0:x1])
        drops.append({"y": float(cy), "x": float(cx), "radius": float(r), "elongation": float(elong),
                      "magnification": float(mag)})
    grid = torch.from_numpy(np.stack([src_x / max(w - 1, 1) * 2 - 1, src_y / max(h - 1, 1) * 2 - 1], -1))[None]
    bg = torch.from_numpy(background).permute(2, 0, 1)[None]
    refracted = F.grid_sample(bg, grid.float(), mode="bilinear", padding_mode="reflection",
                              align_corners=True)[0].permute(1, 2, 0).numpy()
    refracted = np.clip(refracted * shade[..., None], 0.0, 1.0)
    a3 = alpha[..., None]
    return image * (1.0 - a3) + refracted * a3, {"drops": drops, "defocus_sigma": float(blur),
                                                  "coverage": float(alpha.mean())}


def snow(image, rng, severity, scene):
    """Snowflakes in three size classes (small and sharp, large and defocused near the lens),
    partly opaque, slightly wind-blurred, plus a whitish veil."""
    h, w = image.shape[:2]
    wind = rng.uniform(-30.0, 30.0)
    flakes = np.zeros((h, w), np.float32)
    layers = []
    for size, density, defocus in ((0.003, 0.004, 0.0), (0.007, 0.0012, 0.3), (0.015, 0.0002, 0.8)):
        u_den, u_len = rng.random(2)
        radius = max(0.6, _px(image, size))
        dens = density * (0.2 + 1.8 * severity) * _lerp(0.6, 1.0, u_den)
        seeds = (rng.random((h, w)) < dens).astype(np.float32) * rng.uniform(0.5, 1.0, (h, w)).astype(np.float32)
        blob = gaussian_kernel(radius / 1.5)
        layer = convolve(seeds, blob / blob.max())
        length = 1.0 + _lerp(0.0, 3.0, u_len) * radius
        motion = line_kernel(length, wind).numpy()
        layer = convolve(layer, motion / motion.sum())
        if defocus:
            layer = gaussian_blur(layer, defocus * radius)
        flakes = screen(flakes, np.clip(layer, 0.0, 1.0))
        layers.append({"radius": float(radius), "density": float(dens), "motion_length": float(length)})
    colour = rng.uniform(0.9, 1.0)
    out = image * (1.0 - flakes[..., None]) + colour * flakes[..., None]
    beta_v = 0.35 * severity * rng.uniform(0.4, 1.0)
    out, _ = veil(out, beta_v, np.full(3, rng.uniform(0.8, 0.95), np.float32))
    return np.clip(out, 0.0, 1.0), {"layers": layers, "wind_deg": float(wind), "flake_colour": float(colour),
                                     "veil_beta": float(beta_v), "coverage": float(flakes.mean())}


def night(image, rng, severity, scene):
    """Turn a day photo into a night scene: dim, blue-shifted ambient light, and glowing light
    sources (the brightest spots of the scene and a few lamps) with halos. This changes the
    scene itself, so it is the target of night tasks. Leaves ``scene["illumination"]``."""
    h, w = image.shape[:2]
    gamma, gain = rng.uniform(1.6, 2.4), rng.uniform(0.2, 0.4)
    dark = gain * image ** gamma * np.array([0.8, 0.9, 1.1], np.float32)
    lum = luma(image, "bt601-full", channel_axis=-1)
    lights = (lum >= np.quantile(lum, 0.997)).astype(np.float32) * 0.5
    n_lamps = int(rng.integers(2, 7))
    for _ in range(n_lamps):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        lights[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = 1.0
    warm = np.array(rng.choice([[1.0, 0.75, 0.4], [1.0, 0.9, 0.7], [0.8, 0.9, 1.0]]), np.float32)
    halo = gaussian_blur(lights, _px(image, rng.uniform(0.02, 0.05)))
    halo /= max(float(halo.max()), 1e-6)
    core = gaussian_blur(lights, max(1.0, _px(image, 0.004)))
    core /= max(float(core.max()), 1e-6)
    glow = np.clip(0.6 * halo + core, 0.0, 1.0)
    scene["illumination"] = glow
    out = np.clip(dark + glow[..., None] * warm, 0.0, 1.0)
    return out, {"gamma": float(gamma), "gain": float(gain), "lamps": n_lamps, "light_colour": warm.tolist()}


def sensor_noise(image, rng, severity, scene):
    """Low-light sensor noise: Poisson-Gaussian, variance ``a I + b``."""
    a = _lerp(0.002, 0.01, rng.random()) * (0.5 + severity)
    b = _lerp(1e-5, 1e-4, rng.random())
    noisy = image + rng.normal(0.0, 1.0, image.shape).astype(np.float32) * np.sqrt(a * image + b)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32), {"shot": float(a), "read": float(b)}
