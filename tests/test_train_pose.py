"""Pose-stage training on tiny models and a real dancer clip: the loss falls, the LoRA loads and
changes the sampler, a resumed run matches an uninterrupted one, bad inputs fail clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_fixtures import tiny_config, tiny_model_paths, video_folder

from dreamactor_core.app.cli import main
from dreamactor_core.errors import DreamActorError
from dreamactor_core.models import checkpoints
from dreamactor_core.models.loading import load_transformer
from dreamactor_core.models.lora import load_lora
from dreamactor_core.sampling import sample
from dreamactor_core.testing.tiny_models import tiny_text_conditioning
from dreamactor_core.train.bootstrap.report import read_report
from dreamactor_core.train.loop import train
from dreamactor_core.train.stages import pose_stage

QUIET = lambda message: None  # noqa: E731


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("train_pose")


@pytest.fixture(scope="module")
def overfit(root, train_cache):
    """20 steps on one 5-frame clip with a high learning rate (the paper's 5e-5 is for 50k steps)."""
    config = tiny_config(min_frames=5, max_frames=5, rank=16, learning_rate=1e-2, max_steps=20,
                         bone_scale_probability=0.0, max_grad_norm=0.0, seed=3)
    stage = pose_stage(video_folder(root / "one_clip", frames=5), config, train_cache, QUIET)
    return train(stage, tiny_model_paths(root), config, root / "overfit.safetensors", cache_dir=train_cache, log=QUIET)


def test_loss_falls_when_overfitting_one_clip(overfit):
    first, last = np.mean(overfit.losses[:5]), np.mean(overfit.losses[-5:])
    assert overfit.step == 20 and len(overfit.losses) == 20
    assert last < 0.8 * first, overfit.losses


def test_saved_lora_loads_fully_and_changes_the_sampler(root, overfit):
    keys, metadata = checkpoints.read_header(overfit.lora)
    targets = json.loads(metadata["target_modules"])
    assert (metadata["backbone"], metadata["rank"], metadata["stage"], metadata["step"]) == (
        "hunyuan_video_15", "16", "pose", "20")
    assert float(metadata["alpha"]) == 16.0 and len(targets) == 4
    model = load_transformer(tiny_model_paths(root).transformer)
    weights = load_lora(overfit.lora, model)
    assert sorted(weights.layers) == sorted(targets) and weights.unmatched == []
    assert all(layer.scale == 1.0 for layer in weights.layers.values())
    generator = torch.Generator().manual_seed(0)
    condition = torch.randn(1, 32, 2, 4, 8, generator=generator)
    mask = torch.zeros(1, 1, 2, 4, 8)
    mask[:, :, 0] = 1.0
    text = tiny_text_conditioning()
    plain = sample(model, text, condition, mask, steps=2, cfg=1.0)
    with_lora = sample(model.with_lora(weights, 1.0), text, condition, mask, steps=2, cfg=1.0)
    assert (plain - with_lora).abs().max() > 1e-3


def test_resume_continues_with_identical_state(root, train_cache):
    folder = video_folder(root / "resume_clips", frames=9)
    paths = tiny_model_paths(root)
    config = tiny_config(min_frames=5, max_frames=9, batch_size=2, learning_rate=1e-3, max_steps=2,
                         checkpoint_every=1, keep_checkpoints=1, warmup_steps=3, seed=5)
    stage = pose_stage(folder, config, train_cache, QUIET)
    straight = train(stage, paths, config, root / "straight.safetensors", cache_dir=train_cache, log=QUIET)
    split_out = root / "split.safetensors"
    first = train(stage, paths, tiny_config(**{**config.__dict__, "max_steps": 1}), split_out, cache_dir=train_cache, log=QUIET)
    assert first.step == 1 and (root / "split_checkpoints" / "step_00000001").is_dir()
    resumed = train(stage, paths, config, split_out, cache_dir=train_cache, resume="latest", log=QUIET)
    assert resumed.step == 2 and len(resumed.losses) == 1
    assert resumed.losses[0] == straight.losses[1]
    expected, got = checkpoints.load_state_dict(straight.lora), checkpoints.load_state_dict(split_out)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[key], got[key]) for key in expected)
    # Both runs conditioned on the reference's SigLIP embedding (tiny_model_paths gives an image encoder).
    assert checkpoints.read_header(split_out)[1]["image_embeds"] == "siglip"
    assert (root / "split_checkpoints" / "split-step00000001.safetensors").is_file()
    assert not (root / "split_checkpoints" / "step_00000001").exists()  # keep_checkpoints=1 pruned it


def test_poses_are_extracted_once_per_video_content(root, train_cache):
    messages: list[str] = []
    folder = video_folder(root / "cached", frames=5)
    for _ in range(2):
        pose_stage(folder, tiny_config(min_frames=5, max_frames=5), root / "own_cache", messages.append)
    assert [m.split(" poses")[0] for m in messages if "poses of" in m] == ["extracted", "cached"]
    renamed = video_folder(root / "renamed", frames=5)
    (renamed / "dancer.webp").rename(renamed / "other.webp")
    pose_stage(renamed, tiny_config(min_frames=5, max_frames=5), root / "own_cache", messages.append)
    assert messages[-1].startswith("cached poses of other.webp")


def test_bad_video_folders_are_clear_errors(root, train_cache):
    config = tiny_config()
    (root / "empty").mkdir()
    with pytest.raises(DreamActorError, match="holds no videos"):
        pose_stage(root / "empty", config, train_cache, QUIET)
    broken = root / "broken"
    broken.mkdir()
    (broken / "clip.mp4").write_bytes(b"not a video at all")
    with pytest.raises(DreamActorError, match="broken': no video could be decoded"):
        pose_stage(broken, config, train_cache, QUIET)
    with pytest.raises(DreamActorError, match="every clip is shorter than min_frames 49"):
        pose_stage(video_folder(root / "short"), tiny_config(min_frames=49, max_frames=121), train_cache, QUIET)


def test_command_line_trains_on_tiny_models(root, train_cache):
    out = root / "cli" / "pose.safetensors"
    code = main(["train", "pose", "--tiny", "--videos", str(video_folder(root / "cli_clips", frames=5)),
                 "--out", str(out), "--cache-dir", str(train_cache), "--min-frames", "5", "--max-frames", "5",
                 "--max-steps", "1", "--rank", "4", "--alpha", "2"])
    assert code == 0
    _, metadata = checkpoints.read_header(out)
    assert (metadata["rank"], metadata["alpha"], metadata["step"]) == ("4", "2.0", "1")
    assert metadata["image_embeds"] == "siglip"  # --tiny brings the tiny SigLIP


def test_a_corrupt_clip_is_skipped_with_a_report_line(root, train_cache):
    folder = video_folder(root / "one_corrupt", frames=9)
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    messages: list[str] = []
    report = root / "corrupt_report.jsonl"
    stage = pose_stage(folder, tiny_config(), train_cache, messages.append, report=report)
    assert [item.path.name for item in stage.items] == ["dancer.webp"]
    assert any(m.startswith("skipping corrupt.mp4: ") for m in messages)
    (line,) = read_report(report)
    assert (line.source, line.status) == ("corrupt.mp4", "skipped") and "could not be read" in line.reason
