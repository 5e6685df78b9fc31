"""The pose stage (paper): a LoRA that animates a reference with rendered skeletons, trained on a
folder of human videos to reconstruct each clip from its first frame and its own skeletons."""

from __future__ import annotations

from pathlib import Path

from .config import TrainConfig
from .data import Log, pose_sample, prepare_pose_videos
from .loop import StageData


def pose_stage(videos: str | Path, config: TrainConfig, cache_dir: Path, log: Log = print) -> StageData:
    """The folder's usable videos (poses extracted once, cached in ``cache_dir``) as stage data."""
    items = prepare_pose_videos(videos, config, cache_dir, log)
    return StageData("pose", items, pose_sample, [item.prompt for item in items])
