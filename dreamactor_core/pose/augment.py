"""Pose augmentations of DreamActor-M2 against identity and body-shape leakage from the skeleton.

Bone-length scaling changes the proportions the skeleton carries (one factor per anatomical group,
drawn once per clip so the motion stays coherent); bounding-box normalization removes the driving
person's size and placement (one box per clip, not per frame, so global motion survives). Both
only move points that are present: a missing point stays missing, nothing is invented.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import DreamActorError
from . import skeleton as sk
from .types import PoseSequence

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


def draw_bone_factors(seed: int, low: float = 0.8, high: float = 1.2, symmetric: bool = True) -> dict[str, float]:
    """One length factor per anatomical group, drawn from U(low, high) with ``seed``.

    Groups are drawn in the fixed order of ``skeleton.BONE_GROUPS``, so a seed always gives the
    same factors. ``symmetric`` gives left and right members of a group the left factor.
    """
    if not 0 < low <= high:
        raise DreamActorError(f"bone scale range must satisfy 0 < min <= max, got {low}..{high}")
    values = np.random.default_rng(seed).uniform(low, high, size=len(sk.BONE_GROUPS))
    factors = {group: float(value) for group, value in zip(sk.BONE_GROUPS, values)}
    if symmetric:
        for name in sk.SIDED_GROUPS:
            factors[f"right_{name}"] = factors[f"left_{name}"]
    return factors


def scale_bones(poses: PoseSequence, factors: Mapping[str, float]) -> PoseSequence:
    """Scale every bone of the kinematic tree by its group's factor, the same for every frame.

    Walking the tree from the neck, a present child is placed at its parent's new position plus
    the factor times its old offset, so children move with their parents and the skeleton stays
    connected. A child whose parent is missing moves rigidly with the nearest present ancestor.
    Hands are attached rigidly to their wrists and scaled by the hand factors; the face is
    scaled around the nose by the head factor.
    """
    missing = [group for group in sk.BONE_GROUPS if group not in factors]
    if missing:
        raise DreamActorError(f"bone factors lack the groups {', '.join(missing)}")
    people = poses.stacked()
    points = people[..., :2]
    present = people[..., 2] > 0
    displacement = np.zeros_like(points)
    for parent, child, group in sk.KINEMATIC_TREE:
        factor = 1.0 if group == sk.RIGID_GROUP else factors[group]
        both = (present[:, parent] & present[:, child])[:, None]
        scaled = points[:, parent] + displacement[:, parent] + factor * (points[:, child] - points[:, parent])
        displacement[:, child] = np.where(both, scaled - points[:, child], displacement[:, parent])
    moved = people.copy()
    moved[..., :2] = np.where(present[..., None], points + displacement, 0.0)
    return poses.with_stacked(moved)


def clip_box(poses: PoseSequence, min_confidence: float = 0.0) -> Box | None:
    """The box enclosing every present point (confidence above 0 and ``min_confidence``) of the
    whole clip; None when there is none."""
    people = poses.stacked()
    visible = (people[..., 2] > 0) & (people[..., 2] >= min_confidence)
    if not visible.any():
        return None
    points = people[visible][:, :2]
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def _fit_scale(box: Box, target: Box) -> float:
    """The largest scale that fits ``box`` into ``target`` keeping aspect (1 for a single point)."""
    width, height = box[2] - box[0], box[3] - box[1]
    target_width, target_height = target[2] - target[0], target[3] - target[1]
    scales = [t / s for s, t in ((width, target_width), (height, target_height)) if s > 0]
    return min(scales) if scales else 1.0


def fit_box(poses: PoseSequence, box: Box, target: Box, width: int, height: int) -> PoseSequence:
    """Map ``box`` onto ``target`` (keep aspect, centred) on a ``width`` x ``height`` canvas.

    One similarity transform for the whole clip: per-frame motion inside the clip is preserved.
    """
    scale = _fit_scale(box, target)
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    target_centre = np.array([(target[0] + target[2]) / 2, (target[1] + target[3]) / 2])
    people = poses.stacked().copy()
    present = people[..., 2] > 0
    people[..., :2] = np.where(present[..., None], (people[..., :2] - centre) * scale + target_centre, 0.0)
    return poses.with_stacked(people, width, height)


def _require_people(poses: PoseSequence, what: str, min_confidence: float = 0.0) -> Box:
    box = clip_box(poses, min_confidence)
    if box is None:
        raise DreamActorError(f"{what}: no person in any frame, so there is no pose to fit "
                              "(did the extraction find nobody?)")
    return box


def normalize_to_panel(poses: PoseSequence, width: int, height: int, margin: float = 0.05,
                       min_confidence: float = 0.0) -> PoseSequence:
    """Fit the clip's box into a ``width`` x ``height`` panel, keeping aspect, centred, leaving
    ``margin`` (a fraction of the panel's shorter side) free on every side."""
    if width < 1 or height < 1:
        raise DreamActorError(f"panel size must be positive, got {width}x{height}")
    if not 0 <= margin < 0.5:
        raise DreamActorError(f"margin must be in [0, 0.5), got {margin}")
    gap = margin * min(width, height)
    return fit_box(poses, _require_people(poses, "poses", min_confidence),
                   (gap, gap, width - gap, height - gap), width, height)


def reference_box(reference: PoseSequence, width: int, height: int, min_confidence: float = 0.0) -> Box:
    """The box of the reference's first frame, scaled from its canvas to a ``width`` x ``height`` one."""
    first = PoseSequence(reference.frames[:1], reference.width, reference.height)
    x0, y0, x1, y1 = _require_people(first, "reference pose", min_confidence)
    sx, sy = width / reference.width, height / reference.height
    return x0 * sx, y0 * sy, x1 * sx, y1 * sy


def fit_to_reference(poses: PoseSequence, reference: PoseSequence, width: int, height: int,
                     min_confidence: float = 0.0) -> PoseSequence:
    """Retarget: fit the driving clip's box onto the reference character's pose box (scale and
    position), so the skeleton matches the character's size and place in the reference image."""
    return fit_box(poses, _require_people(poses, "poses", min_confidence),
                   reference_box(reference, width, height, min_confidence), width, height)


def augment_clip(poses: PoseSequence, bone_factors: Mapping[str, float] | None = None,
                 panel: tuple[int, int] | None = None, margin: float = 0.05,
                 reference: PoseSequence | None = None, min_confidence: float = 0.0) -> PoseSequence:
    """Bone scaling (when ``bone_factors`` is given), then fitting into ``panel`` (width, height):
    onto the ``reference`` pose box when one is given, else the whole panel less ``margin``.

    Only fitting needs a person (there is no box to fit otherwise); without ``panel`` a clip in which
    nobody was found comes back unchanged, as bone scaling has nothing to move."""
    if bone_factors is not None:
        poses = scale_bones(poses, bone_factors)
    if panel is None:
        return poses
    if reference is not None:
        return fit_to_reference(poses, reference, *panel, min_confidence=min_confidence)
    return normalize_to_panel(poses, *panel, margin=margin, min_confidence=min_confidence)
