"""The periodic sample render: the sampler on a held clip with the LoRA as trained so far, so a run
shows what it learns (the whole canvas is written: the generated left half beside its driving)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..conditioning.types import Conditioning
from ..models.backbones.base import BackboneAdapter
from ..models.loading import DreamActorModel, DreamActorVAE
from ..models.vae import decode_latent
from ..sampling import sample
from ..video_io import write_video
from .objective import Example


def render_sample(transformer: torch.nn.Module, adapter: BackboneAdapter, vae: DreamActorVAE, example: Example,
                  positive: Conditioning, negative: Conditioning | None, fps: float,
                  steps: int, cfg: float, path: Path, seed: int = 0) -> tuple[Path, torch.Tensor]:
    """Sample ``example``'s canvas with ``transformer`` (LoRA injected and active) and write it as mp4.
    ``positive``/``negative``: the training's own conditioning (prompt plus reference embedding), so
    the render shows the LoRA under the conditioning it is trained with and used under. Returns the
    file and the decoded canvas frames (for ``sample_scores``)."""
    was_training = transformer.training
    transformer.eval()
    try:
        model = DreamActorModel(transformer, adapter, "training sample")
        latent = sample(model, positive, example.condition, example.mask, negative=negative if cfg != 1.0 else None,
                        seed=seed, steps=steps, cfg=cfg)
        frames = decode_latent(vae, latent)
    finally:
        transformer.train(was_training)
    return write_video(path, frames, fps), frames
