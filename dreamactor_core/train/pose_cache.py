"""Pose extraction once per video, kept on disk so epochs (and later runs) never re-extract.

The key is the video's content digest plus the settings that change the result (backend, its
weights folders, confidence threshold, frame stride); the file holds every detected person of every
frame, losslessly (float64 keypoints plus per-frame counts) in safetensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..pose import extract
from ..pose.types import PoseSequence
from .config import TrainConfig
from .files import file_digest, replacing, settings_key

POSE_FORMAT = "dreamactor-poses-1"


def pose_cache_path(video: Path, config: TrainConfig, cache_dir: Path) -> Path:
    key = settings_key(POSE_FORMAT, file_digest(video), config.pose_backend, list(config.pose_model_dirs),
                       config.min_confidence, config.frame_stride)
    return cache_dir / "poses" / f"{key}.safetensors"


def save_poses(poses: PoseSequence, path: Path) -> None:
    from safetensors.numpy import save_file

    counts = np.array([len(frame) for frame in poses.frames], dtype=np.int64)
    with replacing(path) as temporary:
        save_file({"people": np.ascontiguousarray(poses.stacked()), "counts": counts}, str(temporary),
                  metadata={"format": POSE_FORMAT, "width": str(poses.width), "height": str(poses.height)})


def load_poses(path: Path) -> PoseSequence:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        metadata = handle.metadata()
        people, counts = handle.get_tensor("people"), handle.get_tensor("counts")
    frames = tuple(np.split(people, np.cumsum(counts)[:-1])) if len(counts) else ()
    return PoseSequence(frames, int(metadata["width"]), int(metadata["height"]))


def cached_poses(video: Path, decode: Callable[[], np.ndarray], config: TrainConfig,
                 cache_dir: Path) -> tuple[PoseSequence, bool]:
    """The poses of the whole video (frames from ``decode``, with the config's stride), from the
    cache when present, so a cached video is not even decoded; returns (poses, extracted now)."""
    path = pose_cache_path(video, config, cache_dir)
    if path.is_file():
        return load_poses(path), False
    estimator = extract.make_estimator(config.pose_backend, config.pose_model_dirs, video=True)
    poses = extract.extract_poses(decode(), estimator, config.min_confidence)
    save_poses(poses, path)
    return poses, True
