"""The spatiotemporal in-context canvas of DreamActor-M2 (arXiv 2601.21716).

Frame 0 is [reference | driving 0], every later frame [black | driving t]: T x H x 2W x 3, the
reference half on the left, the motion half on the right. The backbone's VAE encodes it whole, so
appearance and motion meet in one latent video. ``CanvasLayout`` records every decision taken here
(panel size, fit, frame corrections, transition) so the mask builder and the result extractor undo
exactly what was done.

Rules (each correction is reported by ``CanvasLayout.report``):
- Panel: ``width``/``height`` when given (one of them alone keeps the reference's aspect ratio),
  else the reference's own size; both rounded to the nearest multiple of ``multiple`` (the VAE factor
  times the patch size, so the seam between the halves falls on a token boundary).
- Fit: the driving frames are fitted with ``fit`` ("pad" or "crop", see ``placement``); so is the
  reference when the panel size was given. When the panel is the reference's own size, the reference
  keeps its pixels exactly where the rounding padded it; where the rounding made the panel smaller,
  "pad" shrinks it to fit (nothing is cut) and "crop" cuts the rows or columns that stick out.
- Fill: the reference's padding and its transparent pixels take ``background``; the driving frames'
  padding is black (black means "no motion signal", like the transition frames).
- Colour: grayscale is expanded to RGB; an alpha channel (2 or 4 channels) is composited.
- Frames: the canvas has ``temporal``k+1 frames. Rule "pad" repeats the last driving frame at the
  end; "trim" drops trailing driving frames. The result extractor removes the repeats.
- Transition (paper): optionally round(fps) black driving frames (one second) come first; frame 0
  then shows [reference | black], and the result extractor cuts that second.
- Multi-subject: one reference image per canvas. Several subjects go in one reference picture (the
  paper's multi-subject references are single images); a driving video may show any number of
  subjects. A reference batch of several images is refused rather than guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import DreamActorError
from ..progress import ProgressHook, report
from .placement import Placement, place, resize_frames, round_to_multiple

FRAME_RULES = ("pad", "trim")
DEFAULT_MULTIPLE = 16
DEFAULT_TEMPORAL = 4
# Driving frames converted and resized per step: bounds the temporary memory of long clips.
CHUNK_FRAMES = 16

Color = tuple[float, float, float]


@dataclass(frozen=True)
class CanvasLayout:
    """Everything downstream nodes need to know about a built canvas (frames [total_frames,
    panel_height, 2 * panel_width, 3])."""

    panel_height: int
    panel_width: int
    requested_height: int  # before rounding to ``multiple``
    requested_width: int
    multiple: int
    temporal: int
    fit: str
    frame_rule: str
    fps: float
    transition_frames: int
    driving_frames: int  # as given
    trimmed_frames: int  # driving frames dropped by the "trim" rule
    padded_frames: int  # repeats of the last driving frame appended by the "pad" rule
    total_frames: int
    reference: Placement
    driving: Placement
    background: Color

    @property
    def canvas_width(self) -> int:
        return 2 * self.panel_width

    @property
    def used_driving_frames(self) -> int:
        return self.driving_frames - self.trimmed_frames

    def report(self) -> str:
        """What was built and every correction applied, in words for the artist."""
        lines = [f"canvas: {self.total_frames} frames of {self.panel_height}x{self.canvas_width} "
                 f"(two {self.panel_height}x{self.panel_width} panels, height x width)"]
        if (self.requested_height, self.requested_width) != (self.panel_height, self.panel_width):
            lines.append(f"panel rounded from {self.requested_height}x{self.requested_width} to multiples "
                         f"of {self.multiple}")
        for name, placement in (("reference", self.reference), ("driving", self.driving)):
            lines.append(_describe_placement(name, placement, self.panel_height, self.panel_width))
        parts = []
        if self.transition_frames:
            parts.append(f"{self.transition_frames} black transition frames (1 s at {self.fps:g} fps)")
        parts.append(f"{self.used_driving_frames} driving frames")
        if self.padded_frames:
            plural = "s" if self.padded_frames > 1 else ""
            parts.append(f"{self.padded_frames} repeat{plural} of the last driving frame")
        lines.append(f"frames: {' + '.join(parts)} = {self.total_frames} ({self.temporal}k+1)")
        if self.trimmed_frames:
            lines.append(f"trimmed the last {self.trimmed_frames} of {self.driving_frames} driving frames "
                         f"to reach {self.temporal}k+1")
        return "\n".join(lines)


def _describe_placement(name: str, placement: Placement, panel_h: int, panel_w: int) -> str:
    size = f"{placement.source_height}x{placement.source_width}"
    scaled = f"scaled to {placement.scaled_height}x{placement.scaled_width}" if placement.resamples else "not scaled"
    if placement.covers(panel_h, panel_w) and placement.whole_source:
        return f"{name}: {size}, {scaled}, fills the panel"
    shown, at = placement.source_box, placement.panel_box
    return (f"{name}: {size}, {scaled}; its rows {shown.top}..{shown.top + shown.height - 1} and columns "
            f"{shown.left}..{shown.left + shown.width - 1} fill panel rows {at.top}..{at.top + at.height - 1} "
            f"and columns {at.left}..{at.left + at.width - 1}")


def parse_color(text: str) -> Color:
    """'#rrggbb' (or 'rrggbb') -> an RGB triple in 0..1."""
    digits = text.strip().removeprefix("#")
    if len(digits) != 6 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise DreamActorError(f"background: expected a hex colour like #000000 or #ffffff, got '{text}'")
    return tuple(int(digits[i:i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


def _check_frames(images: torch.Tensor, name: str) -> torch.Tensor:
    """An IMAGE batch [N, H, W, C] with N, H, W >= 1, 1..4 channels and float pixels, or a clear error."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        got = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise DreamActorError(f"{name}: expected an IMAGE batch [frames, height, width, channels], got {got}")
    count, height, width, channels = images.shape
    if count == 0:
        raise DreamActorError(f"{name}: the batch is empty, expected at least one image")
    if height == 0 or width == 0:
        raise DreamActorError(f"{name}: zero size {height}x{width} (height x width), expected at least 1x1")
    if channels not in (1, 2, 3, 4):
        raise DreamActorError(f"{name}: {channels} channels, expected 1 (gray), 2 (gray + alpha), 3 (RGB) "
                              f"or 4 (RGBA)")
    if not images.is_floating_point():
        raise DreamActorError(f"{name}: expected float pixels in 0..1 (ComfyUI IMAGE), got {images.dtype}")
    return images


