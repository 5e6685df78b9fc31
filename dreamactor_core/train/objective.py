"""The training objective: the canvas exactly as inference builds it, and flow matching on the whole
latent the sampler denoises.

Condition: ``build_canvas(reference, driving)`` (frame 0 [reference | driving 0], later frames
[black | driving t]), VAE-encoded, with ``canvas_mask`` packed to the latent grid: the very calls
``pipeline.animate`` makes, so train and test inputs cannot drift apart.

Clean latent x0: the TARGET canvas, [target frames | the same driving half], encoded by the same
VAE. Its left half is what ``result.extract_result`` reads back after sampling.

Loss region: the whole latent (the paper's plain denoising loss). The sampler moves every cell,
the given ones too (the reference on latent frame 0, the driving half), with the model's own
velocity and never puts them back, as ComfyUI's and diffusers' samplers do; so training puts every
cell of the target latent on the same path (``sampling.sampler.noised``, the one function both use)
and supervises every cell. Supervising only the generated left half (as this file once did) left
the given cells on a path at inference the LoRA never saw; pinning them to the re-noised condition
in both places would also agree, but only with the pack's own sampler, not with ComfyUI's own
samplers (KSampler and diffusers' pipelines move every cell too).

Text and reference: the prompt's embedding plus, with an image encoder, the reference picture's
SigLIP embedding, joined by ``image_encoder.with_reference_embedding`` as ``pipeline.animate`` joins
them; the reference is the clip's frame 0 at its source size, the picture the canvas's left half
shows on frame 0 (the loop makes the conditioning; ``Example`` carries the picture).

Noise levels: logit-normal s = sigmoid(N(0, 1)) (SD3's choice; it favours the middle levels where
the velocity is hardest to predict) or uniform, then time-shifted with the backbone's sampling shift
(s' = shift s / (1 + (shift - 1) s), the sampler's own schedule), so training spends its steps at the
noise levels inference visits. x_t = (1 - s) x0 + s noise (``noised``), target v = noise - x0
(``sampling``'s convention), timestep = 1000 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from ..canvas.composite import build_canvas
from ..canvas.masks import canvas_mask, pack_latent_mask
from ..errors import DreamActorError
from ..models.backbones.base import BackboneAdapter
from ..models.loading import DreamActorVAE
from ..models.vae import encode_video
from ..sampling.sampler import noised
from .config import TrainConfig
from .data import Sample


@dataclass(frozen=True)
class Example:
    """One sample in latent space, [1, C, T, H, W] each (mask: [1, mask channels, T, H, W])."""

    condition: torch.Tensor
    mask: torch.Tensor
    clean: torch.Tensor  # x0: the target canvas latent
    prompt: str
    reference: torch.Tensor  # [1, H, W, 3]: the picture whose SigLIP embedding joins the prompt's
    image_embeds: torch.Tensor | None = None  # the reference's SigLIP embedding, when read from a cache


def encode_example(sample: Sample, vae: DreamActorVAE, config: TrainConfig, tile_size: int = 256) -> Example:
    """Sample frames -> condition latent, packed mask and target latent."""
    adapter = vae.adapter
    canvas_args = dict(width=config.width, height=config.height, fit=config.fit,
                       temporal=adapter.temporal_compression, transition=False, fps=sample.fps)
    canvas, layout = build_canvas(sample.reference, sample.driving, **canvas_args)
    # The target frames placed as the canvas places pictures: build a canvas whose *driving* half is
    # the target clip (same panel, same fit) and take that half; a panel-sized picture is placed the
    # same way in either half.
    placed, placed_layout = build_canvas(sample.reference, sample.target, **canvas_args)
    if placed_layout.total_frames != layout.total_frames:
        raise DreamActorError(f"sample {sample.source}: target and driving clips differ in length")
    target = canvas.clone()
    target[:, :, :layout.panel_width] = placed[:, :, layout.panel_width:]
    mask = pack_latent_mask(canvas_mask(layout), adapter.spatial_compression, adapter.temporal_compression,
                            adapter.mask_layout).unsqueeze(0)
    condition = encode_video(vae, canvas, tile_size=tile_size)
    clean = encode_video(vae, target, tile_size=tile_size)
    # encode_video runs in inference mode; clones are ordinary tensors autograd may save.
    return Example(condition.clone(), mask.clone(), clean.clone(), sample.prompt, sample.reference)


def draw_noise_level(generator: torch.Generator, config: TrainConfig, adapter: BackboneAdapter) -> float:
    """One noise level s in (0, 1): logit-normal or uniform, then shifted (see the module doc)."""
    if config.timestep_sampling == "logit_normal":
        raw = torch.sigmoid(torch.randn(1, generator=generator)).item()
    else:
        raw = torch.rand(1, generator=generator).item()
    shift = adapter.default_shift if config.timestep_shift is None else config.timestep_shift
    return shift * raw / (1.0 + (shift - 1.0) * raw)


def velocity_target(clean: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The velocity the model must predict on the path ``noised``: d x_s / d s = noise - x0."""
    return noise - clean


def flow_matching_loss(transformer: torch.nn.Module, adapter: BackboneAdapter, example: Example,
                       text: Mapping[str, torch.Tensor], level: float, noise: torch.Tensor) -> torch.Tensor:
    """Mean squared error between predicted and true velocity over every latent cell (``text``
    from ``adapter.prepare_conditioning``; ``noise`` shaped like the latent)."""
    parameter = next(transformer.parameters())
    device, dtype = parameter.device, parameter.dtype
    clean, noise = example.clean.to(device), noise.to(device)
    model_input = adapter.pack_input(noised(clean, noise, level).to(dtype), example.condition.to(device, dtype),
                                     example.mask.to(device, dtype))
    timestep = torch.full((clean.shape[0],), level * 1000.0, device=device, dtype=dtype)
    predicted = adapter.predict_velocity(transformer, model_input, timestep, text).float()
    return torch.nn.functional.mse_loss(predicted, velocity_target(clean, noise))
