"""Pose augmentations of DreamActor-M2 against identity and body-shape leakage from the skeleton.

Bone-length scaling changes the proportions the skeleton carries (one factor per anatomical group,
drawn once per clip so the motion stays coherent; in a tracked multi-person clip one set per person
id); bounding-box normalization removes the driving person's size and placement (one box per clip,
not per frame, so global motion survives; optionally one per person id). Both
only move points that are present: a missing point stays missing, nothing is invented.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..canvas.placement import place
from ..errors import DreamActorError
from . import skeleton as sk
from .types import PoseSequence

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
BoneFactors = Mapping[str, float] | Sequence[Mapping[str, float]]  # one set, or one per person id (row)
# Clip box: "group" fits one box over every joint of the clip (the paper's rule); "person" fits each
# person id's own clip box into its own target (see ``fit_people``).
BOX_MODES = ("group", "person")


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


def person_bone_factors(seed: int, poses: PoseSequence, low: float = 0.8, high: float = 1.2,
                        symmetric: bool = True) -> BoneFactors:
    """Bone factors for a clip: one set (``draw_bone_factors(seed)``, the paper's rule) when no frame
    shows more than one person, else one set per person id (row of a tracked clip), each kept for the
    whole clip. Person 0 keeps ``seed``'s set; person i > 0 draws from the seed sequence (seed, i),
    so adding a person never changes the others' bodies."""
    people = max((len(frame) for frame in poses.frames), default=0)
    if people <= 1:
        return draw_bone_factors(seed, low, high, symmetric)
    seeds = [seed] + [int(np.random.SeedSequence([seed, i]).generate_state(1)[0]) for i in range(1, people)]
    return [draw_bone_factors(s, low, high, symmetric) for s in seeds]


def _rows(poses: PoseSequence) -> np.ndarray:
    """The row (person id in a tracked clip) of every person of ``poses.stacked()``."""
    return np.concatenate([np.arange(len(frame)) for frame in poses.frames]) if poses.frames else np.zeros(0, int)


def scale_bones(poses: PoseSequence, factors: BoneFactors) -> PoseSequence:
    """Scale every bone of the kinematic tree by its group's factor, the same for every frame
    (``factors``: one set for everyone, or a list with the set of each row, i.e. person id).

    Walking the tree from the neck, a present child is placed at its parent's new position plus
    the factor times its old offset, so children move with their parents and the skeleton stays
    connected. A child whose parent is missing moves rigidly with the nearest present ancestor.
    Hands are attached rigidly to their wrists and scaled by the hand factors; the face is
    scaled around the nose by the head factor.
    """
    sets = [factors] if isinstance(factors, Mapping) else list(factors)
    missing = sorted({group for one in sets for group in sk.BONE_GROUPS if group not in one})
    if missing or not sets:
        raise DreamActorError(f"bone factors lack the groups {', '.join(missing or sk.BONE_GROUPS)}")
    people = poses.stacked()
    rows = np.zeros(len(people), int) if isinstance(factors, Mapping) else _rows(poses)
    if len(rows) and rows.max() >= len(sets):
        raise DreamActorError(f"bone factors: {len(sets)} sets for frames showing up to {rows.max() + 1} people; "
                              "give one set per person id (augment.person_bone_factors)")
    table = {group: np.array([one[group] for one in sets])[rows][:, None] for group in sk.BONE_GROUPS}
    points = people[..., :2]
    present = people[..., 2] > 0
    displacement = np.zeros_like(points)
    for parent, child, group in sk.KINEMATIC_TREE:
        factor = 1.0 if group == sk.RIGID_GROUP else table[group]
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


def _reference_to_panel(box: Box, reference: PoseSequence, width: int, height: int, fit: str) -> Box:
    """``box`` on the reference picture (the reference pose's canvas) moved to where the canvas shows
    it in a ``width`` x ``height`` panel under ``fit``: the canvas's own placement of the reference
    (``canvas.placement.place``, the panel size given), not a stretch of x and y apart."""
    placement = place((reference.height, reference.width), (height, width), fit)
    x0, y0 = placement.source_to_panel(box[0], box[1])
    x1, y1 = placement.source_to_panel(box[2], box[3])
    return x0, y0, x1, y1


def reference_box(reference: PoseSequence, width: int, height: int, min_confidence: float = 0.0,
                  fit: str = "pad") -> Box:
    """The box of the reference's first frame, where the canvas shows it in a ``width`` x ``height``
    panel when it places the reference picture with ``fit``."""
    first = PoseSequence(reference.frames[:1], reference.width, reference.height)
    return _reference_to_panel(_require_people(first, "reference pose", min_confidence), reference, width, height, fit)


def fit_to_reference(poses: PoseSequence, reference: PoseSequence, width: int, height: int,
                     min_confidence: float = 0.0, fit: str = "pad") -> PoseSequence:
    """Retarget: fit the driving clip's box onto the reference character's pose box (scale and
    position), so the skeleton matches the character's size and place in the reference panel."""
    return fit_box(poses, _require_people(poses, "poses", min_confidence),
                   reference_box(reference, width, height, min_confidence, fit), width, height)


def _person_targets(people: int, reference: PoseSequence | None, width: int, height: int,
                    margin: float, min_confidence: float, fit: str) -> list[Box]:
    """Where each person id goes: the reference's characters ranked left to right (by box centre),
    where the canvas shows them under ``fit``, or equal columns of the panel, left to right, each
    less ``margin``."""
    if reference is not None:
        first = [person for person in reference.frames[0] if (person[:, 2] > max(min_confidence, 0)).any()] \
            if reference.frames else []
        boxes = sorted((clip_box(PoseSequence((person[None],), reference.width, reference.height), min_confidence)
                        for person in first), key=lambda box: box[0] + box[2])
        if len(boxes) != people:
            raise DreamActorError(f"reference pose: {len(boxes)} people, but the driving clip has {people} person "
                                  "ids; per-person boxes pair them in order (or use box 'group')")
        return [_reference_to_panel(box, reference, width, height, fit) for box in boxes]
    gap, column = margin * min(width, height), width / people
    return [(i * column + gap, gap, (i + 1) * column - gap, height - gap) for i in range(people)]


def fit_people(poses: PoseSequence, width: int, height: int, margin: float = 0.05,
               reference: PoseSequence | None = None, min_confidence: float = 0.0, fit: str = "pad") -> PoseSequence:
    """Per-person clip boxes: each person id (row of a tracked clip) has its own clip box (over all
    its frames, so its own motion is kept) fitted onto its own target, so every person loses size and
    place the way the paper's one box removes them from one person. Person id k (ids rank people by
    first appearance, left to right among those appearing together) goes to the k-th reference
    character from the left (where the canvas shows it under ``fit``), or without a reference to the
    k-th of equal panel columns."""
    rows = _rows(poses)
    people = poses.stacked().copy()
    ids = [row for row in range(int(rows.max()) + 1 if len(rows) else 0)
           if (people[rows == row][..., 2] > 0).any()]
    if not ids:
        _require_people(poses, "poses", min_confidence)
    targets = _person_targets(len(ids), reference, width, height, margin, min_confidence, fit)
    for row, target in zip(ids, targets):
        mine = poses.with_stacked(np.where((rows == row)[:, None, None], people, 0.0))
        box = _require_people(mine, f"person {row}", 0.0)
        scale = _fit_scale(box, target)
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        target_centre = np.array([(target[0] + target[2]) / 2, (target[1] + target[3]) / 2])
        present = (rows == row)[:, None] & (people[..., 2] > 0)
        people[..., :2] = np.where(present[..., None], (people[..., :2] - centre) * scale + target_centre,
                                   people[..., :2])
    return poses.with_stacked(people, width, height)


def augment_clip(poses: PoseSequence, bone_factors: BoneFactors | None = None,
                 panel: tuple[int, int] | None = None, margin: float = 0.05,
                 reference: PoseSequence | None = None, min_confidence: float = 0.0,
                 box: str = "group", fit: str = "pad") -> PoseSequence:
    """Bone scaling (when ``bone_factors`` is given: one set, or one per person id), then fitting
    into ``panel`` (width, height): ``box`` "group" fits the clip's one box onto the ``reference``
    pose box when one is given, else the whole panel less ``margin``; "person" fits each person id
    on its own (``fit_people``). ``fit`` is the canvas's fit ("pad" or "crop"): a reference pose
    (on the reference picture) is moved to where the canvas places that picture in the panel.

    Only fitting needs a person (there is no box to fit otherwise); without ``panel`` a clip in which
    nobody was found comes back unchanged, as bone scaling has nothing to move."""
    if box not in BOX_MODES:
        raise DreamActorError(f"box: expected one of {', '.join(BOX_MODES)}, got {box!r}")
    if bone_factors is not None:
        poses = scale_bones(poses, bone_factors)
    if panel is None:
        return poses
    if box == "person":
        return fit_people(poses, *panel, margin=margin, reference=reference, min_confidence=min_confidence, fit=fit)
    if reference is not None:
        return fit_to_reference(poses, reference, *panel, min_confidence=min_confidence, fit=fit)
    return normalize_to_panel(poses, *panel, margin=margin, min_confidence=min_confidence)
