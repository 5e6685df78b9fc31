"""Reading driving videos and writing results, outside ComfyUI (the CLI, training, the demo).

Containers (mp4, webm, mov, avi, mkv) go through PyAV; animated webp and gif through Pillow.
Frames are uint8 numpy arrays [T, H, W, 3]; ``to_unit_frames`` gives the engine's float layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from .errors import DreamActorError

PILLOW_FORMATS = {".webp", ".gif", ".apng", ".png"}


@dataclass(frozen=True)
class Clip:
    """Decoded frames and their frame rate."""

    frames: np.ndarray  # uint8 [T, H, W, 3]
    fps: float


def _read_with_pillow(path: Path, max_frames: int | None, stride: int) -> Clip:
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        frames, durations = [], []
        for index, frame in enumerate(ImageSequence.Iterator(image)):
            if max_frames is not None and len(frames) >= max_frames:
                break
            durations.append(frame.info.get("duration", 0) or 0)
            if index % stride == 0:
                frames.append(np.asarray(frame.convert("RGB")))
    mean_ms = float(np.mean(durations)) if durations and np.mean(durations) > 0 else 1000.0 / 24
    return Clip(np.stack(frames), 1000.0 / mean_ms / stride)


def rate_from_timestamps(times: list[float | None], fallback: float) -> float:
    """Frames per second implied by presentation times (seconds) of consecutive decoded frames.

    A variable-frame-rate file's header rate says little (Matroska writes the nominal rate, e.g. 24,
    whatever the frames' timestamps are), and the pack's one-second lead-in and output speed need the
    real one: (frames - 1) / (last time - first time), the mean rate over the decoded frames, so the
    clip keeps its duration. Frames keep their order and are taken as evenly spaced. ``fallback``
    (the header rate) when there are fewer than two timestamps or they do not increase.
    """
    known = [t for t in times if t is not None]
    if len(known) < 2 or len(known) != len(times) or known[-1] <= known[0]:
        return fallback
    return (len(known) - 1) / (known[-1] - known[0])


def _read_with_av(path: Path, max_frames: int | None, stride: int) -> Clip:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        header_fps = float(stream.average_rate or stream.guessed_rate or 24)
        frames, times = [], []
        for index, frame in enumerate(container.decode(stream)):
            if max_frames is not None and len(frames) >= max_frames:
                break
            times.append(float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None)
            if index % stride == 0:
                frames.append(frame.to_ndarray(format="rgb24"))
    if not frames:
        raise DreamActorError(f"video '{path}': no frames could be decoded")
    return Clip(np.stack(frames), rate_from_timestamps(times, header_fps) / stride)


def read_clip(path: str | Path, max_frames: int | None = None, stride: int = 1) -> Clip:
    """Decode a video or animated image. ``stride`` keeps every n-th frame (and divides the fps)."""
    path = Path(path)
    if not path.is_file():
        raise DreamActorError(f"video '{path}' does not exist")
    if stride < 1:
        raise DreamActorError(f"stride must be at least 1, got {stride}")
    reader = _read_with_pillow if path.suffix.lower() in PILLOW_FORMATS else _read_with_av
    try:
        return reader(path, max_frames, stride)
    except DreamActorError:
        raise
    except Exception as error:  # decoder errors come in many types; name the file either way
        raise DreamActorError(f"video '{path}' could not be read: {error}") from error


def read_image(path: str | Path) -> np.ndarray:
    """An image file as uint8 [H, W, C] with C = 3, or 4 when it has alpha."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise DreamActorError(f"image '{path}' does not exist")
    with Image.open(path) as image:
        mode = "RGBA" if "A" in image.getbands() else "RGB"
        return np.array(image.convert(mode))  # a writable copy: np.asarray of a PIL image is read-only


def to_unit_frames(frames: np.ndarray) -> torch.Tensor:
    """uint8 [..., C] -> float32 in 0..1, the layout of ComfyUI's IMAGE. Read-only arrays (a PIL
    image's buffer) are converted by copy, never shared: torch warns on non-writable memory."""
    return torch.tensor(frames, dtype=torch.float32).div_(255.0)


def to_uint8_frames(frames: torch.Tensor) -> np.ndarray:
    """float frames in 0..1 -> uint8, rounded."""
    return frames.detach().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()


class VideoWriter:
    """An H.264 mp4 (yuv420p, crf 18, odd sizes padded by repeating the edge) written a chunk at a
    time, so a long result never sits in memory whole. Use as a context manager.

    libx264's macroblock-tree rate control is off (``mbtree=0``): with it, the same frames encoded
    twice on a busy CPU gave different videos (decoded pixels up to 49 code values apart), so one
    seed did not give one mp4; without it the encodes are equal, for ~3% more bytes at the same crf."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path, self.fps = Path(path), fps
        self._container = self._stream = None
        self.frames = 0

    def __enter__(self) -> "VideoWriter":
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w")
        return self

    @property
    def rate(self) -> Fraction:
        """The stream's frame rate as a fraction: NTSC rates (29.97 = 30000/1001) and strided ones
        (12.5) kept, not rounded to whole frames a second (that shifted a 12.5 fps result's timing by 4%)."""
        if not self.fps > 0:
            raise DreamActorError(f"video '{self.path}': the frame rate must be positive, got {self.fps}")
        return Fraction(self.fps).limit_denominator(1001)

    def write(self, frames: torch.Tensor | np.ndarray) -> None:
        """Append frames ``[n, H, W, 3]`` (float 0..1 or uint8) of the size of the first chunk."""
        import av

        if isinstance(frames, torch.Tensor):
            frames = to_uint8_frames(frames)
        height, width = frames.shape[1] + frames.shape[1] % 2, frames.shape[2] + frames.shape[2] % 2
        if (height, width) != frames.shape[1:3]:
            frames = np.pad(frames, ((0, 0), (0, height - frames.shape[1]), (0, width - frames.shape[2]), (0, 0)),
                            mode="edge")
        if self._stream is None:
            self._stream = self._container.add_stream("libx264", rate=self.rate)
            self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
            self._stream.options = {"crf": "18", "x264-params": "mbtree=0"}
        for frame in frames:
            self._container.mux(self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame),
                                                                               format="rgb24")))
        self.frames += len(frames)

    def __exit__(self, *exc: object) -> None:
        try:
            if self._stream is not None:
                self._container.mux(self._stream.encode())
        finally:
            self._container.close()


def write_video(path: str | Path, frames: np.ndarray | torch.Tensor, fps: float) -> Path:
    """Write frames ([T, H, W, 3], uint8 or float 0..1) as H.264 mp4 (``VideoWriter``, in one chunk)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise DreamActorError(f"write_video: expected frames [T, H, W, 3] with T >= 1, got {tuple(frames.shape)}")
    with VideoWriter(path, fps) as writer:
        writer.write(frames)
    return Path(path)
