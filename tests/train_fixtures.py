"""Shared inputs of the training tests: tiny models and a real dancer clip, made once per session.

Pose extraction of the clip (MediaPipe on 45 frames) is the slowest shared step; every test points
at the same pose cache, which is keyed by the video's content, so it runs once per session.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image
from real_data import template_clip

from dreamactor_core.pipeline import ModelFiles
from dreamactor_core.train.config import make_config
from dreamactor_core.video_io import read_clip

# 64 x 64 panels, 9-frame clips: 96 tokens for the tiny transformer (see tiny_models).
TINY = dict(width=64, height=64, min_frames=9, max_frames=9, rank=8, batch_size=1, checkpoint_every=0,
            sample_every=0, log_every=1000, gradient_checkpointing=False, driving_mask_seconds=0.25,
            timestep_sampling="uniform")


def tiny_config(**overrides):
    return make_config({**TINY, **overrides})


@functools.cache
def tiny_model_paths(root: Path) -> ModelFiles:
    """Tiny seeded models (the same bytes on every call) written under ``root``, with the tiny SigLIP
    as image encoder, as ``--tiny`` and ``--models-dir`` give training one."""
    from dreamactor_core.testing.stand_ins import write_tiny_model_files

    return write_tiny_model_files(root / "models")


def write_webp(path: Path, frames: np.ndarray, duration_ms: int = 40) -> Path:
    """Frames [T, H, W, 3] uint8 as a lossless animated webp (25 fps by default)."""
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0, lossless=True)
    return path


@functools.cache
def dancer_frames() -> np.ndarray:
    return read_clip(template_clip()).frames


def video_folder(folder: Path, frames: int | None = None, prompt: str = "a person dancing") -> Path:
    """A folder with the dancer clip (its first ``frames`` frames, or the original file) and a caption."""
    folder.mkdir(parents=True, exist_ok=True)
    if frames is None:
        (folder / "dancer.webp").write_bytes(template_clip().read_bytes())
    else:
        write_webp(folder / "dancer.webp", dancer_frames()[:frames])
    (folder / "dancer.txt").write_text(prompt)
    return folder
