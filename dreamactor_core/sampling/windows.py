"""Temporal windows for long videos: which latent frames each window sees and how windows blend.

Each window starts with latent frame 0 (the canvas's reference frame, so every window sees the
identity); where windows overlap, their velocities are blended with linear ramps that sum to one.
"""

from __future__ import annotations

import torch

from ..errors import DreamActorError


def temporal_windows(frames: int, window: int, overlap: int) -> list[list[int]]:
    """Latent frame indices of each window; each starts with frame 0 (the reference)."""
    if window <= 0 or frames <= window:
        return [list(range(frames))]
    if not 0 <= overlap < window - 1:
        raise DreamActorError(f"window_overlap: expected 0..{window - 2} latent frames, got {overlap}")
    body, stride = window - 1, window - 1 - overlap
    starts = list(range(1, frames - body + 1, stride))
    if starts[-1] + body < frames:
        starts.append(frames - body)
    return [[0, *range(start, start + body)] for start in starts]


def window_weights(windows: list[list[int]], frames: int) -> list[torch.Tensor]:
    """Per-frame blend weights: linear ramps where windows overlap, normalised to sum to 1."""
    raw = []
    for index, window in enumerate(windows):
        weight = torch.ones(len(window))
        body = window[1:]
        if index > 0:
            shared = len(set(body) & set(windows[index - 1][1:]))
            weight[1:1 + shared] = torch.arange(1, shared + 1) / (shared + 1)
        if index < len(windows) - 1:
            shared = len(set(body) & set(windows[index + 1][1:]))
            if shared:
                weight[len(window) - shared:] = torch.arange(shared, 0, -1) / (shared + 1)
        raw.append(weight)
    total = torch.zeros(frames)
    for window, weight in zip(windows, raw):
        total[window] += weight
    return [weight / total[window] for window, weight in zip(windows, raw)]
