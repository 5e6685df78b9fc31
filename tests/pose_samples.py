"""Pose sequences for the pose tests: random people (hypothesis builds them from seeds and sizes) and
a plausible standing person, in the pack's keypoint layout."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from dreamactor_core.pose import skeleton as sk
from dreamactor_core.pose.types import PoseSequence

# A standing person in a unit box (x right, y down): BODY_18 joints.
STANDING_BODY = np.array([
    [0.50, 0.10], [0.50, 0.20], [0.38, 0.21], [0.33, 0.36], [0.30, 0.50], [0.62, 0.21], [0.67, 0.36],
    [0.70, 0.50], [0.43, 0.52], [0.42, 0.72], [0.42, 0.92], [0.57, 0.52], [0.58, 0.72], [0.58, 0.92],
    [0.47, 0.08], [0.53, 0.08], [0.44, 0.09], [0.56, 0.09],
])


def standing_person(x0: float, y0: float, size: float) -> np.ndarray:
    """A full-body ``[K, 3]`` person whose box starts at (x0, y0), ``size`` pixels tall; hands and face
    are small clouds around the wrists and nose, the feet sit below the ankles."""
    rng = np.random.default_rng(0)
    person = np.zeros((sk.NUM_KEYPOINTS, 3))
    person[sk.BODY, :2] = STANDING_BODY
    for side in ("left", "right"):
        ankle = STANDING_BODY[sk.JOINT[f"{side}_ankle"]]
        for offset, part in zip(((0.03, 0.05), (0.05, 0.05), (-0.01, 0.04)), ("big_toe", "small_toe", "heel")):
            person[sk.JOINT[f"{side}_{part}"], :2] = ankle + offset
        hand = sk.LEFT_HAND if side == "left" else sk.RIGHT_HAND
        person[hand, :2] = STANDING_BODY[sk.JOINT[f"{side}_wrist"]] + rng.uniform(-0.03, 0.03, (sk.HAND_POINTS, 2))
    person[sk.FACE, :2] = STANDING_BODY[sk.JOINT["nose"]] + rng.uniform(-0.04, 0.04, (sk.FACE_POINTS, 2))
    person[:, :2] = person[:, :2] * size + (x0, y0)
    person[:, 2] = 1.0
    return person


def random_people(seed: int, count: int, width: int, height: int, presence: float = 0.8,
                  spread: float = 1.0) -> np.ndarray:
    """``count`` people of random points (some missing) over a ``spread`` multiple of the canvas."""
    rng = np.random.default_rng(seed)
    people = np.zeros((count, sk.NUM_KEYPOINTS, 3))
    people[..., 0] = rng.uniform(0, width * spread, (count, sk.NUM_KEYPOINTS))
    people[..., 1] = rng.uniform(0, height * spread, (count, sk.NUM_KEYPOINTS))
    people[..., 2] = rng.uniform(0.05, 1.0, (count, sk.NUM_KEYPOINTS))
    people[rng.random((count, sk.NUM_KEYPOINTS)) > presence] = 0.0
    return people


@st.composite
def pose_sequences(draw, max_frames: int = 4, max_people: int = 3, spread: float = 1.0,
                   max_side: int = 2000) -> PoseSequence:
    """Random clips: 1..max_frames frames of 0..max_people people on a random canvas."""
    width = draw(st.integers(1, max_side))
    height = draw(st.integers(1, max_side))
    presence = draw(st.floats(0.0, 1.0))
    counts = draw(st.lists(st.integers(0, max_people), min_size=1, max_size=max_frames))
    seed = draw(st.integers(0, 2**32 - 1))
    frames = tuple(random_people(seed + t, count, width, height, presence, spread) for t, count in enumerate(counts))
    return PoseSequence(frames, width, height)


def with_someone(poses: PoseSequence) -> bool:
    """Whether at least one point is present anywhere in the clip."""
    return bool((poses.stacked()[..., 2] > 0).any())
