"""The OpenPose-style renderer: deterministic, draws only where joints exist, standard colours,
widths that follow the resolution, black frames where nobody is."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dreamactor_core.errors import DreamActorError
from dreamactor_core.pose import skeleton as sk
from dreamactor_core.pose.render import UINT8_PALETTE, RenderStyle, draw_poses, render_poses
from dreamactor_core.pose.types import PoseSequence, empty_people
from pose_samples import pose_sequences, standing_person


def _within_reach(images: np.ndarray, poses: PoseSequence, reach: float) -> bool:
    """Whether every lit pixel lies within ``reach`` of the box of its frame's present joints."""
    for image, frame in zip(images, poses.frames):
        lit = np.argwhere(image.any(axis=2))
        if not len(lit):
            continue
        present = frame[frame[..., 2] > 0][:, :2]
        if not len(present):
            return False
        low, high = present.min(axis=0) - reach, present.max(axis=0) + reach
        if not ((lit[:, ::-1] >= low).all() and (lit[:, ::-1] <= high).all()):
            return False
    return True


@settings(max_examples=40, deadline=None)
@given(poses=pose_sequences(max_frames=3), hands=st.booleans(), face=st.booleans(), feet=st.booleans())
def test_rendering_is_deterministic_and_draws_only_where_joints_exist(poses, hands, face, feet):
    first = draw_poses(poses, hands=hands, face=face, feet=feet)
    np.testing.assert_array_equal(first, draw_poses(poses, hands=hands, face=face, feet=feet))
    assert first.shape == (len(poses), poses.height, poses.width, 3) and first.dtype == np.uint8
    style = RenderStyle.for_size(poses.width, poses.height)
    assert _within_reach(first, poses, reach=max(style.stick_width, style.joint_radius, style.hand_radius) + 1)
    for image, frame in zip(first, poses.frames):
        if not (frame[..., 2] > 0).any():
            assert not image.any()


def test_one_joint_is_one_dot_of_its_standard_colour():
    person = empty_people(1)
    person[0, sk.JOINT["left_knee"]] = (40, 30, 1.0)
    image = draw_poses(PoseSequence((person,), 80, 60))[0]
    lit = np.argwhere(image.any(axis=2))
    assert np.abs(lit - [30, 40]).max() <= 1  # radius 1 at this size
    assert tuple(image[30, 40]) == tuple(sk.BODY_COLORS[sk.JOINT["left_knee"]])


def test_a_limb_is_drawn_in_its_dimmed_standard_colour_between_its_joints():
    person = empty_people(1)
    person[0, sk.JOINT["neck"]] = (100, 50, 1.0)
    person[0, sk.JOINT["right_shoulder"]] = (100, 150, 1.0)
    image = draw_poses(PoseSequence((person,), 200, 200), hands=False, face=False)[0]
    assert tuple(image[100, 100]) == UINT8_PALETTE.limbs[sk.BODY_LIMBS.index((1, 2))] == (153, 0, 0)
    assert not image[100, 130].any() and not image[30, 100].any()


def test_low_confidence_points_are_left_out_on_request():
    person = standing_person(20, 20, 200)
    person[:, 2] = 0.2
    poses = PoseSequence((person[None],), 256, 256)
    assert draw_poses(poses).any()
    assert not draw_poses(poses, min_confidence=0.3).any()


def test_hands_and_face_are_options():
    poses = PoseSequence((standing_person(20, 20, 200)[None],), 256, 256)
    full = draw_poses(poses)
    body = draw_poses(poses, hands=False, face=False)
    assert (full.any(axis=3).sum()) > (body.any(axis=3).sum())
    assert (full == [255, 255, 255]).all(axis=3).any() and not (body == [255, 255, 255]).all(axis=3).any()


def test_line_widths_scale_with_resolution():
    small, large = RenderStyle.for_size(512, 512), RenderStyle.for_size(2048, 1536)
    assert (small.stick_width, small.joint_radius, small.hand_line, small.face_radius) == (4, 4, 2, 3)
    assert (large.stick_width, large.joint_radius, large.hand_line, large.face_radius) == (12, 12, 6, 9)
    assert RenderStyle.for_size(16, 16).stick_width == 1
    person = standing_person(0.1, 0.1, 0.8)
    lit = [draw_poses(PoseSequence(((person * [size, size, 1])[None],), size, size)).any(axis=3).mean()
           for size in (256, 1024)]
    assert lit[0] == pytest.approx(lit[1], rel=0.35)  # the same drawing, not thinner lines


def test_other_sizes_scale_the_canvas_and_empty_frames_are_black():
    poses = PoseSequence((standing_person(10, 10, 100)[None], empty_people(0)), 128, 128)
    images = draw_poses(poses, 256, 64)
    assert images.shape == (2, 64, 256, 3)
    assert images[0].any() and not images[1].any()


def test_progress_is_reported_per_frame():
    seen = []
    draw_poses(PoseSequence((empty_people(0),) * 3, 8, 8), progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize("size", [(0, 10), (10, -1)])
def test_bad_render_size_is_a_clear_error(size):
    with pytest.raises(DreamActorError, match="render size must be positive"):
        draw_poses(PoseSequence((empty_people(0),), 8, 8), *size)


def test_no_frames_is_a_clear_error():
    with pytest.raises(DreamActorError, match="no frames"):
        draw_poses(PoseSequence((), 8, 8))


@settings(max_examples=20, deadline=None)
@given(poses=pose_sequences(max_frames=2), feet=st.booleans())
def test_float_images_are_the_uint8_drawing_divided_by_255(poses, feet):
    images = render_poses(poses, feet=feet)
    assert images.dtype == torch.float32
    assert torch.equal(images, torch.from_numpy(draw_poses(poses, feet=feet)).float() / 255)


def test_render_poses_is_the_drawing_in_comfy_image_layout():
    poses = PoseSequence((standing_person(10, 10, 100)[None],), 128, 96)
    image = render_poses(poses)
    assert image.shape == (1, 96, 128, 3) and image.dtype == torch.float32
    assert torch.equal(image, torch.from_numpy(draw_poses(poses)).float() / 255)
