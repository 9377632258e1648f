"""Videos through `moewir restore` and `moewir.inference.video`: tiny clips made here with PyAV."""
from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import moewir
from moewir.cli.main import main
from moewir.data import write_image
from moewir.inference.video import Encoding, is_video_file

WIDTH, HEIGHT, FRAMES, RATE = 48, 32, 8, 12


@pytest.fixture
def av():
    return pytest.importorskip("av")


def _frames(count: int = FRAMES) -> list[np.ndarray]:
    """Smooth moving content (a gradient and a bright square), which 4:2:0 chroma keeps well."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = []
    for i in range(count):
        image = np.stack([x / WIDTH, y / HEIGHT, 0.5 + 0.3 * np.sin(x / 7 + i)], axis=2) * 200 + 20
        image[8:20, 4 + 3 * i:16 + 3 * i] = 235
        frames.append(image.astype(np.uint8))
    return frames


def make_clip(av, path: Path, audio: bool = True, rotation: int = 0) -> Path:
    """``FRAMES`` frames of ``WIDTH x HEIGHT`` at ``RATE`` fps, H.264 (VP9 in .webm), and optionally
    AAC (Opus in .webm) audio: a tone."""
    webm = path.suffix == ".webm"
    with av.open(str(path), "w") as out:
        video = out.add_stream("libvpx-vp9" if webm else "libx264", rate=RATE,
                               options={"crf": "10", "b": "0"} if webm else {"crf": "10"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if rotation:
            video.set_display_rotation(rotation)
        sound = None
        if audio:
            sound = out.add_stream("libopus" if webm else "aac", rate=48000 if webm else 8000)
            sound.layout = "mono"
        for i, image in enumerate(_frames()):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, RATE)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            rate = sound.codec_context.sample_rate
            samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate * FRAMES // RATE) / rate)).astype(np.float32)
            for start in range(0, samples.size, 960):
                frame = av.AudioFrame.from_ndarray(samples[None, start:start + 960], format="flt", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return path


def decoded(av, path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def audio_packets(av, path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255 ** 2 / mse)) if mse else float("inf")


class Invert:
    """A restorer with a known answer, ``1 - x``, for photos and video frames alike."""
    name, device = "invert", "cpu"

    def restore(self, image):
        return 1.0 - image

    def restore_tensor(self, batch):
        return 1.0 - batch


def _restore_folder(items, out, **options):
    from moewir.inference.files import plan_jobs, restore_files

    jobs, problems = plan_jobs([str(i) for i in items], out, **options.pop("plan", {}))
    lines = []
    outcomes = problems + restore_files(Invert(), jobs, progress=False, report=lines.append, **options)
    return outcomes, lines


@pytest.fixture(scope="module")
def restorer():
    return moewir.load("moewirnet-tiny", device="cpu", tile=32, tile_overlap=8)


@pytest.fixture(scope="module")
def clip_and_photos(tmp_path_factory, restorer):
    """A clip with audio, and `Restorer.restore` of each of its decoded frames as a photo."""
    av = pytest.importorskip("av")
    clip = make_clip(av, tmp_path_factory.mktemp("clip") / "clip.mp4")
    return clip, [restorer.restore(frame) for frame in decoded(av, clip)]


def test_restore_keeps_size_frames_rate_and_audio(av, tmp_path, clip_and_photos, capsys):
    """`moewir restore clip.mp4` (default H.264 4:2:0, --crf 17): the input's size, frame count,
    frame rate and audio packets, and each frame within codec loss of its photo restoration."""
    clip, photos = clip_and_photos
    assert main(["restore", str(clip), "-o", str(tmp_path / "out"), "--tile", "32", "--tile-overlap", "8",
                 "--batch", "3", "--no-progress", "--device", "cpu"]) == 0
    result = tmp_path / "out" / "clip.mp4"
    with av.open(str(result)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (WIDTH, HEIGHT)
        assert stream.average_rate == RATE and container.streams.audio
    outputs = decoded(av, result)
    assert len(outputs) == FRAMES
    for photo, out in zip(photos, outputs):
        assert _psnr(photo, out) > 33
    packets = audio_packets(av, clip)
    assert len(packets) > 3 and audio_packets(av, result) == packets  # copied, not re-encoded
    assert [p.name for p in result.parent.iterdir()] == ["clip.mp4"]  # no temporary file left
    assert "| 1 | 0 | 0 |" in capsys.readouterr().out


def test_each_frame_is_the_photo_restoration_of_the_decoded_frame(av, tmp_path, restorer, clip_and_photos):
    """Lossless RGB H.264, batches of 3 (the last one short): every output frame equals
    `Restorer.restore` of that decoded input frame."""
    from moewir.inference.video import restore_video

    clip, photos = clip_and_photos
    info, written, notes = restore_video(restorer.restore_tensor, clip, tmp_path / "out.mkv", batch_size=3,
                                         encoding=Encoding("libx264rgb", "rgb24", {"crf": "0"}), progress=False)
    assert (info.width, info.height, written, notes) == (WIDTH, HEIGHT, FRAMES, [])
    outputs = decoded(av, tmp_path / "out.mkv")
    assert len(outputs) == FRAMES
    for frame, photo, out in zip(decoded(av, clip), photos, outputs):
        assert photo.dtype == np.uint8 and np.abs(photo.astype(int) - out).max() <= 1  # batch vs one: rounding
        assert np.mean(photo != out) < 0.01
        assert np.abs(frame.astype(int) - out).mean() > 0.5  # the network changed the frame


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".avi", ".webm"])
def test_every_container_without_and_with_audio(av, tmp_path, suffix):
    """An inverting restorer: the output is 255 - input within codec loss, in the input's container,
    with its size, frame count and rate; the audio is copied when there is some."""
    from moewir.inference.video import probe_video

    for audio in (False, True):
        clip = make_clip(av, tmp_path / f"clip{audio:d}{suffix}", audio=audio)
        outcomes, lines = _restore_folder([clip], tmp_path / "out")
        assert [o.status for o in outcomes] == ["restored"] and lines == [], lines
        result = tmp_path / "out" / clip.name
        info = probe_video(result)
        assert (outcomes[0].frames, info.width, info.height, info.rate) == (FRAMES, WIDTH, HEIGHT, RATE)
        assert info.audio == probe_video(clip).audio and (info.audio is not None) == audio
        assert audio_packets(av, result) == audio_packets(av, clip)
        outputs = decoded(av, result)
        assert len(outputs) == FRAMES
        for frame, out in zip(decoded(av, clip), outputs):
            assert _psnr(255 - frame, out) > 30


def test_rotation_is_kept(av, tmp_path):
    from moewir.inference.video import probe_video, restore_video

    clip = make_clip(av, tmp_path / "clip.mov", audio=False, rotation=90)
    assert probe_video(clip).rotation == 90
    restore_video(lambda x: 1 - x, clip, tmp_path / "out.mov", progress=False)
    assert probe_video(tmp_path / "out.mov").rotation == 90


def test_a_folder_mixing_photos_and_videos(av, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(av, folder / "clip.mp4", audio=False)
    write_image(folder / "photo.png", _frames(1)[0])
    (folder / "notes.txt").write_text("not an input")
    outcomes, _ = _restore_folder([folder], tmp_path / "out", plan={"extension": ".jpg"})
    assert [o.status for o in outcomes] == ["restored", "restored"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.mp4", "photo.jpg"]  # --format: photos
    outcomes, _ = _restore_folder([folder], tmp_path / "out", plan={"extension": ".jpg"})
    assert [o.status for o in outcomes] == ["skipped", "skipped"]  # a second run keeps whole outputs


@pytest.mark.parametrize("content, problem", [
    (b"", "empty file"),
    (b"hello, this is text", "not a readable video"),
    (None, "not a readable video"),  # the first half of a real clip: its index (moov) is missing
])
def test_a_broken_video_is_one_line(av, tmp_path, content, problem):
    bad = tmp_path / "bad.mp4"
    if content is None:
        full = make_clip(av, tmp_path / "full.mp4").read_bytes()
        bad.write_bytes(full[:len(full) // 2])
    else:
        bad.write_bytes(content)
    outcomes, lines = _restore_folder([bad], tmp_path / "out")
    assert len(lines) == 1 and lines[0].startswith(f"moewir: error: {bad}: {problem}") and "\n" not in lines[0]
    assert outcomes[0].status == "failed" and not (tmp_path / "out").exists()


def test_a_failing_restoration_is_one_line_and_leaves_no_file(av, tmp_path, monkeypatch):
    def out_of_memory(batch):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore details")

    clip = make_clip(av, tmp_path / "clip.mp4", audio=False)
    monkeypatch.setattr(Invert, "restore_tensor", staticmethod(out_of_memory))
    outcomes, lines = _restore_folder([clip], tmp_path / "out")
    assert lines == [f"moewir: error: {clip}: restoration failed (CUDA out of memory. Tried to allocate 2.00 GiB); "
                     f"a smaller --tile or --batch needs less memory"]
    assert outcomes[0].status == "failed" and list((tmp_path / "out").iterdir()) == []  # the temporary file is gone


def test_an_unsupported_container_says_what_is_restored(tmp_path):
    (tmp_path / "clip.flv").write_bytes(b"FLV\x01 not restored")
    outcomes, lines = _restore_folder([tmp_path / "clip.flv"], tmp_path / "out")
    assert lines == [f"moewir: error: {tmp_path / 'clip.flv'}: not an image (format not recognised); moewir restores "
                     f"images (.png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp) and videos (.mp4, .mov, .mkv, .avi, .webm)"]


def test_without_pyav_a_video_is_one_line_and_photos_go_on(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "clip.mkv").write_bytes(b"\x1a\x45\xdf\xa3 not really")
    write_image(tmp_path / "in" / "photo.png", np.full((16, 16, 3), 0.5, np.float32))
    assert is_video_file(tmp_path / "in" / "clip.mkv") and not is_video_file(tmp_path / "in" / "photo.png")
    outcomes, lines = _restore_folder([tmp_path / "in"], tmp_path / "out")
    assert lines == [f"moewir: error: {tmp_path / 'in' / 'clip.mkv'}: reading videos needs PyAV: "
                     f"pip install 'moewir[video]'"]
    assert [o.status for o in outcomes] == ["failed", "restored"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["photo.png"]
