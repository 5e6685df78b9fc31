"""The DreamActor canvas mask M = [M_r | M_m] and its packing to a backbone's latent grid.

M_r (left half) is 1 on frame 0 and 0 later: only the first frame's reference is given. M_m (right
half) is 1 on every frame: the motion is given throughout (paper). The whole half is marked, padding
included, because the model is told which half of the canvas is conditioning, not where the subject is.

At latent resolution each backbone wants its own channel layout:
- ``PER_LATENT_FRAME`` (HunyuanVideo / HunyuanVideo 1.5 image-to-video): one channel; latent frame 0
  is pixel frame 0 alone, latent frame j >= 1 covers pixel frames 1 + (j-1)t .. j t (t = temporal);
- ``FOLDED_TEMPORAL`` (Wan 2.x image-to-video): ``temporal`` channels; pixel frame 0 repeated
  ``temporal`` times, then every pixel frame, folded ``temporal`` at a time into the channels,
  exactly as diffusers' ``WanImageToVideoPipeline`` builds ``mask_lat_size``.
Reduction: a latent cell is the maximum of the pixels it covers (the spatial block and, for
``PER_LATENT_FRAME``, its frame group), so any conditioned pixel marks its cell and the seam
between the halves, which falls on a cell boundary, stays sharp.
"""

from __future__ import annotations

import torch

from ..errors import DreamActorError
from .composite import CanvasLayout

PER_LATENT_FRAME = "per_latent_frame"
FOLDED_TEMPORAL = "folded_temporal"
MASK_LAYOUTS = (PER_LATENT_FRAME, FOLDED_TEMPORAL)


def canvas_mask(layout: CanvasLayout) -> torch.Tensor:
    """The pixel mask [total_frames, panel H, 2 x panel W] (float32, 0 or 1) of a built canvas.
    Every value is written once (no zero-fill first): the mask is as large as a channel of the canvas."""
    mask = torch.empty(layout.total_frames, layout.panel_height, layout.canvas_width)
    reference, motion = mask[:, :, :layout.panel_width], mask[:, :, layout.panel_width:]
    reference[:1] = 1.0
    reference[1:] = 0.0
    motion[:] = 1.0
    return mask


def pack_latent_mask(mask: torch.Tensor, spatial: int, temporal: int, layout: str) -> torch.Tensor:
    """Pixel mask [T, H, W2] -> [C, T_lat, H / spatial, W2 / spatial] with T_lat = (T - 1) // temporal + 1
    and C = 1 (``PER_LATENT_FRAME``) or ``temporal`` (``FOLDED_TEMPORAL``); see the module doc.

    T must be ``temporal``k+1 and H, W2 multiples of ``spatial`` (what the canvas builder and the VAE
    produce); dtype and device follow ``mask``.
    """
    if layout not in MASK_LAYOUTS:
        raise DreamActorError(f"mask layout: expected one of {', '.join(MASK_LAYOUTS)}, got '{layout}'")
    if spatial < 1 or temporal < 1:
        raise DreamActorError(f"mask: spatial and temporal factors must be positive, got {spatial} and {temporal}")
    if mask.ndim != 3 or 0 in mask.shape:
        raise DreamActorError(f"mask: expected a non-empty MASK [frames, height, width], got {list(mask.shape)}")
    frames, height, width = mask.shape
    if (frames - 1) % temporal or height % spatial or width % spatial:
        raise DreamActorError(f"mask: expected {temporal}k+1 frames of a size divisible by {spatial}, got "
                              f"{frames} frames of {height}x{width}")
    lat_h, lat_w = height // spatial, width // spatial
    cells = mask.reshape(frames, lat_h, spatial, lat_w, spatial).amax(dim=(2, 4))
    first, rest, lat_t = cells[:1], cells[1:], (frames - 1) // temporal + 1
    if layout == PER_LATENT_FRAME:
        groups = rest.reshape(lat_t - 1, temporal, lat_h, lat_w).amax(dim=1)
        return torch.cat([first, groups]).unsqueeze(0)
    folded = torch.cat([first.expand(temporal, lat_h, lat_w), rest])
    return folded.reshape(lat_t, temporal, lat_h, lat_w).transpose(0, 1).contiguous()
