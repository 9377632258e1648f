"""A CLIP describer: visual features and zero-shot captions from a CLIP model on disk.

:class:`ClipDescriber` is the weights-based alternative to
:class:`~moewir.distill.features.BuiltinDescriber`. For every image it returns

* ``visual``: the L2-normalized CLIP image embedding;
* ``caption``: zero-shot classification of that embedding against text prompts, one group
  of prompts per caption attribute, written in the built-in caption's words so that captions
  from either describer compare the same way (:func:`~moewir.distill.features.embed_captions`):
  ``"{time} photo, {intensity} rain {form}, {scene} scene"`` with time ``day``/``night``,
  intensity ``light``/``moderate``/``heavy``, form ``streaks``/``drops`` and scene
  ``dark``/``dim``/``bright`` (the prompts are in :data:`PROMPTS`);
* ``rain_type``: read from the caption by :func:`~moewir.distill.features.rain_type_of_caption`.

It needs the ``transformers`` package and a Hugging Face CLIP checkpoint already on disk; it
never downloads anything (``local_files_only=True``). Fetch one beforehand, for example::

    huggingface-cli download openai/clip-vit-base-patch32 --local-dir clip-b32
    moewir distill index --describer clip:clip-b32 ...

Images are resized and cropped here, in torch, following the folder's
``preprocessor_config.json`` (shortest-edge bicubic resize, centre crop, mean/std
normalization), so no ``transformers`` image processor (and no torchvision) is needed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .features import Description, rain_type_of_caption

__all__ = ["ClipDescriber", "PROMPTS"]

#: Zero-shot prompts: attribute group -> caption word -> prompts (their text embeddings are averaged).
PROMPTS: dict[str, dict[str, tuple[str, ...]]] = {
    "time": {
        "day": ("a photo taken during the day", "a daytime photo of a rainy scene"),
        "night": ("a photo taken at night", "a nighttime photo of a rainy scene"),
    },
    "form": {
        "streaks": ("a photo with rain streaks", "rain falling in long thin streaks"),
        "drops": ("a photo with raindrops on the lens", "water droplets on a window"),
    },
    "intensity": {
        "light": ("a photo of light rain", "a photo with a few faint rain streaks"),
        "moderate": ("a photo of moderate rain", "a photo of steady rain"),
        "heavy": ("a photo of heavy rain", "a photo of a downpour"),
    },
    "scene": {
        "dark": ("a dark photo", "a very dark underexposed photo"),
        "dim": ("a dimly lit photo", "a photo with dim lighting"),
        "bright": ("a bright photo", "a brightly lit photo"),
    },
}

_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _size(value, default: int) -> tuple[str, int | tuple[int, int]]:
    """``("short", n)`` or ``("exact", (h, w))`` from an image processor ``size``/``crop_size`` entry."""
    if value is None:
        return "short", default
    if isinstance(value, int):
        return "short", value
    if "shortest_edge" in value:
        return "short", int(value["shortest_edge"])
    if "height" in value and "width" in value:
        return "exact", (int(value["height"]), int(value["width"]))
    return "short", default


class ClipDescriber:
    """Describer backed by a local Hugging Face CLIP checkpoint (see the module docstring)."""
    name = "clip"

    def __init__(self, folder: str, device: str | torch.device = "cpu"):
        try:
            from transformers import AutoTokenizer, CLIPModel
        except ImportError:
            raise ValueError("the clip describer needs the transformers package: pip install transformers") from None
        path = Path(folder).expanduser()
        if not (path.is_dir() and (path / "config.json").is_file() and any((path / w).is_file() for w in _WEIGHTS)):
            raise ValueError(f"{folder}: no CLIP model (config.json + weights) found; "
                             "the clip describer works only from local files")
        self.folder = str(path)
        self.device = torch.device(device)
        safetensors = any((path / w).is_file() for w in _WEIGHTS[:2])
        try:
            model = CLIPModel.from_pretrained(str(path), local_files_only=True, use_safetensors=safetensors or None)
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{folder}: cannot load the CLIP model or tokenizer from local files: {exc}") from exc
        self.model = model.float().eval().to(self.device)
        self._preprocessing(path)
        self.labels: dict[str, list[str]] = {}
        self.text: dict[str, torch.Tensor] = {}
        max_length = int(getattr(self.model.config.text_config, "max_position_embeddings", 77))
        with torch.no_grad():
            for group, choices in PROMPTS.items():
                rows = []
                for prompts in choices.values():
                    tokens = tokenizer(list(prompts), padding=True, truncation=True, max_length=max_length,
                                       return_tensors="pt")
                    out = self.model.text_model(input_ids=tokens["input_ids"].to(self.device),
                                                attention_mask=tokens["attention_mask"].to(self.device))
                    emb = F.normalize(self.model.text_projection(out[1]), dim=-1).mean(0)
                    rows.append(F.normalize(emb, dim=0))
                self.labels[group] = list(choices)
                self.text[group] = torch.stack(rows)

    def _preprocessing(self, path: Path) -> None:
        """Resize/crop/normalize settings from ``preprocessor_config.json`` (CLIP defaults otherwise)."""
        config = {}
        if (path / "preprocessor_config.json").is_file():
            config = json.loads((path / "preprocessor_config.json").read_text())
        side = int(getattr(self.model.config.vision_config, "image_size", 224))
        self.resize = _size(config.get("size"), side) if config.get("do_resize", True) else None
        crop = _size(config.get("crop_size"), side)
        self.crop = (crop[1] if crop[0] == "exact" else (crop[1], crop[1])) if config.get("do_center_crop", True) \
            else None
        mean = config.get("image_mean", _OPENAI_MEAN) if config.get("do_normalize", True) else (0.0, 0.0, 0.0)
        std = config.get("image_std", _OPENAI_STD) if config.get("do_normalize", True) else (1.0, 1.0, 1.0)
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]

    def pixels(self, image: np.ndarray) -> torch.Tensor:
        """``1 x 3 x S x S`` CLIP input from a float ``H x W x 3`` RGB image in ``[0, 1]``."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an H x W x 3 RGB image, got shape {image.shape}")
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None].clamp(0.0, 1.0)
        h, w = x.shape[2:]
        if self.resize is not None:
            kind, target = self.resize
            if kind == "exact":
                size = target
            else:
                scale = target / min(h, w)
                size = (max(target, int(h * scale)), max(target, int(w * scale)))
            if size != (h, w):
                x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0.0, 1.0)
        if self.crop is not None:
            ch, cw = self.crop
            h, w = x.shape[2:]
            if h < ch or w < cw:  # like the HF processors: pad with zeros to the crop size
                pad_h, pad_w = max(0, ch - h), max(0, cw - w)
                x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
                h, w = x.shape[2:]
            top, left = (h - ch) // 2, (w - cw) // 2
            x = x[:, :, top:top + ch, left:left + cw]
        return (x - self.mean) / self.std

    def embed(self, image: np.ndarray) -> torch.Tensor:
        """The L2-normalized CLIP image embedding (1-D tensor)."""
        with torch.no_grad():
            out = self.model.vision_model(pixel_values=self.pixels(image).to(self.device))
            return F.normalize(self.model.visual_projection(out[1]), dim=-1)[0]

    def caption(self, embedding: torch.Tensor) -> str:
        """Zero-shot caption: the best-matching word of every attribute group."""
        words = {group: self.labels[group][int((self.text[group] @ embedding).argmax())] for group in PROMPTS}
        return f"{words['time']} photo, {words['intensity']} rain {words['form']}, {words['scene']} scene"

    def describe(self, image: np.ndarray) -> Description:
        embedding = self.embed(image)
        caption = self.caption(embedding)
        visual = embedding.cpu().numpy().astype(np.float32)
        return Description(caption, visual, rain_type_of_caption(caption))
