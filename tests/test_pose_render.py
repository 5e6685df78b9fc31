"""The OpenPose-style renderer: deterministic, draws only where joints exist, standard colours,
widths that follow the resolution, black frames where nobody is."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pose_samples import pose_sequences, standing_person

from dreamactor_core.errors import DreamActorError
from dreamactor_core.pose import skeleton as sk
from dreamactor_core.pose.render import UINT8_PALETTE, RenderStyle, draw_poses, render_poses
from dreamactor_core.pose.types import PoseSequence, empty_people


def _drawn_elements(person: np.ndarray, hands: bool, face: bool, feet: bool) -> tuple[np.ndarray, np.ndarray]:
    """The segments ``[S, 2, 2]`` and dots ``[D, 2]`` the renderer may draw for one person: limbs and
    edges whose two ends are present, and present joints."""
    present = person[:, 2] > 0
    pairs = list(sk.BODY_LIMBS) + (list(sk.FOOT_LIMBS) if feet else [])
    dots = list(range(sk.BODY_POINTS))
    if hands:
        for hand in (sk.LEFT_HAND, sk.RIGHT_HAND):
            pairs += [(hand.start + a, hand.start + b) for a, b in sk.HAND_EDGES]
            dots += list(range(hand.start, hand.stop))
    if face:
        dots += list(range(sk.FACE.start, sk.FACE.stop))
    segments = np.array([person[[a, b], :2] for a, b in pairs if present[a] and present[b]]).reshape(-1, 2, 2)
    return segments, person[[d for d in dots if present[d]], :2].reshape(-1, 2)


def _distance_to_drawn(pixels: np.ndarray, segments: np.ndarray, dots: np.ndarray) -> np.ndarray:
    """Distance from each pixel ``[N, 2]`` (x, y) to the nearest segment or dot. OpenPose draws a limb
    as an ellipse at a whole-degree angle, so a segment's far ends may sway by half its length
    times the sine of a degree: that is taken off the distance."""
    distances = [np.full(len(pixels), np.inf)]
    if len(dots):
        distances.append(np.linalg.norm(pixels[:, None] - dots[None], axis=2).min(axis=1))
    if len(segments):
        start, direction = segments[:, 0], segments[:, 1] - segments[:, 0]
        length2 = np.maximum((direction ** 2).sum(axis=1), 1e-12)
        t = np.clip(((pixels[:, None] - start[None]) * direction[None]).sum(axis=2) / length2, 0, 1)
        nearest = start[None] + t[..., None] * direction[None]
        sway = np.sqrt(length2) / 2 * np.sin(np.radians(1.0))
        distances.append((np.linalg.norm(pixels[:, None] - nearest, axis=2) - sway[None]).min(axis=1))
    return np.minimum.reduce(distances)


@settings(max_examples=40, deadline=None)
@given(poses=pose_sequences(max_frames=3, max_people=2, max_side=400), hands=st.booleans(), face=st.booleans(),
       feet=st.booleans())
def test_rendering_is_deterministic_and_draws_only_where_joints_exist(poses, hands, face, feet):
    first = draw_poses(poses, hands=hands, face=face, feet=feet)
    np.testing.assert_array_equal(first, draw_poses(poses, hands=hands, face=face, feet=feet))
    assert first.shape == (len(poses), poses.height, poses.width, 3) and first.dtype == np.uint8
    style = RenderStyle.for_size(poses.width, poses.height)
    reach = max(style.stick_width, style.joint_radius, style.hand_radius, style.face_radius) + 2
    for image, frame in zip(first, poses.frames):
        lit = np.argwhere(image.any(axis=2))[:, ::-1].astype(float)  # x, y of every drawn pixel
        distance = np.full(len(lit), np.inf)
        for person in frame:
            distance = np.minimum(distance, _distance_to_drawn(lit, *_drawn_elements(person, hands, face, feet)))
        assert (distance <= reach).all()  # every drawn pixel belongs to a present joint or limb


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
