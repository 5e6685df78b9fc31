"""The RGB (end-to-end) stage (paper): reconstruct V_src from the raw frames of V_o, a pose-driven
re-rendering of the same motion with another identity, so no pose estimator is needed at inference.
It warm-starts from the pose stage's LoRA (``--init-lora``; checked by ``lora_peft.read_warm_start``:
another backbone, other target layers or another rank are refused before training starts)."""

from __future__ import annotations

from pathlib import Path

from .config import TrainConfig
from .data import Log, prepare_rgb_items, rgb_sample
from .loop import StageData


def rgb_stage(manifest: str | Path, config: TrainConfig, log: Log = print) -> StageData:
    """The manifest's triplets long enough to train on, as stage data."""
    items = prepare_rgb_items(manifest, config, log)
    return StageData("rgb", items, rgb_sample, [item.triplet.prompt for item in items])
