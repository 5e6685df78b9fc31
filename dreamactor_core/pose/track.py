"""Who is who across frames: stable person ids for a multi-person pose sequence.

Estimators return each frame's people in an arbitrary order, so without tracking a bone-length
factor, a clip box or a colour drawn "per person" would jump between people from frame to frame.
``track_people`` reorders every frame so that row ``i`` is the same person for the whole clip (its
id), with an all-missing row where that person is not seen. Matching is global per frame (the
Hungarian assignment) on a cost mixing box overlap and keypoint distance, against where each track
is predicted to be (its last sighting moved on by its last displacement: constant velocity), so
people who cross or swap places keep their ids; a track survives ``max_gap`` frames
unseen (short occlusions, detector dropouts) and a person appearing mid-clip gets a new id.
Id order, deterministic whatever order the estimator lists people in: ids are numbered by first
appearance, and people first seen in the same frame are numbered left to right (box centre).
"""

from __future__ import annotations

import numpy as np

from ..errors import DreamActorError
from .types import PoseSequence, empty_people

Box = tuple[float, float, float, float]


def person_box(person: np.ndarray) -> Box | None:
    """The box of one person's present points, or None when none is present."""
    points = person[person[:, 2] > 0, :2]
    if not len(points):
        return None
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 for disjoint or degenerate boxes)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def keypoint_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance of the joints both people show, relative to the larger box diagonal (inf when
    they share no joint): scale-free, so near and far people are judged alike."""
    shared = (a[:, 2] > 0) & (b[:, 2] > 0)
    boxes = [person_box(a), person_box(b)]
    if not shared.any() or None in boxes:
        return float("inf")
    diagonal = max(float(np.hypot(box[2] - box[0], box[3] - box[1])) for box in boxes)
    distance = float(np.linalg.norm(a[shared, :2] - b[shared, :2], axis=1).mean())
    return distance / max(diagonal, 1.0)


def match_cost(track: np.ndarray, person: np.ndarray) -> float:
    """Cost of continuing ``track`` (its last sighting) with ``person``: 0 for the same pose."""
    track_box, person_box_ = person_box(track), person_box(person)
    if track_box is None or person_box_ is None:
        return float("inf")
    return (1.0 - box_iou(track_box, person_box_)) + keypoint_distance(track, person)


def predicted(last: np.ndarray, before: np.ndarray | None, frames_since: int) -> np.ndarray:
    """``last`` moved on by its per-frame displacement since ``before`` (the mean motion of the
    joints both show), ``frames_since`` frames ahead; ``last`` itself without a previous sighting."""
    if before is None:
        return last
    shared = (last[:, 2] > 0) & (before[:, 2] > 0)
    if not shared.any():
        return last
    step = (last[shared, :2] - before[shared, :2]).mean(axis=0)
    ahead = last.copy()
    present = ahead[:, 2] > 0
    ahead[present, :2] += step * frames_since
    return ahead


def _centre_x(person: np.ndarray) -> float:
    box = person_box(person)
    return (box[0] + box[2]) / 2 if box is not None else 0.0


def track_people(poses: PoseSequence, max_gap: int = 8, max_cost: float = 1.5) -> PoseSequence:
    """The same clip with each frame's rows reordered by person id (see the module doc).

    Every frame gets one row per id ever seen (all-missing where the person is absent), so
    ``frames[t][i]`` is person ``i`` throughout. ``max_gap``: frames a person may stay unseen and keep
    the id. ``max_cost``: the largest ``match_cost`` still taken as the same person (1.5 accepts a
    pose that moved half its size with no box overlap; a different person far away costs more).
    """
    from scipy.optimize import linear_sum_assignment

    if max_gap < 0:
        raise DreamActorError(f"max_gap: expected 0 or more frames, got {max_gap}")
    last_seen: list[np.ndarray] = []  # per id: the person at its last sighting
    seen_before: list[np.ndarray | None] = []  # per id: the sighting one frame before that, if any
    last_frame: list[int] = []
    assignments: list[list[tuple[int, int]]] = []  # per frame: (id, row in the input frame)
    for t, frame in enumerate(poses.frames):
        present = [row for row in range(len(frame)) if (frame[row, :, 2] > 0).any()]
        live = [track for track in range(len(last_seen)) if t - last_frame[track] <= max_gap + 1]
        pairs: list[tuple[int, int]] = []
        if live and present:
            expected = [predicted(last_seen[track], seen_before[track], t - last_frame[track]) for track in live]
            cost = np.array([[match_cost(guess, frame[row]) for row in present] for guess in expected])
            finite = np.where(np.isfinite(cost), cost, 1e9)
            for i, j in zip(*linear_sum_assignment(finite)):
                if cost[i, j] <= max_cost:
                    pairs.append((live[i], present[j]))
        matched_rows = {row for _, row in pairs}
        for row in sorted(present, key=lambda r: _centre_x(frame[r])):  # new ids left to right
            if row not in matched_rows:
                last_seen.append(frame[row])
                seen_before.append(None)
                last_frame.append(t)
                pairs.append((len(last_seen) - 1, row))
        for track, row in pairs:
            if last_frame[track] != t:
                seen_before[track] = last_seen[track] if last_frame[track] == t - 1 else None
            last_seen[track], last_frame[track] = frame[row], t
        assignments.append(pairs)
    ids = len(last_seen)
    frames = []
    for frame, pairs in zip(poses.frames, assignments):
        ordered = empty_people(ids)
        for track, row in pairs:
            ordered[track] = frame[row]
        frames.append(ordered)
    return PoseSequence(tuple(frames), poses.width, poses.height)