def _single_reference(reference: torch.Tensor) -> torch.Tensor:
    if isinstance(reference, torch.Tensor) and reference.ndim == 3:
        reference = reference.unsqueeze(0)
    reference = _check_frames(reference, "reference")
    if reference.shape[0] != 1:
        raise DreamActorError(
            f"reference: expected one image, got a batch of {reference.shape[0]}; the canvas has one reference "
            "panel. For several subjects put them side by side in one reference picture (e.g. stitch the images "
            "first); the driving video may show any number of subjects"
        )
    return reference


def _check_transparency(transparency: torch.Tensor | None, reference: torch.Tensor) -> torch.Tensor | None:
    """A [H, W] transparency (1 = transparent) matching the reference, or None."""
    if transparency is None:
        return None
    if transparency.ndim == 3 and transparency.shape[0] == 1:
        transparency = transparency[0]
    if tuple(transparency.shape) != tuple(reference.shape[1:3]):
        raise DreamActorError(f"reference_mask: shape {list(transparency.shape)} does not match the reference "
                              f"image's {list(reference.shape[1:3])} (height x width)")
    return transparency


def to_rgb(frames: torch.Tensor, background: Color, transparency: torch.Tensor | None = None) -> torch.Tensor:
    """[N, H, W, 1..4] -> [N, H, W, 3]: gray expanded, alpha (and ``transparency``, 1 = transparent)
    composited over ``background``. Plain RGB comes back as the same tensor (no copy)."""
    channels = frames.shape[-1]
    color = frames[..., :3] if channels >= 3 else frames[..., :1].expand(*frames.shape[:-1], 3)
    alpha = frames[..., -1:] if channels in (2, 4) else None
    if transparency is not None:
        opacity = (1.0 - transparency.to(frames)).unsqueeze(-1)
        alpha = opacity if alpha is None else alpha * opacity
    if alpha is None:
        return color
    fill = torch.tensor(background, dtype=frames.dtype, device=frames.device)
    return color * alpha + fill * (1.0 - alpha)


