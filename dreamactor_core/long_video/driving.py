"""The driving half of a streamed canvas, served one window at a time.

Frame i of the driving half is black for the transition second (i < ``transition``), then driving
frame i - transition, then repeats of the last driving frame up to the 4k+1 count (the canvas
builder's rules). Windows ask for ranges that only move forward (overlapping by their motion
context), so only frames still ahead are kept: memory is one window, whatever the clip's length.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import torch

from ..errors import DreamActorError

LOG = logging.getLogger(__name__)


class DrivingFrames:
    """Driving-half frames by global canvas index from ``chunks`` (float ``[n, H, W, 3]`` tensors in
    order, ``count`` frames in all); see the module doc."""

    def __init__(self, chunks: Iterable[torch.Tensor], count: int, transition: int) -> None:
        self._chunks: Iterator[torch.Tensor] = iter(chunks)
        self.count, self.transition = count, transition
        first = next(self._chunks, None)
        if first is None or first.ndim != 4 or not len(first):
            raise DreamActorError("driving: expected frames [n, height, width, channels], got no frames")
        self._black = torch.zeros_like(first[:1])
        self._held, self._held_start, self._read = first, 0, len(first)
        self.first = self._black if transition else first[:1].clone()

    def _frame_count_short(self) -> None:
        LOG.warning("driving video: %d frames were promised but only %d decoded; the last one is repeated",
                    self.count, self._read)
        self.count = self._read

    def get(self, start: int, stop: int) -> torch.Tensor:
        """Frames ``start..stop-1`` (global canvas indices; ``start`` never below an earlier call's)."""
        parts = []
        black = min(stop, self.transition) - start
        if black > 0:
            parts.append(self._black.expand(black, *self._black.shape[1:]))
        begin = max(start, self.transition)
        if begin < stop:
            parts.append(self._driving(begin - self.transition, stop - self.transition))
        return torch.cat(parts) if len(parts) > 1 else parts[0].clone()

    def _driving(self, start: int, stop: int) -> torch.Tensor:
        """Driving frames ``start..stop-1`` (video indices; past its end, the last frame), then the
        frames before ``start`` are released."""
        while self._held_start + len(self._held) < min(stop, self.count):
            chunk = next(self._chunks, None)
            if chunk is None:
                self._frame_count_short()
                break
            self._held, self._read = torch.cat([self._held, chunk]), self._read + len(chunk)
        if start < self._held_start:
            raise DreamActorError(f"driving frames: frame {start} was already released (windows move forward)")
        index = torch.arange(start, stop).clamp(max=self.count - 1) - self._held_start
        frames = self._held[index.clamp(max=len(self._held) - 1)]
        drop = max(0, min(start, self.count - 1) - self._held_start)
        self._held, self._held_start = self._held[drop:], self._held_start + drop
        return frames
