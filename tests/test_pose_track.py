"""Tracking people across frames on synthetic multi-person clips with known identities: crossings,
swaps of the estimator's output order, dropouts and people appearing mid-clip."""

from __future__ import annotations

import numpy as np
import pytest

from dreamactor_core.errors import DreamActorError
from dreamactor_core.pose import skeleton as sk
from dreamactor_core.pose.track import box_iou, keypoint_distance, track_people
from dreamactor_core.pose.types import PoseSequence, empty_people

# A standing figure 100 px tall, in body coordinates relative to its neck.
_STANDING = {
    "nose": (0, -15), "neck": (0, 0), "right_shoulder": (-12, 0), "right_elbow": (-16, 18), "right_wrist": (-18, 34),
    "left_shoulder": (12, 0), "left_elbow": (16, 18), "left_wrist": (18, 34), "right_hip": (-8, 40),
    "right_knee": (-9, 62), "right_ankle": (-10, 85), "left_hip": (8, 40), "left_knee": (9, 62), "left_ankle": (10, 85),
}
_ARMS_UP = {**_STANDING, "right_elbow": (-16, -18), "right_wrist": (-18, -34), "left_elbow": (16, -18),
            "left_wrist": (18, -34)}


def _person(x: float, y: float, pose: dict) -> np.ndarray:
    person = empty_people(1)[0]
    for joint, (dx, dy) in pose.items():
        person[sk.JOINT[joint]] = (x + dx, y + dy, 1.0)
    return person


def _clip(tracks: list[list[np.ndarray | None]], shuffle_seed: int | None = 0) -> tuple[PoseSequence, list[list[int]]]:
    """Frames from per-identity person lists (None = absent), rows shuffled per frame as an estimator
    might return them; also the true identity of each input row."""
    rng = np.random.default_rng(shuffle_seed)
    frames, truth = [], []
    for t in range(len(tracks[0])):
        ids = [i for i, track in enumerate(tracks) if track[t] is not None]
        if shuffle_seed is not None:
            ids = list(rng.permutation(ids))
        frames.append(np.stack([tracks[i][t] for i in ids]) if ids else empty_people(0))
        truth.append([int(i) for i in ids])
    return PoseSequence(tuple(frames), 640, 360), truth


def _ids_of(tracked: PoseSequence, clip: PoseSequence, truth: list[list[int]]) -> dict[int, set[int]]:
    """For each true identity, the set of tracked ids it was given over the clip (one each if right)."""
    given: dict[int, set[int]] = {}
    for frame, tracked_frame, true_ids in zip(clip.frames, tracked.frames, truth):
        for row, true_id in enumerate(true_ids):
            matches = [i for i in range(len(tracked_frame)) if np.array_equal(tracked_frame[i], frame[row])]
            assert len(matches) == 1, "every input person appears exactly once in the tracked frame"
            given.setdefault(true_id, set()).add(matches[0])
    return given


@pytest.mark.parametrize("pose_a", [_ARMS_UP, _STANDING], ids=["different_poses", "same_pose"])
def test_two_people_crossing_keep_their_ids_whatever_order_the_estimator_returns(pose_a):
    frames = 24
    walker_a = [_person(100 + 18 * t, 120, pose_a) for t in range(frames)]  # left to right
    walker_b = [_person(514 - 18 * t, 124, _STANDING) for t in range(frames)]  # right to left, arms down
    clip, truth = _clip([walker_a, walker_b])
    tracked = track_people(clip)
    given = _ids_of(tracked, clip, truth)
    assert all(len(ids) == 1 for ids in given.values()), given
    assert given[0] != given[1]
    assert all(len(frame) == 2 for frame in tracked.frames)


def test_a_person_missing_for_a_few_frames_keeps_the_id_and_the_gap_is_an_empty_row():
    frames = 16
    still = [_person(200, 100, _STANDING) for _ in range(frames)]
    walker = [None if 5 <= t < 9 else _person(400 + 3 * t, 110, _ARMS_UP) for t in range(frames)]
    clip, truth = _clip([still, walker])
    tracked = track_people(clip, max_gap=4)
    given = _ids_of(tracked, clip, truth)
    assert all(len(ids) == 1 for ids in given.values()), given
    walker_id = next(iter(given[1]))
    assert all(not tracked.frames[t][walker_id, :, 2].any() for t in range(5, 9))
    # A gap longer than max_gap starts a new id for the returning person.
    shorter = track_people(clip, max_gap=2)
    assert len(_ids_of(shorter, clip, truth)[1]) == 2


def test_people_appearing_mid_clip_get_new_ids_and_earlier_frames_have_empty_rows_for_them():
    frames = 10
    first = [_person(150, 100, _STANDING) for _ in range(frames)]
    late = [None] * 4 + [_person(450, 100, _ARMS_UP) for _ in range(frames - 4)]
    clip, truth = _clip([first, late])
    tracked = track_people(clip)
    assert [len(frame) for frame in tracked.frames] == [2] * frames
    given = _ids_of(tracked, clip, truth)
    late_id = next(iter(given[1]))
    assert not tracked.frames[0][late_id, :, 2].any()


def test_frames_without_anyone_and_empty_clips_pass_through():
    nobody = PoseSequence((empty_people(0),) * 3, 64, 64)
    assert [len(frame) for frame in track_people(nobody).frames] == [0, 0, 0]
    assert len(track_people(PoseSequence((), 64, 64))) == 0
    with pytest.raises(DreamActorError, match="max_gap"):
        track_people(nobody, max_gap=-1)


def test_match_measures():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    a = _person(100, 100, _STANDING)
    assert keypoint_distance(a, a) == 0.0
    moved = _person(110, 100, _STANDING)  # 10 px shift, figure diagonal ~ sqrt(36^2 + 100^2)
    assert keypoint_distance(a, moved) == pytest.approx(10 / np.hypot(36, 100))
    assert keypoint_distance(a, empty_people(1)[0]) == float("inf")


def test_someone_far_away_is_a_new_person_not_the_one_who_just_left():
    leaving = [_person(100, 100, _STANDING) if t < 5 else None for t in range(10)]
    arriving = [None] * 5 + [_person(550, 100, _STANDING) for _ in range(5)]
    clip, truth = _clip([leaving, arriving])
    given = _ids_of(track_people(clip, max_gap=8), clip, truth)
    assert given[0] != given[1]
