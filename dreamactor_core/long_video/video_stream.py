"""Driving videos read and results written a chunk of frames at a time (PyAV), so a clip of any
length never sits in memory whole. The frame count and rate are known before the first frame is
decoded: the container is demuxed once (packets only, no decoding) and the rate is computed from the
packets' presentation times exactly as ``video_io.read_clip`` computes it from the decoded frames'.
Animated images (webp, gif) are small and read whole with ``video_io.read_clip``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DreamActorError
from ..video_io import PILLOW_FORMATS, rate_from_timestamps, read_clip, to_unit_frames


@dataclass(frozen=True)
class VideoSource:
    """A driving video to stream: ``frames`` kept frames (after ``stride`` and ``max_frames``) at ``fps``."""

    path: Path
    frames: int
    fps: float
    stride: int = 1
    max_frames: int | None = None

    def chunks(self, size: int) -> Iterator[torch.Tensor]:
        """The kept frames as float ``[n, H, W, 3]`` tensors of ``size`` frames (the last may be shorter)."""
        if self.path.suffix.lower() in PILLOW_FORMATS:
            clip = read_clip(self.path, self.max_frames, self.stride).frames
            for start in range(0, len(clip), size):
                yield to_unit_frames(clip[start:start + size])
            return
        import av

        buffer: list[np.ndarray] = []
        kept = 0
        with av.open(str(self.path)) as container:
            for index, frame in enumerate(container.decode(container.streams.video[0])):
                if kept >= self.frames:
                    break
                if index % self.stride:
                    continue
                buffer.append(frame.to_ndarray(format="rgb24"))
                kept += 1
                if len(buffer) == size:
                    yield to_unit_frames(np.stack(buffer))
                    buffer = []
        if buffer:
            yield to_unit_frames(np.stack(buffer))


def open_video(path: str | Path, max_frames: int | None = None, stride: int = 1) -> VideoSource:
    """Probe ``path`` (frame count and rate, see the module doc) without decoding it."""
    path = Path(path)
    if not path.is_file():
        raise DreamActorError(f"video '{path}' does not exist")
    if stride < 1:
        raise DreamActorError(f"stride must be at least 1, got {stride}")
    if path.suffix.lower() in PILLOW_FORMATS:
        clip = read_clip(path, max_frames, stride)
        return VideoSource(path, len(clip.frames), clip.fps, stride, max_frames)
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DreamActorError(f"video '{path}' holds no video stream (audio or data only?)")
            stream = container.streams.video[0]
            header_fps = float(stream.average_rate or stream.guessed_rate or 24)
            times = sorted(float(packet.pts * packet.time_base) for packet in container.demux(stream)
                           if packet.pts is not None and packet.size)
    except DreamActorError:
        raise
    except Exception as error:  # demuxer errors come in many types; name the file either way
        raise DreamActorError(f"video '{path}' could not be read: {error}") from error
    count = -(-len(times) // stride)
    if max_frames is not None:
        count = min(count, max_frames)
        times = times[:(count - 1) * stride + 1]
    if count == 0:
        raise DreamActorError(f"video '{path}': no frames could be decoded")
    return VideoSource(path, count, rate_from_timestamps(times, header_fps) / stride, stride, max_frames)
