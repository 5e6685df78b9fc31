"""The training data path on small exact inputs: the first-second black driving, the clip-level box
and per-clip bone scaling of the skeletons, the window, target and reference of pose and RGB samples,
and the two canvases ``encode_example`` hands the VAE."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from train_fixtures import tiny_config, write_webp

from dreamactor_core.models.backbones import get_adapter
from dreamactor_core.pose import skeleton as sk
from dreamactor_core.pose.types import PoseSequence
from dreamactor_core.train import objective
from dreamactor_core.train.data import (
    PoseVideo,
    RgbItem,
    Sample,
    mask_first_second,
    pose_sample,
    rgb_sample,
    skeleton_poses,
)
from dreamactor_core.train.manifest import Triplet
from dreamactor_core.video_io import read_clip

FRAMES, SIZE = 12, 16


def test_mask_first_second_blacks_out_round_fps_times_seconds_frames():
    driving = torch.ones(10, 2, 2, 3)
    masked = mask_first_second(driving, fps=8.0, seconds=0.5)
    assert masked[:4].abs().sum() == 0 and torch.equal(masked[4:], driving[4:])
    assert torch.equal(driving, torch.ones(10, 2, 2, 3))  # the input is left alone
    assert mask_first_second(driving, fps=2.0, seconds=0.2)[:1].abs().sum() == 0  # at least one frame
    assert torch.equal(mask_first_second(driving, fps=2.0, seconds=0.2)[1:], driving[1:])
    assert torch.equal(mask_first_second(driving, fps=8.0, seconds=0.0), driving)
    assert mask_first_second(driving, fps=30.0, seconds=1.0).abs().sum() == 0  # never past the clip
    assert torch.equal(mask_first_second(driving, fps=7.0, seconds=0.5)[4:], driving[4:])  # 3.5 rounds to 4
    assert mask_first_second(driving, fps=7.0, seconds=0.5)[:4].abs().sum() == 0


def _person(shift_x: float) -> np.ndarray:
    """One body [1, K, 3] on a 200 x 200 canvas: neck, shoulders, arms, hips, legs, nose."""
    people = np.zeros((1, sk.NUM_KEYPOINTS, 3))
    joints = {"neck": (100, 60), "nose": (100, 45), "right_shoulder": (85, 62), "left_shoulder": (115, 62),
              "right_elbow": (80, 85), "left_elbow": (120, 85), "right_wrist": (78, 105), "left_wrist": (122, 105),
              "right_hip": (92, 110), "left_hip": (108, 110), "right_knee": (90, 140), "left_knee": (110, 140),
              "right_ankle": (90, 170), "left_ankle": (110, 170)}
    for name, (x, y) in joints.items():
        people[0, sk.JOINT[name]] = (x + shift_x, y, 1.0)
    return people


def _walk(frames: int = 3, step: float = 20.0) -> PoseSequence:
    return PoseSequence(tuple(_person(step * t) for t in range(frames)), 200, 200)


def _length(points: np.ndarray, a: str, b: str) -> np.ndarray:
    """Per frame, the length of bone a-b of ``points`` [T, K, 3]."""
    return np.linalg.norm(points[:, sk.JOINT[a], :2] - points[:, sk.JOINT[b], :2], axis=-1)


def test_one_box_per_clip_keeps_the_motion_and_fills_the_panel():
    poses = _walk()
    placed = skeleton_poses(poses, np.random.default_rng(0), tiny_config(bone_scale_probability=0.0)).stacked()
    original = poses.stacked()
    # One similarity for the whole clip: every displacement (bones and the walk) scales by one factor.
    scale = _length(placed, "neck", "right_hip")[0] / _length(original, "neck", "right_hip")[0]
    moved, moved_before = placed[1:, :, :2] - placed[:1, :, :2], original[1:, :, :2] - original[:1, :, :2]
    present = original[0, :, 2] > 0
    assert np.allclose(moved[:, present], scale * moved_before[:, present], atol=1e-9)
    # ... and the clip's box (84 x 125 px) fills the 64 x 64 panel less the 5% margin on its taller side,
    # centred across: a per-frame box would centre every frame's (smaller) box instead.
    ys, xs = placed[:, present, 1], placed[:, present, 0]
    assert ys.min() == pytest.approx(0.05 * 64) and ys.max() == pytest.approx(64 - 0.05 * 64)
    assert (xs.min() + xs.max()) / 2 == pytest.approx(32.0)


def test_bone_scaling_is_one_draw_per_clip_on_the_configured_share_of_clips():
    poses = _walk()
    config = tiny_config(bone_scale_probability=1.0, bone_scale_range=(0.5, 1.5))
    ratio_before = _length(poses.stacked(), "right_elbow", "right_wrist") / _length(poses.stacked(), "neck", "right_hip")
    placed = skeleton_poses(poses, np.random.default_rng(4), config).stacked()
    ratio = _length(placed, "right_elbow", "right_wrist") / _length(placed, "neck", "right_hip")
    assert abs(ratio[0] - ratio_before[0]) > 1e-3  # proportions changed ...
    assert np.allclose(ratio, ratio[0], atol=1e-12)  # ... the same way in every frame of the clip
    share = tiny_config(bone_scale_range=(0.5, 1.5), bone_scale_probability=0.3)
    changed = 0
    for seed in range(600):
        placed = skeleton_poses(poses, np.random.default_rng(seed), share).stacked()
        ratio = _length(placed, "right_elbow", "right_wrist")[0] / _length(placed, "neck", "right_hip")[0]
        changed += abs(ratio - ratio_before[0]) > 1e-9
    assert abs(changed / 600 - 0.3) < 0.06, changed  # binomial sd 0.019: a 3-sd bound


def test_nobody_in_the_clip_gives_no_skeleton():
    empty = PoseSequence(tuple(np.zeros((0, sk.NUM_KEYPOINTS, 3)) for _ in range(3)), 10, 10)
    assert skeleton_poses(empty, np.random.default_rng(0), tiny_config()) is None


def _numbered_video(path: Path, offset: int = 0) -> Path:
    """FRAMES grey frames, frame t filled with 10 t + 5 + offset (lossless: exact after decoding)."""
    frames = np.stack([np.full((SIZE, SIZE, 3), 10 * t + 5 + offset, np.uint8) for t in range(FRAMES)])
    return write_webp(path, frames)


def _window(sample: Sample) -> tuple[int, int]:
    start, end = re.search(r"\[(\d+):(\d+)\]$", sample.source).groups()
    return int(start), int(end)


def _frame_values(frames: torch.Tensor) -> list[int]:
    return [round(float(frame.mean()) * 255) for frame in frames]


# 24-25 fps (webp's 40 ms frames) and 0.25 s: the first 6 driving frames are black.
DATA = dict(min_frames=5, max_frames=9, driving_mask_seconds=0.25, bone_scale_probability=0.0)


def test_pose_sample_takes_target_reference_and_skeletons_from_one_window(tmp_path):
    """The person is seen on even video frames only, so each driving frame shows whose pose it is."""
    seen = tuple(_person(5.0 * t) if t % 2 == 0 else np.zeros((0, sk.NUM_KEYPOINTS, 3)) for t in range(FRAMES))
    video = PoseVideo(_numbered_video(tmp_path / "v.webp"), "a walk", PoseSequence(seen, SIZE, SIZE))
    config = tiny_config(**DATA)
    samples = [pose_sample(video, np.random.default_rng(seed), config, 4) for seed in range(10)]
    assert any(_window(s)[0] % 2 == 1 for s in samples)  # windows that do not start at frame 0
    for sample in samples:
        start, end = _window(sample)
        assert end - start in (5, 9) and len(sample.target) == end - start
        assert _frame_values(sample.target) == [10 * t + 5 for t in range(start, end)]
        assert torch.equal(sample.reference, sample.target[:1])  # the window's own first frame
        assert sample.driving.shape == (end - start, config.height, config.width, 3)
        assert sample.driving[:6].abs().sum() == 0
        assert [bool(frame.amax() > 0) for frame in sample.driving[6:]] == [t % 2 == 0 for t in range(start + 6, end)]
        assert (sample.prompt, sample.fps) == ("a walk", read_clip(video.path).fps)


def test_rgb_sample_takes_driving_and_target_over_the_same_window(tmp_path):
    triplet = Triplet(_numbered_video(tmp_path / "vo.webp", offset=2), _numbered_video(tmp_path / "src.webp"),
                      tmp_path / "ref.png", "a dance", 4.8)
    config = tiny_config(**DATA)
    samples = [rgb_sample(RgbItem(triplet, FRAMES), np.random.default_rng(seed), config, 4) for seed in range(6)]
    assert any(_window(s)[0] > 0 for s in samples)
    for sample in samples:
        start, end = _window(sample)
        assert _frame_values(sample.target) == [10 * t + 5 for t in range(start, end)]
        assert torch.equal(sample.reference, sample.target[:1])
        assert _frame_values(sample.driving) == [0] * min(6, end - start) + [10 * t + 7 for t in range(start + 6, end)]
        assert sample.prompt == "a dance"


def test_encode_example_hands_the_vae_the_inference_canvas_and_the_target_canvas(monkeypatch):
    """With the VAE replaced by 'pixels as they are', the two canvases are checked pixel by pixel:
    condition [reference | driving] on frame 0 and [black | driving] after; target [target | driving]."""
    encoded = []
    monkeypatch.setattr(objective, "encode_video", lambda vae, canvas, tile_size: encoded.append(canvas) or
                        canvas.permute(3, 0, 1, 2).unsqueeze(0))
    frames, panel = 5, 32
    target = torch.stack([torch.full((panel, panel, 3), (t + 1) / 10) for t in range(frames)])
    driving = torch.stack([torch.full((panel, panel, 3), 0.5 + t / 20) for t in range(frames)])
    sample = Sample(target[:1], driving, target, "p", 24.0, "clip")
    vae = SimpleNamespace(adapter=get_adapter("hunyuan_video_15"))  # 16x spatial, 4x temporal
    example = objective.encode_example(sample, vae, tiny_config(width=panel, height=panel))
    condition, clean = encoded
    assert torch.equal(condition[0, :, :panel], target[0]) and condition[1:, :, :panel].abs().sum() == 0
    assert torch.equal(condition[:, :, panel:], driving)
    assert torch.equal(clean[:, :, :panel], target) and torch.equal(clean[:, :, panel:], driving)
    assert torch.equal(example.clean, clean.permute(3, 0, 1, 2).unsqueeze(0))
    # Packed mask, [1, 1, 2 latent frames, 2, 4]: frame 0 given everywhere, then the driving half only.
    expected = torch.tensor([[[1.0] * 4] * 2, [[0.0, 0.0, 1.0, 1.0]] * 2]).reshape(1, 1, 2, 2, 4)
    assert torch.equal(example.mask, expected)
    assert example.prompt == "p" and torch.equal(example.reference, target[:1])