def panel_size(reference_hw: tuple[int, int], width: int, height: int,
               multiple: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(requested, rounded) panel height x width; see the module doc for the rule."""
    if width < 0 or height < 0:
        raise DreamActorError(f"width/height: expected 0 (take it from the reference) or a positive size, "
                              f"got {width}x{height} (width x height)")
    if multiple < 1:
        raise DreamActorError(f"multiple: expected a positive pixel multiple (e.g. 16), got {multiple}")
    ref_h, ref_w = reference_hw
    if width and height:
        requested = (height, width)
    elif width:
        requested = (max(1, round(ref_h * width / ref_w)), width)
    elif height:
        requested = (height, max(1, round(ref_w * height / ref_h)))
    else:
        requested = (ref_h, ref_w)
    return requested, (round_to_multiple(requested[0], multiple), round_to_multiple(requested[1], multiple))


def frame_corrections(transition_frames: int, driving_frames: int, temporal: int, rule: str) -> tuple[int, int]:
    """(trimmed, padded) driving frames that make transition + driving a ``temporal``k+1 count."""
    if rule not in FRAME_RULES:
        raise DreamActorError(f"frame_rule: expected one of {', '.join(FRAME_RULES)}, got '{rule}'")
    if temporal < 1:
        raise DreamActorError(f"temporal: expected the VAE's temporal factor (e.g. 4), got {temporal}")
    excess = (transition_frames + driving_frames - 1) % temporal
    if rule == "pad":
        return 0, (temporal - excess) % temporal
    if excess >= driving_frames:
        raise DreamActorError(f"frame_rule: trimming {excess} frames would leave no driving frame after the "
                              f"{transition_frames} transition frames; use 'pad'")
    return excess, 0


def _paste(target: torch.Tensor, frames: torch.Tensor, placement: Placement) -> None:
    """Write ``frames`` [N, h, w, 3] into ``target`` [N, H, W, 3] (a panel view) at ``placement``."""
    scaled = resize_frames(frames, placement.scaled_height, placement.scaled_width)
    shown, at = placement.scaled_box, placement.panel_box
    target[:, at.rows(), at.cols()] = scaled[:, shown.rows(), shown.cols()]


def build_canvas(
    reference: torch.Tensor,
    driving: torch.Tensor,
    *,
    width: int = 0,
    height: int = 0,
    fit: str = "pad",
    multiple: int = DEFAULT_MULTIPLE,
    temporal: int = DEFAULT_TEMPORAL,
    frame_rule: str = "pad",
    transition: bool = False,
    fps: float = 24.0,
    background: Color = (0.0, 0.0, 0.0),
    reference_transparency: torch.Tensor | None = None,
    progress: ProgressHook | None = None,
) -> tuple[torch.Tensor, CanvasLayout]:
    """Reference image [1, H, W, C] (or [H, W, C]) and driving frames [T, H', W', C'] -> the canvas
    [frames, panel H, 2 x panel W, 3] (float32, 0..1) and its layout. Rules: see the module doc.

    ``reference_transparency`` [H, W] (or [1, H, W]): 1 where the reference is transparent
    (ComfyUI's LoadImage MASK convention). ``progress`` is called once per chunk of driving frames.
    """
    reference = _single_reference(reference)
    driving = _check_frames(driving, "driving")
    transparency = _check_transparency(reference_transparency, reference)
    if transition and not fps >= 0.5:
        raise DreamActorError(f"fps: the transition is one second of frames, so fps must be at least 0.5, got {fps}")
    requested, (panel_h, panel_w) = panel_size(tuple(reference.shape[1:3]), width, height, multiple)
    transition_frames = round(fps) if transition else 0
    count = driving.shape[0]
    trimmed, padded = frame_corrections(transition_frames, count, temporal, frame_rule)
    layout = CanvasLayout(
        panel_height=panel_h, panel_width=panel_w, requested_height=requested[0], requested_width=requested[1],
        multiple=multiple, temporal=temporal, fit=fit, frame_rule=frame_rule, fps=float(fps),
        transition_frames=transition_frames, driving_frames=count, trimmed_frames=trimmed, padded_frames=padded,
        total_frames=transition_frames + count - trimmed + padded,
        reference=place(tuple(reference.shape[1:3]), (panel_h, panel_w), fit, keep_scale=not (width or height)),
        driving=place(tuple(driving.shape[1:3]), (panel_h, panel_w), fit),
        background=tuple(float(c) for c in background),  # type: ignore[arg-type]
    )

    canvas = torch.empty(layout.total_frames, panel_h, 2 * panel_w, 3, dtype=torch.float32, device=driving.device)
    left, right = canvas[:, :, :panel_w], canvas[:, :, panel_w:]
    left[1:].zero_()
    if not layout.reference.covers(panel_h, panel_w):
        left[0] = torch.tensor(layout.background, dtype=canvas.dtype, device=canvas.device)
    _paste(left[:1], to_rgb(reference.to(canvas.device), layout.background, transparency), layout.reference)

    first, used = transition_frames, layout.used_driving_frames
    right[:first].zero_()
    if not layout.driving.covers(panel_h, panel_w):
        right[first:first + used].zero_()
    chunks = range(0, used, CHUNK_FRAMES)
    for done, start in enumerate(chunks, 1):
        stop = min(start + CHUNK_FRAMES, used)
        _paste(right[first + start:first + stop], to_rgb(driving[start:stop], (0.0, 0.0, 0.0)), layout.driving)
        report(progress, done, len(chunks))
    if padded:
        right[first + used:] = right[first + used - 1]
    return canvas, layout
