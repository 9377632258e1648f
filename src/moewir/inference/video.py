"""Restoring videos with PyAV: decode, restore every frame in batches, encode, copy the audio.

The output has the input's container (by its extension), size, frame count, timestamps (so its
frame rate) and display rotation. Frames are restored as ``Restorer.restore`` restores an
``uint8`` photo (float in ``[0, 1]``, restored, rounded back to 8 bits), ``batch_size`` at a
time; they are decoded to 8-bit RGB and encoded with H.264 (``.mp4``, ``.mov``, ``.mkv``,
``.avi``) or VP9 (``.webm``) at a constant-quality ``crf``. The audio stream is copied packet by
packet, never re-encoded; other streams (subtitles, data) are not kept. The output is written
to a temporary file beside it and renamed, so a failure or a kill leaves no partial video.
PyAV (the optional extra ``moewir[video]``) is imported only when a video is opened.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from ..data.io import atomic_file

__all__ = ["VIDEO_EXTENSIONS", "VideoError", "Encoding", "VideoInfo", "is_video_file", "default_encoding",
           "probe_video", "usable_video", "restore_video"]

#: Container format (FFmpeg's name) and default video encoder of each extension moewir restores.
_CONTAINERS = {".mp4": ("mp4", "libx264"), ".mov": ("mov", "libx264"), ".mkv": ("matroska", "libx264"),
               ".avi": ("avi", "libx264"), ".webm": ("webm", "libvpx-vp9")}
VIDEO_EXTENSIONS = tuple(_CONTAINERS)
_INSTALL = "reading videos needs PyAV: pip install 'moewir[video]'"


class VideoError(ValueError):
    """A video that cannot be read, restored or written; ``problem`` is the one-line reason."""

    def __init__(self, path: str | os.PathLike, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = str(path), problem


@dataclass(frozen=True)
class Encoding:
    """How the restored frames are encoded: an FFmpeg encoder, its pixel format and options."""
    codec: str
    pix_fmt: str = "yuv420p"
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` reads from a file (``frames`` is the header's count, 0 if unknown)."""
    width: int
    height: int
    frames: int
    rate: Fraction | None
    codec: str
    pix_fmt: str
    rotation: int
    audio: str | None  # the audio codec, or None without an audio stream


def is_video_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in _CONTAINERS


def _av():
    try:
        import av
    except ImportError:
        raise ImportError(_INSTALL) from None
    return av


def default_encoding(path: str | os.PathLike, width: int, height: int, crf: int = 17) -> Encoding:
    """The encoder for ``path``'s container at constant quality ``crf`` (0 is lossless in H.264;
    a lower ``crf`` is better and larger). 4:2:0 chroma, which players expect, unless a side is
    odd (4:2:0 needs even sides): then 4:4:4."""
    codec = _CONTAINERS[Path(path).suffix.lower()][1]
    options = {"crf": str(crf)} if codec == "libx264" else {"crf": str(crf), "b": "0"}
    pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    return Encoding(codec, pix_fmt, options)


