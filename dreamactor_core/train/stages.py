"""The two training stages as data for the loop.

The pose stage (paper): a LoRA that animates a reference with rendered skeletons, trained on a
folder of human videos to reconstruct each clip from its first frame and its own skeletons.

The RGB (end-to-end) stage (paper): reconstruct V_src from the raw frames of V_o, a pose-driven
re-rendering of the same motion with another identity, so no pose estimator is needed at inference.
It warm-starts from the pose stage's LoRA (``--init-lora``; checked by ``lora_peft.read_warm_start``:
another backbone, other target layers or another rank are refused before training starts)."""

from __future__ import annotations

from pathlib import Path

from .config import TrainConfig
from .data import Log, pose_sample, prepare_pose_videos, prepare_rgb_items, rgb_sample
from .loop import StageData


def pose_stage(videos: str | Path, config: TrainConfig, cache_dir: Path, log: Log = print,
               report: Path | None = None) -> StageData:
    """The folder's usable videos (poses extracted once, cached in ``cache_dir``) as stage data;
    videos that cannot be decoded are skipped with a line in ``report``."""
    items = prepare_pose_videos(videos, config, cache_dir, log, report)
    return StageData("pose", items, pose_sample, [item.prompt for item in items])


def rgb_stage(manifest: str | Path, config: TrainConfig, log: Log = print) -> StageData:
    """The manifest's triplets long enough to train on, as stage data."""
    items = prepare_rgb_items(manifest, config, log)
    return StageData("rgb", items, rgb_sample, [item.triplet.prompt for item in items])
