"""The animation inside a generated canvas: its left half, without the frames the builder added.

The generated canvas has the built canvas's layout (``CanvasLayout``): the left half is the animated
reference (frame 0 is the reference itself). Extraction keeps the frames aligned with the driving
frames the artist gave (the transition second and the 4k+1 repeats removed), then undoes the panel
fit so the frames come back at the size of the picture they continue.
"""

from __future__ import annotations

import torch

from ..errors import DreamActorError
from .composite import CanvasLayout
from .placement import Placement, resize_frames

# Output size: the visible part of the reference at its original pixel size (the animation continues
# the reference picture), of the driving video (to lay beside it), or the panel as generated.
RESULT_SIZES = ("reference", "driving", "panel")


def result_frames(layout: CanvasLayout, cut_transition: bool = True, drop_reference_frame: bool = False) -> range:
    """Canvas frame indices of the result. With the transition cut, the result starts at the first
    driving frame (frame 0, the reference, lies inside the cut second); without a transition,
    ``drop_reference_frame`` removes frame 0. The repeats added by the "pad" rule never appear."""
    start = layout.transition_frames if cut_transition else 0
    if drop_reference_frame and start == 0:
        start = 1
    return range(start, layout.total_frames - layout.padded_frames)


def _undo_placement(panel: torch.Tensor, placement: Placement) -> torch.Tensor:
    at, source = placement.panel_box, placement.source_box
    return resize_frames(panel[:, at.rows(), at.cols()], source.height, source.width)


def extract_result(
    frames: torch.Tensor,
    layout: CanvasLayout,
    *,
    cut_transition: bool = True,
    drop_reference_frame: bool = False,
    size: str = "reference",
) -> torch.Tensor:
    """Generated canvas frames [total_frames, panel H, 2 x panel W, 3] -> the animation [T, H, W, 3].

    ``size``: see ``RESULT_SIZES``. "reference" and "driving" crop the padding of that input's
    placement and resample to its visible source size (exact pixels where the builder did not scale).
    """
    if size not in RESULT_SIZES:
        raise DreamActorError(f"size: expected one of {', '.join(RESULT_SIZES)}, got '{size}'")
    expected = (layout.total_frames, layout.panel_height, layout.canvas_width, 3)
    if not isinstance(frames, torch.Tensor) or tuple(frames.shape) != expected:
        got = list(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise DreamActorError(f"frames: expected the generated canvas {list(expected)} (frames, height, width, "
                              f"channels) described by the canvas input, got {got}")
    kept = result_frames(layout, cut_transition, drop_reference_frame)
    if not len(kept):
        raise DreamActorError("drop_reference_frame: the canvas holds only the reference frame, nothing would remain")
    panel = frames[kept.start:kept.stop, :, :layout.panel_width]
    if size == "panel":
        return panel.contiguous()
    return _undo_placement(panel, layout.reference if size == "reference" else layout.driving).contiguous()
