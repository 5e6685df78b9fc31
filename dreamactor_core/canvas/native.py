"""The DreamActor canvas as conditioning for ComfyUI's own image-to-video models (the native path).

ComfyUI's latent-concat image-to-video models read two conditioning values in ``concat_cond``
(``comfy/model_base.py``, 0.3.60 to 0.3.75): ``concat_latent_image`` (raw VAE latents over all
latent frames; the model applies its latent format) and ``concat_mask``, which the model feeds as
``1 - concat_mask``. The DreamActor mask M is 1 where the canvas is given, so ``concat_mask = 1 - M``,
packed to the latent grid in the family's layout (``masks.pack_latent_mask``):
- HunyuanVideo 1.5 (``HunyuanVideo15``): [1, 1, T_lat, h, w], input [noise 32, canvas 32, M];
- Wan 2.1 / 2.2 14B image-to-video (``WAN21`` with ``image_to_video``): [1, 4, T_lat, h, w], the four
  pixel frames of each latent frame folded into channels (the layout ``WanImageToVideo`` writes),
  input [M 4, canvas 16] after the noise.
Wan 2.2 5B (TI2V, 48-channel VAE) has no concat channels (it conditions by replacing latent frames),
so it cannot take the canvas; nor can HunyuanVideo 1.0 (its ComfyUI I2V is token replacement).

The VAE tells the family: its latent channels and spatial / temporal compression (and, for the
16-channel 8x VAEs that HunyuanVideo 1.0 and Wan 2.1 share, its architecture).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import DreamActorError
from .composite import CanvasLayout
from .masks import FOLDED_TEMPORAL, PER_LATENT_FRAME, canvas_mask, pack_latent_mask


@dataclass(frozen=True)
class NativeFamily:
    """A ComfyUI model family that takes the canvas through ``concat_latent_image`` + ``concat_mask``."""

    name: str
    display_name: str
    latent_channels: int
    spatial: int
    temporal: int
    mask_layout: str
    model_class: str  # ComfyUI's comfy.model_base class
    model_input_channels: int  # the diffusion model's input channels: noise + canvas + mask
    vae_architecture: str | None = None  # needed where the numbers alone do not tell the VAE apart


NATIVE_FAMILIES = (
    NativeFamily("hunyuan_video_15", "HunyuanVideo 1.5", 32, 16, 4, PER_LATENT_FRAME, "HunyuanVideo15", 65),
    NativeFamily("wan_i2v", "Wan 2.1 / 2.2 14B image-to-video", 16, 8, 4, FOLDED_TEMPORAL, "WAN21", 36, "WanVAE"),
)


def _describe(channels: int, spatial: int, temporal: int) -> str:
    return f"{channels} latent channels, {spatial}x spatial, {temporal}x temporal compression"


def family_for_vae(channels: int, spatial: int, temporal: int | None, architecture: str) -> NativeFamily:
    """The family whose canvas a VAE encodes, or a DreamActorError naming what the VAE is."""
    for family in NATIVE_FAMILIES:
        numbers = (family.latent_channels, family.spatial, family.temporal) == (channels, spatial, temporal)
        if numbers and family.vae_architecture in (None, architecture):
            return family
    supported = "; ".join(f"{f.display_name} ({_describe(f.latent_channels, f.spatial, f.temporal)})"
                          for f in NATIVE_FAMILIES)
    raise DreamActorError(
        f"vae: a {architecture} VAE with {_describe(channels, spatial, temporal or 1)} is not the VAE of a model "
        f"that takes the DreamActor canvas; expected {supported}. Load the VAE that belongs to the diffusion model")


def check_model(family: NativeFamily, model_class: str, input_channels: int | None) -> None:
    """Refuse a diffusion model of another family than the VAE's (it would fail deep inside the
    sampler, or for Wan silently drop half the canvas), or one without the concat channels."""
    if model_class != family.model_class:
        raise DreamActorError(
            f"model: a ComfyUI '{model_class}' model, but the VAE encodes for {family.display_name} "
            f"('{family.model_class}'): load the diffusion model and VAE of one family")
    if input_channels is not None and input_channels != family.model_input_channels:
        raise DreamActorError(
            f"model: {family.display_name} with {input_channels} input channels, expected the image-to-video "
            f"model's {family.model_input_channels} (noise + canvas latent + mask); a text-to-video model cannot "
            "take the canvas")


def check_canvas(canvas: torch.Tensor, layout: CanvasLayout, family: NativeFamily) -> None:
    """The canvas IMAGE must be the one ``layout`` describes, with sizes the family's VAE can encode."""
    expected = (layout.total_frames, layout.panel_height, layout.canvas_width, 3)
    if not isinstance(canvas, torch.Tensor) or tuple(canvas.shape) != expected:
        got = list(canvas.shape) if isinstance(canvas, torch.Tensor) else type(canvas).__name__
        raise DreamActorError(
            f"canvas: shape {got} does not match canvas_info's {list(expected)} (frames, height, 2 x width, RGB); "
            "connect the canvas and canvas_info outputs of the same DreamActor-M2 Build Canvas")
    if layout.temporal != family.temporal or layout.panel_height % family.spatial or layout.panel_width % family.spatial:
        raise DreamActorError(
            f"canvas: {layout.total_frames} frames (built for {layout.temporal}k+1) of two "
            f"{layout.panel_height}x{layout.panel_width} panels; the {family.display_name} VAE needs "
            f"{family.temporal}k+1 frames and panel sides divisible by {family.spatial}: set Build Canvas's "
            f"temporal to {family.temporal} and multiple to a multiple of {family.spatial}")


def latent_shape(layout: CanvasLayout, family: NativeFamily, batch: int = 1) -> tuple[int, ...]:
    """[batch, C, T_lat, H / s, 2W / s]: the latent the family's VAE makes of the canvas."""
    return (batch, family.latent_channels, (layout.total_frames - 1) // family.temporal + 1,
            layout.panel_height // family.spatial, layout.canvas_width // family.spatial)


def concat_mask(layout: CanvasLayout, family: NativeFamily) -> torch.Tensor:
    """ComfyUI's ``concat_mask`` for the canvas: 1 - M packed to [1, C_mask, T_lat, h, w] (float32)."""
    packed = pack_latent_mask(canvas_mask(layout), family.spatial, family.temporal, family.mask_layout)
    return (1.0 - packed).unsqueeze(0)
