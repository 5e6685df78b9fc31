"""Bone-length scaling and clip-level box normalization: ratios in range, a connected skeleton,
missing points left missing, every joint inside the panel, motion kept, retargeting onto a reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pose_samples import pose_sequences, standing_person, with_someone

from dreamactor_core.errors import DreamActorError
from dreamactor_core.pose import skeleton as sk
from dreamactor_core.pose.augment import (
    augment_clip,
    clip_box,
    draw_bone_factors,
    fit_to_reference,
    normalize_to_panel,
    scale_bones,
)
from dreamactor_core.pose.types import PoseSequence, empty_people

ranges = st.tuples(st.floats(0.3, 1.0), st.floats(1.0, 2.0))


@settings(max_examples=60, deadline=None)
@given(poses=pose_sequences(), factor_range=ranges, seed=st.integers(0, 2**32 - 1), symmetric=st.booleans())
def test_every_bone_keeps_its_direction_and_its_length_ratio_is_its_groups_factor_in_range(
        poses, factor_range, seed, symmetric):
    low, high = factor_range
    factors = draw_bone_factors(seed, low, high, symmetric)
    assert all(low <= value <= high for value in factors.values())
    before, after = poses.stacked(), scale_bones(poses, factors).stacked()
    for parent, child, group in sk.KINEMATIC_TREE:
        both = (before[:, parent, 2] > 0) & (before[:, child, 2] > 0)
        old = before[both, child, :2] - before[both, parent, :2]
        new = after[both, child, :2] - after[both, parent, :2]
        expected = 1.0 if group == sk.RIGID_GROUP else factors[group]
        # new bone == factor * old bone: length ratio is the factor and the child stays attached
        np.testing.assert_allclose(new, expected * old, atol=1e-6 * (1 + np.abs(old).max(initial=0)))


@settings(max_examples=40, deadline=None)
@given(poses=pose_sequences(), seed=st.integers(0, 1000))
def test_scaling_invents_nothing_and_loses_nothing(poses, seed):
    after = scale_bones(poses, draw_bone_factors(seed))
    assert [frame.shape for frame in after.frames] == [frame.shape for frame in poses.frames]
    before, moved = poses.stacked(), after.stacked()
    np.testing.assert_array_equal(moved[..., 2], before[..., 2])  # confidences unchanged
    np.testing.assert_array_equal(moved[before[..., 2] <= 0], 0.0)  # missing stays missing
    assert np.isfinite(moved).all()


def test_same_seed_same_factors_for_every_frame_and_different_seeds_differ():
    assert draw_bone_factors(7) == draw_bone_factors(7)
    assert draw_bone_factors(7) != draw_bone_factors(8)
    person = standing_person(100, 50, 300)
    frames = tuple((person + [dx, 0, 0])[None] for dx in (0.0, 10.0, 20.0))
    scaled = scale_bones(PoseSequence(frames, 512, 512), draw_bone_factors(3))
    # every frame's skeleton is the first one shifted: the same body for the whole clip
    for t, dx in enumerate((0.0, 10.0, 20.0)):
        np.testing.assert_allclose(scaled.frames[t][0, :, :2], scaled.frames[0][0, :, :2] + [dx, 0])


def test_symmetric_factors_share_left_and_right_and_asymmetric_do_not():
    symmetric, free = draw_bone_factors(11, symmetric=True), draw_bone_factors(11, symmetric=False)
    for name in sk.SIDED_GROUPS:
        assert symmetric[f"left_{name}"] == symmetric[f"right_{name}"]
    assert any(free[f"left_{name}"] != free[f"right_{name}"] for name in sk.SIDED_GROUPS)


def test_hands_and_face_follow_their_wrist_and_head():
    person = standing_person(100, 50, 300)
    factors = {group: 1.0 for group in sk.BONE_GROUPS} | {"left_forearm": 1.2, "head": 0.8}
    after = scale_bones(PoseSequence((person[None],), 512, 512), factors).frames[0][0]
    wrist_shift = after[sk.JOINT["left_wrist"], :2] - person[sk.JOINT["left_wrist"], :2]
    assert np.linalg.norm(wrist_shift) > 1
    np.testing.assert_allclose(after[sk.LEFT_HAND, :2], person[sk.LEFT_HAND, :2] + wrist_shift)
    np.testing.assert_allclose(after[sk.RIGHT_HAND, :2], person[sk.RIGHT_HAND, :2])
    nose = person[sk.JOINT["nose"], :2]
    new_nose = after[sk.JOINT["nose"], :2]
    np.testing.assert_allclose(after[sk.FACE, :2] - new_nose, 0.8 * (person[sk.FACE, :2] - nose))


def test_a_child_of_a_missing_joint_moves_with_the_nearest_present_ancestor():
    person = standing_person(100, 50, 300)
    person[sk.JOINT["left_elbow"]] = 0.0
    factors = {group: 1.0 for group in sk.BONE_GROUPS} | {"left_shoulder": 1.2}
    after = scale_bones(PoseSequence((person[None],), 512, 512), factors).frames[0][0]
    shoulder_shift = after[sk.JOINT["left_shoulder"], :2] - person[sk.JOINT["left_shoulder"], :2]
    np.testing.assert_allclose(after[sk.JOINT["left_wrist"], :2], person[sk.JOINT["left_wrist"], :2] + shoulder_shift)
    np.testing.assert_array_equal(after[sk.JOINT["left_elbow"]], 0.0)


@settings(max_examples=60, deadline=None)
@given(poses=pose_sequences(spread=3.0), width=st.integers(1, 1500), height=st.integers(1, 1500),
       margin=st.floats(0.0, 0.45))
def test_after_normalization_every_present_joint_lies_in_the_panel_inside_the_margin(poses, width, height, margin):
    assume(with_someone(poses))
    result = normalize_to_panel(poses, width, height, margin)
    assert (result.width, result.height) == (width, height)
    people = result.stacked()
    points = people[people[..., 2] > 0][:, :2]
    gap = margin * min(width, height)
    tolerance = 1e-9 * max(width, height)
    assert (points >= gap - tolerance).all()
    assert (points[:, 0] <= width - gap + tolerance).all() and (points[:, 1] <= height - gap + tolerance).all()


@settings(max_examples=40, deadline=None)
@given(poses=pose_sequences(spread=3.0), size=st.integers(16, 1024))
def test_normalization_is_one_similarity_for_the_clip_so_motion_is_kept(poses, size):
    assume(with_someone(poses))
    before, after = poses.stacked(), normalize_to_panel(poses, size, size).stacked()
    present = before[..., 2] > 0
    old, new = before[present][:, :2], after[present][:, :2]
    scale = np.ptp(new, axis=0).max() / max(np.ptp(old, axis=0).max(), 1e-12)
    if np.ptp(old, axis=0).max() > 0:
        offsets = new - old * scale
        np.testing.assert_allclose(offsets, offsets[:1].repeat(len(offsets), 0), atol=1e-6 * size)


def test_normalized_clip_is_centred_and_fills_the_limiting_side():
    person = standing_person(300, 200, 300)  # a tall thin person off-centre in a wide frame
    frames = (person[None], (person + [20, 0, 0])[None])  # walks right by 20 px
    result = normalize_to_panel(PoseSequence(frames, 1920, 1080), 512, 512, margin=0.0)
    x0, y0, x1, y1 = clip_box(result)
    assert y0 == pytest.approx(0) and y1 == pytest.approx(512)  # height limits
    assert (x0 + x1) / 2 == pytest.approx(256)
    assert x1 - x0 < 512
    shift = result.frames[1][0, :, 0] - result.frames[0][0, :, 0]
    np.testing.assert_allclose(shift, shift[0])  # one box for the clip: the walk survives
    assert shift[0] > 0


def test_fit_to_reference_puts_the_clip_onto_the_reference_box():
    driving = PoseSequence((standing_person(10, 10, 400)[None],), 640, 480)
    reference = PoseSequence((standing_person(200, 100, 50)[None],), 1024, 1024)
    result = fit_to_reference(driving, reference, 512, 512)
    x0, y0, x1, y1 = clip_box(result)
    rx0, ry0, rx1, ry1 = (value / 2 for value in clip_box(reference))  # reference canvas is twice the panel
    assert (x0 + x1) / 2 == pytest.approx((rx0 + rx1) / 2)
    assert (y0 + y1) / 2 == pytest.approx((ry0 + ry1) / 2)
    assert y1 - y0 == pytest.approx(ry1 - ry0)  # same standing person: heights match exactly


def test_augment_clip_scales_then_normalizes_and_rejects_a_clip_without_people():
    poses = PoseSequence((standing_person(10, 10, 400)[None], empty_people(0)), 640, 480)
    result = augment_clip(poses, draw_bone_factors(1), (256, 256), margin=0.1)
    assert [len(frame) for frame in result.frames] == [1, 0]
    assert clip_box(result)[3] == pytest.approx(256 - 25.6)
    with pytest.raises(DreamActorError, match="no person in any frame"):
        augment_clip(PoseSequence((empty_people(0),), 64, 64), draw_bone_factors(1), (64, 64))
    with pytest.raises(DreamActorError, match="reference pose: no person"):
        augment_clip(poses, None, (64, 64), reference=PoseSequence((empty_people(0),), 64, 64))


def test_a_clip_without_people_passes_bone_scaling_when_nothing_is_fitted():
    """Pose Augment with normalize_box off: a clip in which nobody was found is not an error."""
    nobody = PoseSequence((empty_people(0), empty_people(0)), 64, 48)
    result = augment_clip(nobody, draw_bone_factors(1), None)
    assert [len(frame) for frame in result.frames] == [0, 0] and (result.width, result.height) == (64, 48)
    assert augment_clip(nobody, None, None) is nobody


@pytest.mark.parametrize(("call", "message"), [
    (lambda p: draw_bone_factors(0, 1.2, 0.8), "0 < min <= max"),
    (lambda p: draw_bone_factors(0, 0.0, 0.8), "0 < min <= max"),
    (lambda p: scale_bones(p, {"head": 1.0}), "lack the groups"),
    (lambda p: normalize_to_panel(p, 0, 64), "panel size must be positive"),
    (lambda p: normalize_to_panel(p, 64, 64, margin=0.5), "margin must be in"),
])
def test_bad_augmentation_options_are_clear_errors(call, message):
    with pytest.raises(DreamActorError, match=message):
        call(PoseSequence((standing_person(0, 0, 50)[None],), 64, 64))
