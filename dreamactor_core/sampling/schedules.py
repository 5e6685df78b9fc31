"""Noise levels of a flow-matching run."""

from __future__ import annotations


def sigma_schedule(steps: int, shift: float, denoise: float = 1.0) -> list[float]:
    """``steps + 1`` noise levels from the start level down to 0, time-shifted.

    denoise < 1 runs the last ``steps`` of a ``steps / denoise`` schedule (ComfyUI's convention).
    shift > 1 spends more steps at high noise: s' = shift s / (1 + (shift - 1) s).
    """
    total = steps if denoise >= 1.0 else max(steps, int(round(steps / denoise)))
    raw = [1.0 - i / total for i in range(total + 1)][total - steps:]
    return [shift * s / (1.0 + (shift - 1.0) * s) for s in raw]
