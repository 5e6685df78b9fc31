"""Shared tiny-model inputs for the engine tests (imported by the test modules' fixtures)."""

from __future__ import annotations

import torch

from dreamactor_core.testing.tiny_models import TINY_CANVAS


def canvas_mask(latent: torch.Tensor, channels: int = 1) -> torch.Tensor:
    """The DreamActor canvas mask at latent resolution: reference half on frame 0, motion half always."""
    mask = torch.zeros(latent.shape[0], channels, *latent.shape[2:])
    mask[:, :, 0, :, : latent.shape[-1] // 2] = 1
    mask[:, :, :, :, latent.shape[-1] // 2:] = 1
    return mask


def canvas_frames(seed: int = 0) -> torch.Tensor:
    frames, height, width = TINY_CANVAS
    return torch.rand(frames, height, width, 3, generator=torch.Generator().manual_seed(seed))
