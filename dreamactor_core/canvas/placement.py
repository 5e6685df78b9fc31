"""Where an image of any size sits in a fixed-size panel, and the resampling that puts it there.

The canvas builder fits the reference and the driving frames into one panel size; the result
extractor undoes the same fit. Both read one ``Placement``, so the two directions cannot drift.

Policy (documented for artists in the canvas node):
- "pad": scale to fit inside the panel (the whole image stays visible), centre, fill the rest;
- "crop": scale to cover the panel (no fill), centre, cut what sticks out;
- ``keep_scale``: never enlarged, only centred and padded, so its pixels stay exact (used for the
  reference when the panel is its own size rounded to the backbone's multiple). When the rounding
  made the panel smaller than the image, "pad" still keeps the whole image: it is shrunk to fit (the
  only case it is resampled); "crop" cuts what sticks out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import DreamActorError

FIT_MODES = ("pad", "crop")


@dataclass(frozen=True)
class Box:
    """An axis-aligned pixel rectangle: rows ``top:top+height``, columns ``left:left+width``."""

    top: int
    left: int
    height: int
    width: int

    def rows(self) -> slice:
        return slice(self.top, self.top + self.height)

    def cols(self) -> slice:
        return slice(self.left, self.left + self.width)


@dataclass(frozen=True)
class Placement:
    """One image (``source_height`` x ``source_width``) scaled to ``scaled_height`` x
    ``scaled_width``; the part ``scaled_box`` of the scaled image is shown at ``panel_box`` of the
    panel (same height and width). ``source_box`` is that visible part in original pixels."""

    source_height: int
    source_width: int
    scaled_height: int
    scaled_width: int
    panel_box: Box
    scaled_box: Box
    source_box: Box

    @property
    def resamples(self) -> bool:
        return (self.scaled_height, self.scaled_width) != (self.source_height, self.source_width)

    @property
    def whole_source(self) -> bool:
        """True when nothing of the source was cropped away."""
        return self.source_box == Box(0, 0, self.source_height, self.source_width)

    def covers(self, panel_height: int, panel_width: int) -> bool:
        """True when the content fills the whole panel (no padding to fill)."""
        return self.panel_box == Box(0, 0, panel_height, panel_width)

    def source_to_panel(self, x: float, y: float) -> tuple[float, float]:
        """Where the source's point ``x``, ``y`` (pixels from its top-left corner, floats or arrays)
        lands in the panel: scaled as the image is resampled, then shifted by the padding or the cut
        (a point that "crop" cut away lands outside the panel). Pose coordinates on the reference
        picture go through it to meet the character where the canvas shows it."""
        return (x * self.scaled_width / self.source_width + self.panel_box.left - self.scaled_box.left,
                y * self.scaled_height / self.source_height + self.panel_box.top - self.scaled_box.top)


def round_to_multiple(value: float, multiple: int) -> int:
    """The nearest multiple of ``multiple`` (halves round up), never below one multiple."""
    return max(multiple, multiple * int(value / multiple + 0.5))


def _visible(panel: int, scaled: int) -> tuple[int, int, int]:
    """(panel start, scaled start, length) of a centred 1-D placement; the odd pixel of padding or
    cropping goes to the bottom/right."""
    if scaled <= panel:
        return (panel - scaled) // 2, 0, scaled
    return 0, (scaled - panel) // 2, panel


def place(source_hw: tuple[int, int], panel_hw: tuple[int, int], fit: str, keep_scale: bool = False) -> Placement:
    """The placement of a ``source_hw`` image in a ``panel_hw`` panel under ``fit`` (see module doc)."""
    if fit not in FIT_MODES:
        raise DreamActorError(f"fit: expected one of {', '.join(FIT_MODES)}, got '{fit}'")
    (height, width), (panel_h, panel_w) = source_hw, panel_hw
    ratio = (min if fit == "pad" else max)(panel_h / height, panel_w / width)
    if keep_scale:
        ratio = min(ratio, 1.0) if fit == "pad" else 1.0
    scaled_h, scaled_w = (height, width) if ratio == 1.0 else (max(1, round(height * ratio)), max(1, round(width * ratio)))
    top, scaled_top, visible_h = _visible(panel_h, scaled_h)
    left, scaled_left, visible_w = _visible(panel_w, scaled_w)
    to_source_y, to_source_x = height / scaled_h, width / scaled_w
    source_top, source_left = round(scaled_top * to_source_y), round(scaled_left * to_source_x)
    source_box = Box(
        source_top, source_left,
        min(height - source_top, max(1, round(visible_h * to_source_y))),
        min(width - source_left, max(1, round(visible_w * to_source_x))),
    )
    return Placement(height, width, scaled_h, scaled_w, Box(top, left, visible_h, visible_w),
                     Box(scaled_top, scaled_left, visible_h, visible_w), source_box)


def resize_frames(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[N, H, W, C] frames resampled to ``height`` x ``width`` (bilinear, antialiased when shrinking,
    so skeleton lines and photo detail neither alias nor overshoot 0..1); unchanged when the size
    already matches, so exact placements copy pixels bit for bit."""
    if tuple(frames.shape[1:3]) == (height, width):
        return frames
    channels_first = frames.permute(0, 3, 1, 2)
    resized = F.interpolate(channels_first, size=(height, width), mode="bilinear", align_corners=False,
                            antialias=True)
    return resized.permute(0, 2, 3, 1)
