"""Scores beside every sample render, to help pick a checkpoint: ``step_N.json`` next to
``step_N.mp4``, from the bootstrap's model-free scorers (``bootstrap/scorers.py``, 1-5 scale).

The render's generated half is compared with the held clip's target frames (its ground truth):
``temporal_stability`` (does it move as much as the target, no flicker, not frozen) and
``appearance`` (colours of the reference kept); in the pose stage also ``pose_agreement`` (the
estimator's poses of the render against those of the target, after the clip-level box). They are
cheap stand-ins for a judge: a rising curve over checkpoints is a hint, not a verdict. Any scorer
``(ScoringInputs) -> float`` can be passed instead (the hook is ``scorers``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Mapping

import torch

from ..pose import extract
from ..pose.types import PoseSequence
from .bootstrap.scorers import BUILTIN_SCORERS
from .bootstrap.scoring import Scorer, ScoringInputs
from .config import TrainConfig
from .data import Sample
from .files import replacing

MODEL_FREE = ("temporal_stability", "appearance")


def default_scorers(stage: str) -> dict[str, Scorer]:
    """The built-in scorers that apply to ``stage`` ("pose" adds pose agreement)."""
    names = (*MODEL_FREE, "pose_agreement") if stage == "pose" else MODEL_FREE
    return {name: BUILTIN_SCORERS[name] for name in names}


def pose_extractor(config: TrainConfig) -> Callable[[torch.Tensor], PoseSequence]:
    """Poses of frames with the stage's own estimator and settings (a fresh estimator per call)."""
    return lambda frames: extract.extract_poses(frames, extract.make_estimator(
        config.pose_backend, config.pose_model_dirs, video=True), config.min_confidence)


def write_scores(path: Path, canvas: torch.Tensor, sample: Sample, step: int, scorers: Mapping[str, Scorer],
                 extract_poses: Callable[[torch.Tensor], PoseSequence] | None = None) -> dict[str, float]:
    """Score the render's left (generated) half ``canvas[..., :W/2, :]`` against ``sample`` and write
    ``{"step", "video", "scores", "mean"}`` to ``path``; returns the scores."""
    generated = canvas[:, :, : canvas.shape[2] // 2, :3].float()
    no_poses = PoseSequence(tuple(), 1, 1)
    extract_poses = extract_poses or (lambda frames: no_poses)
    inputs = ScoringInputs(generated, sample.target.float(), sample.reference[0].float(),
                           extract_poses(sample.target) if "pose_agreement" in scorers else no_poses,
                           extract_poses, sample.fps, sample.source)
    scores = {name: float(scorer(inputs)) for name, scorer in scorers.items()}
    record = {"step": step, "video": path.with_suffix(".mp4").name, "scores": scores,
              "mean": sum(scores.values()) / len(scores) if scores else None}
    with replacing(path) as temporary:
        temporary.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return scores
