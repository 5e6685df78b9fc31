"""Checkpoint-selection aid: the scores JSON written beside each sample render."""

from __future__ import annotations

import json

import pytest
import torch
from train_fixtures import tiny_config, tiny_model_paths, video_folder

from dreamactor_core.train.data import Sample
from dreamactor_core.train.loop import run_folders, train
from dreamactor_core.train.sample_scores import default_scorers, write_scores
from dreamactor_core.train.stages import pose_stage


def _moving(frames: int = 6, size: int = 16) -> torch.Tensor:
    """A bright square sliding right one pixel a frame on grey."""
    video = torch.full((frames, size, size, 3), 0.5)
    for t in range(frames):
        video[t, 4:10, 2 + t:8 + t] = 1.0
    return video


def test_scores_compare_the_generated_half_with_the_target(tmp_path):
    target = _moving()
    sample = Sample(target[:1], torch.zeros_like(target), target, "p", 24.0, "clip[0:6]")
    scorers = default_scorers("rgb")
    assert sorted(scorers) == ["appearance", "temporal_stability"] and "pose_agreement" in default_scorers("pose")
    noise = torch.rand_like(target)  # the right half is not scored
    faithful = write_scores(tmp_path / "step_1.json", torch.cat([target, noise], dim=2), sample, 1, scorers)
    assert faithful["temporal_stability"] == pytest.approx(5.0)
    frozen = write_scores(tmp_path / "step_2.json", torch.cat([target[:1].expand_as(target), noise], dim=2), sample, 2,
                          scorers)
    assert frozen["temporal_stability"] == pytest.approx(1.0)  # no motion at all: the lowest score
    record = json.loads((tmp_path / "step_2.json").read_text())
    assert record == {"step": 2, "video": "step_2.mp4", "scores": frozen, "mean": pytest.approx(sum(frozen.values()) / 2)}


def test_training_writes_scores_beside_each_sample_render(tmp_path, train_cache):
    config = tiny_config(min_frames=5, max_frames=5, max_steps=1, sample_every=1, sample_steps=2, sample_cfg=1.0)
    stage = pose_stage(video_folder(tmp_path / "clips", frames=5), config, train_cache, lambda m: None)
    out = tmp_path / "lora.safetensors"
    train(stage, tiny_model_paths(tmp_path), config, out, cache_dir=train_cache, log=lambda m: None)
    samples = run_folders(out)[1]
    assert (samples / "step_00000001.mp4").is_file()
    record = json.loads((samples / "step_00000001.json").read_text())
    assert sorted(record["scores"]) == ["appearance", "pose_agreement", "temporal_stability"]
    assert all(1.0 <= value <= 5.0 for value in record["scores"].values())
