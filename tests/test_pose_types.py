"""The pose sequence and its POSE_KEYPOINT / JSON exchange: lossless round trips in both coordinate
systems and both layouts, and clear errors for malformed input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pose_samples import pose_sequences, random_people, standing_person

from dreamactor_core.errors import DreamActorError
from dreamactor_core.pose import skeleton as sk
from dreamactor_core.pose.types import (
    PoseSequence,
    empty_people,
    from_coco_wholebody,
    from_pose_keypoint,
    load_json,
    save_json,
    to_coco_wholebody,
    to_pose_keypoint,
)


def assert_same(a: PoseSequence, b: PoseSequence, tolerance: float = 0.0) -> None:
    assert (a.width, a.height, len(a)) == (b.width, b.height, len(b))
    for frame_a, frame_b in zip(a.frames, b.frames):
        assert frame_a.shape == frame_b.shape
        np.testing.assert_allclose(frame_a, frame_b, rtol=0, atol=tolerance)


@settings(max_examples=60, deadline=None)
@given(poses=pose_sequences(spread=1.5))
def test_pose_keypoint_round_trip_in_pixels_is_exact(poses):
    assert_same(from_pose_keypoint(to_pose_keypoint(poses, normalized=False)), poses)


@settings(max_examples=60, deadline=None)
@given(poses=pose_sequences(spread=1.5))
def test_pose_keypoint_round_trip_normalized_is_exact_to_float_precision(poses):
    written = to_pose_keypoint(poses, normalized=True)
    assert_same(from_pose_keypoint(written), poses, tolerance=1e-9 * max(poses.width, poses.height))


@settings(max_examples=40, deadline=None)
@given(poses=pose_sequences())
def test_json_file_round_trip(poses, tmp_path_factory):
    path = save_json(to_pose_keypoint(poses, normalized=False), tmp_path_factory.mktemp("json") / "poses.json")
    assert_same(from_pose_keypoint(load_json(path)), poses)


def test_openpose_body18_pose_keypoint_comes_back_unchanged():
    """A comfyui_controlnet_aux-style frame (normalized, confidence 1, 68 face points) survives a round trip."""
    rng = np.random.default_rng(3)
    body = rng.uniform(0, 1, (18, 3)).round(4)
    body[:, 2] = 1.0
    body[7] = 0.0  # a missing wrist
    hand = np.c_[rng.uniform(0, 1, (21, 2)).round(4), np.ones(21)]
    face = np.c_[rng.uniform(0, 1, (68, 2)).round(4), np.ones(68)]
    frame = {"people": [{"pose_keypoints_2d": body.ravel().tolist(), "face_keypoints_2d": face.ravel().tolist(),
                         "hand_left_keypoints_2d": hand.ravel().tolist(), "hand_right_keypoints_2d": hand.ravel().tolist()}],
             "canvas_width": 640, "canvas_height": 480}
    again = to_pose_keypoint(from_pose_keypoint([frame]))[0]
    for key in ("pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d"):
        np.testing.assert_allclose(again["people"][0][key], frame["people"][0][key], atol=1e-12)
    assert "foot_keypoints_2d" not in again["people"][0]  # no feet were given, none are written
    assert (again["canvas_width"], again["canvas_height"]) == (640, 480)


def test_absent_parts_may_be_none_or_empty_as_comfyui_controlnet_aux_writes_them():
    person = {"pose_keypoints_2d": [0.5, 0.5, 1.0] * 18, "face_keypoints_2d": None,
              "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": None}
    poses = from_pose_keypoint({"people": [person], "canvas_width": 10, "canvas_height": 10})
    assert (poses.frames[0][0, sk.BODY, 2] == 1).all() and (poses.frames[0][0, sk.BODY.stop:] == 0).all()


def test_normalized_input_is_scaled_to_pixels_and_pixel_input_is_kept():
    person = {"pose_keypoints_2d": [0.5, 0.25, 1.0] + [0.0] * 51}
    poses = from_pose_keypoint({"people": [person], "canvas_width": 200, "canvas_height": 100})
    np.testing.assert_allclose(poses.frames[0][0, 0], [100.0, 25.0, 1.0])
    person = {"pose_keypoints_2d": [50.0, 25.0, 0.9] + [0.0] * 51}
    poses = from_pose_keypoint({"people": [person], "canvas_width": 200, "canvas_height": 100})
    np.testing.assert_allclose(poses.frames[0][0, 0], [50.0, 25.0, 0.9])


def test_controlnet_aux_normalized_frame_with_a_point_just_off_the_canvas_stays_normalized():
    """comfyui_controlnet_aux writes no 'coordinates' key; a detected hand at x = 1.03 is still normalized."""
    body = [0.5, 0.25, 1.0] + [0.0] * 48 + [1.03, 0.9, 0.8]  # nose, and one point off the right edge
    poses = from_pose_keypoint({"people": [{"pose_keypoints_2d": body}], "canvas_width": 512, "canvas_height": 256})
    np.testing.assert_allclose(poses.frames[0][0, 0], [256.0, 64.0, 1.0])
    np.testing.assert_allclose(poses.frames[0][0, 17], [1.03 * 512, 0.9 * 256, 0.8])
    below = [0.5, 0.25, 1.0] + [0.0] * 48 + [-0.2, 1.4, 0.8]  # within the documented margin
    assert from_pose_keypoint({"people": [{"pose_keypoints_2d": below}], "canvas_width": 100,
                               "canvas_height": 100}).frames[0][0, 17, 1] == pytest.approx(140.0)
    beyond = [0.5, 0.25, 1.0] + [0.0] * 48 + [1.6, 0.9, 0.8]  # beyond it: pixels
    assert from_pose_keypoint({"people": [{"pose_keypoints_2d": beyond}], "canvas_width": 100,
                               "canvas_height": 100}).frames[0][0, 0, 0] == pytest.approx(0.5)


def test_coco_wholebody_133_round_trip_and_synthesized_neck():
    coco = np.c_[np.random.default_rng(1).uniform(10, 90, (133, 2)), np.full(133, 0.8)]
    frame = {"people": [{"pose_keypoints_2d": coco.ravel().tolist()}], "canvas_width": 100, "canvas_height": 100}
    poses = from_pose_keypoint([frame], coordinates="pixels")
    person = poses.frames[0][0]
    np.testing.assert_allclose(person[sk.JOINT["neck"], :2], (coco[5, :2] + coco[6, :2]) / 2)
    np.testing.assert_allclose(person[sk.JOINT["left_wrist"]], coco[9])
    np.testing.assert_allclose(person[sk.LEFT_HAND], coco[91:112])
    written = to_pose_keypoint(poses, normalized=False, layout="coco_wholebody")
    np.testing.assert_allclose(written[0]["people"][0]["pose_keypoints_2d"], coco.ravel())


def test_coco_wholebody_array_conversion_is_inverse_outside_neck_and_pupils():
    people = random_people(5, 3, 100, 100, presence=1.0)
    people[:, [sk.JOINT["neck"], sk.RIGHT_PUPIL, sk.LEFT_PUPIL]] = 0.0
    back = from_coco_wholebody(to_coco_wholebody(people))
    back[:, sk.JOINT["neck"]] = 0.0
    np.testing.assert_array_equal(back, people)


def test_frames_without_people_are_kept():
    pose_keypoint = [{"people": [], "canvas_width": 64, "canvas_height": 64},
                     {"people": [{"pose_keypoints_2d": [10, 10, 1] + [0] * 51}], "canvas_width": 64, "canvas_height": 64},
                     {"people": [], "canvas_width": 64, "canvas_height": 64}]
    poses = from_pose_keypoint(pose_keypoint)
    assert [len(frame) for frame in poses.frames] == [0, 1, 0]
    assert [len(frame["people"]) for frame in to_pose_keypoint(poses)] == [0, 1, 0]


def test_face_with_pupils_is_written_with_70_points_and_feet_in_their_own_list():
    person = standing_person(10, 10, 80)
    written = to_pose_keypoint(PoseSequence((person[None],), 100, 100))[0]["people"][0]
    assert len(written["face_keypoints_2d"]) == 70 * 3
    assert len(written["foot_keypoints_2d"]) == 6 * 3


def _frame(**person) -> dict:
    return {"people": [person], "canvas_width": 64, "canvas_height": 48}


@pytest.mark.parametrize(("pose_keypoint", "message"), [
    ([], "non-empty list of frames"),
    ("poses", "non-empty list of frames"),
    ([_frame(pose_keypoints_2d=[1.0] * 51)], "17 keypoints, expected 18 or 133"),
    ([_frame(pose_keypoints_2d=[1.0] * 53)], "not a whole number of x, y, confidence triplets"),
    ([_frame(pose_keypoints_2d=[float("nan")] * 54)], "NaN"),
    ([_frame(pose_keypoints_2d=[1.0] * 54, hand_left_keypoints_2d=[1.0] * 60)], "hand_left_keypoints_2d: 20 keypoints"),
    ([_frame(pose_keypoints_2d=["a"] * 54)], "flat list of numbers"),
    ([{"people": [], "canvas_width": 0, "canvas_height": 48}], "canvas size 0x48"),
    ([{"people": []}], "canvas_width"),
    ([{"people": [], "canvas_width": 64, "canvas_height": 48}, {"people": [], "canvas_width": 32, "canvas_height": 48}],
     "one clip has one canvas"),
    ([{"people": "nobody", "canvas_width": 64, "canvas_height": 48}], "'people' list"),
])
def test_malformed_pose_keypoint_is_a_clear_error(pose_keypoint, message):
    with pytest.raises(DreamActorError, match=message):
        from_pose_keypoint(pose_keypoint)


def test_missing_points_are_stored_as_zeros_whatever_their_coordinates():
    poses = from_pose_keypoint(_frame(pose_keypoints_2d=[30.0, 20.0, 0.0] + [5.0, 6.0, 1.0] * 17))
    np.testing.assert_array_equal(poses.frames[0][0, 0], [0.0, 0.0, 0.0])


def test_sequence_rejects_wrong_shapes_and_empty_canvas():
    with pytest.raises(DreamActorError, match="canvas size must be positive"):
        PoseSequence((empty_people(0),), 0, 10)
    with pytest.raises(DreamActorError, match="expected \\[people, 136, 3\\]"):
        PoseSequence((np.zeros((1, 18, 3)),), 10, 10)


def test_load_json_errors_name_the_file(tmp_path):
    with pytest.raises(DreamActorError, match="does not exist"):
        load_json(tmp_path / "none.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(DreamActorError, match="broken.json' is not valid JSON"):
        load_json(broken)
    single = tmp_path / "single.json"
    single.write_text(json.dumps(_frame(pose_keypoints_2d=[1.0] * 54)))
    assert len(load_json(single)) == 1


@given(st.sampled_from(["auto", "normalized", "pixels"]))
def test_coordinates_option_is_checked(coordinates):
    from_pose_keypoint(_frame(pose_keypoints_2d=[0.5] * 54), coordinates=coordinates)
    with pytest.raises(DreamActorError, match="coordinates must be"):
        from_pose_keypoint(_frame(pose_keypoints_2d=[0.5] * 54), coordinates="percent")