def _open(path: Path):
    """The input container and its first video stream (one-line errors for what does not open)."""
    av = _av()
    if not path.is_file():
        raise VideoError(path, "no such file" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise VideoError(path, "empty file")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise VideoError(path, f"not a readable video ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(path, "no video stream in the file")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        container.close()
        raise VideoError(path, f"no decoder for its video codec ({stream.codec.name if stream.codec else '?'})")
    return container, stream


def _reason(exc: Exception) -> str:
    """FFmpeg's message without the file name PyAV appends."""
    text = getattr(exc, "strerror", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Size, frame count, rate, codecs and rotation of a video, read from its first frame."""
    av = _av()
    path = Path(path)
    container, stream = _open(path)
    try:
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as exc:
            raise VideoError(path, f"corrupt video ({_reason(exc)})") from None
        if first is None:
            raise VideoError(path, "no video frames in the file")
        audio = container.streams.audio[0].codec.name if container.streams.audio else None
        return VideoInfo(first.width, first.height, stream.frames, stream.average_rate or stream.guessed_rate,
                         stream.codec.name, stream.codec_context.pix_fmt or first.format.name,
                         int(round(first.rotation or 0)), audio)
    finally:
        container.close()


def usable_video(path: str | os.PathLike) -> bool:
    """True when ``path`` opens as a video with a frame (an existing output worth keeping)."""
    try:
        probe_video(path)
        return True
    except (VideoError, ImportError):
        return False


def _restore_frames(restore_tensor: Callable[[torch.Tensor], torch.Tensor], frames: list[np.ndarray]) -> np.ndarray:
    """``(B, H, W, 3)`` uint8 restored exactly as ``Restorer.restore`` restores one uint8 photo."""
    batch = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    out = restore_tensor(batch).permute(0, 2, 3, 1).mul(255).round()
    return out.to(torch.uint8).numpy()


def restore_video(restore_tensor: Callable[[torch.Tensor], torch.Tensor], source: str | os.PathLike,
                  output: str | os.PathLike, batch_size: int = 4, crf: int = 17, encoding: Encoding | None = None,
                  max_pixels: int | None = None, progress: bool = True) -> tuple[VideoInfo, int, list[str]]:
    """Restore every frame of ``source`` into ``output`` (same container as its extension says).

    ``restore_tensor`` maps ``(B, 3, H, W)`` float in ``[0, 1]`` to the same (for example
    ``Restorer.restore_tensor``). ``encoding`` replaces :func:`default_encoding`. Returns the
    input's :class:`VideoInfo`, the number of frames written, and notes on what the output does
    not keep. Raises :class:`VideoError` (one line naming the file) for a video that cannot be
    read or written; the output is then left untouched.
    """
    av = _av()
    source, output = Path(source), Path(output)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not is_video_file(output):
        raise VideoError(output, f"cannot write {output.suffix or 'extension-less'} videos "
                                 f"(one of {', '.join(VIDEO_EXTENSIONS)})")
    info = probe_video(source)
    if max_pixels is not None and info.width * info.height > max_pixels:
        raise VideoError(source, f"{info.width}x{info.height} frames are above the {max_pixels / 1e6:.0f} MP limit")
    encoding = encoding or default_encoding(output, info.width, info.height, crf)
    notes = []
    if any(bits in info.pix_fmt for bits in ("10", "12", "16")):
        notes.append(f"{info.pix_fmt} video written as 8-bit {encoding.pix_fmt}")
    container, stream = _open(source)
    written = 0
    try:
        with atomic_file(output) as f:
            out = av.open(f, "w", format=_CONTAINERS[output.suffix.lower()][0])
            try:
                written = _transcode(av, restore_tensor, container, stream, out, info, encoding, batch_size,
                                     progress, notes, source)
            finally:
                out.close()
    except av.FFmpegError as exc:
        raise VideoError(source, f"cannot restore the video ({_reason(exc)})") from None
    finally:
        container.close()
    if info.frames and written != info.frames:
        notes.append(f"{written} frames decoded and written, the header says {info.frames} (a truncated file?)")
    return info, written, notes


def _transcode(av, restore_tensor, container, stream, out, info: VideoInfo, encoding: Encoding, batch_size: int,
               progress: bool, notes: list[str], source: Path) -> int:
    """One pass over the input's packets: video decoded, restored and encoded; audio copied."""
    try:
        video = out.add_stream(encoding.codec, rate=info.rate, options=dict(encoding.options))
    except (av.FFmpegError, ValueError) as exc:
        raise VideoError(source, f"this PyAV build cannot encode {encoding.codec} ({_reason(exc)})") from None
    video.width, video.height, video.pix_fmt = info.width, info.height, encoding.pix_fmt
    # Frames keep their timestamps (so the rate, even a variable one, and the sync with the audio),
    # except in AVI, which stores none: its decoded timestamps are guesses, so frames are numbered.
    numbered = out.format.name == "avi" or not info.rate
    time_base = 1 / Fraction(info.rate or 25) if numbered else stream.time_base
    step = max(1, round(1 / Fraction(info.rate or 25) / time_base))  # one frame; for a missing timestamp
    video.time_base = video.codec_context.time_base = time_base
    if info.rotation:
        video.set_display_rotation(info.rotation)
    audio_in = container.streams.audio[0] if container.streams.audio else None
    audio_out = None
    if audio_in is not None:
        if audio_in.codec.name in out.supported_codecs:
            audio_out = out.add_stream_from_template(audio_in)
        else:
            notes.append(f"audio ({audio_in.codec.name}) not kept: the {out.format.name} container cannot hold it")
    bar = tqdm(total=info.frames or None, desc=source.name, unit="frame", disable=not progress, leave=False,
               dynamic_ncols=True)
    pending: list[tuple[np.ndarray, int | None]] = []
    written, last = 0, None

    def flush() -> None:
        nonlocal written, last
        if not pending:
            return
        restored = _restore_frames(restore_tensor, [frame for frame, _ in pending])
        for image, (_, pts) in zip(restored, pending):
            if numbered or pts is None or (last is not None and pts <= last):
                pts = 0 if last is None else last + step
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base, last = pts, time_base, pts
            out.mux(video.encode(frame))
            written += 1
        bar.update(len(pending))
        pending.clear()

    try:
        for packet in container.demux(*(s for s in (stream, audio_in) if s is not None)):
            if packet.stream is stream:
                for frame in packet.decode():
                    pending.append((frame.to_ndarray(format="rgb24"), frame.pts))
                    if len(pending) == batch_size:
                        flush()
            elif audio_out is not None and packet.dts is not None:
                packet.stream = audio_out
                out.mux(packet)
        flush()
        out.mux(video.encode(None))
    finally:
        bar.close()
    if written == 0:
        raise VideoError(source, "no video frames decoded")
    return written
