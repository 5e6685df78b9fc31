"""The pose sequence the pack passes around, and its lossless exchange with ComfyUI's POSE_KEYPOINT.

POSE_KEYPOINT is the de-facto type of comfyui_controlnet_aux: a list of frames, each
``{"people": [{"pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d",
"hand_right_keypoints_2d"}], "canvas_width", "canvas_height"}`` with flat x, y, confidence
triplets and missing points written 0, 0, 0. Two body layouts are read: OpenPose BODY_18
(18 triplets, face and hands in their own lists) and COCO-WholeBody 133 (all 133 triplets in
``pose_keypoints_2d``). Coordinates may be normalized (0..1, what comfyui_controlnet_aux writes) or
pixels; see ``from_pose_keypoint`` for how a frame without a ``coordinates`` key is read. Two extra keys that other readers ignore make a round trip lossless: the six foot points,
which BODY_18 has no place for, travel in ``foot_keypoints_2d``, and each frame written here says
its ``coordinates`` ("normalized" or "pixels"), since augmented poses may leave the canvas and so
defeat guessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import DreamActorError
from . import skeleton as sk

Coordinates = Literal["auto", "normalized", "pixels"]
Layout = Literal["openpose", "coco_wholebody"]

# How far outside 0..1 a normalized coordinate may lie, as a fraction of the canvas (see from_pose_keypoint).
NORMALIZED_MARGIN = 0.5

PART_KEYS = (
    ("pose_keypoints_2d", sk.BODY),
    ("foot_keypoints_2d", sk.FEET),
    ("face_keypoints_2d", sk.FACE),
    ("hand_left_keypoints_2d", sk.LEFT_HAND),
    ("hand_right_keypoints_2d", sk.RIGHT_HAND),
)


@dataclass(frozen=True)
class PoseSequence:
    """Multi-person whole-body poses of a clip, in pixel coordinates of a ``width`` x ``height`` canvas.

    ``frames[t]`` is a float64 array ``[people, skeleton.NUM_KEYPOINTS, 3]`` of x, y, confidence.
    A point with confidence 0 is missing (and stored as 0, 0, 0); a frame with nobody is an array
    with 0 people, so the frame count always matches the video.
    """

    frames: tuple[np.ndarray, ...]
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise DreamActorError(f"pose canvas size must be positive, got {self.width}x{self.height}")
        for index, frame in enumerate(self.frames):
            if frame.ndim != 3 or frame.shape[1:] != (sk.NUM_KEYPOINTS, 3):
                raise DreamActorError(f"pose frame {index} has shape {frame.shape}, expected "
                                      f"[people, {sk.NUM_KEYPOINTS}, 3]")

    def __len__(self) -> int:
        return len(self.frames)

    def stacked(self) -> np.ndarray:
        """All people of all frames as one ``[N, K, 3]`` array, for clip-level vectorized work."""
        return np.concatenate(self.frames) if self.frames else np.zeros((0, sk.NUM_KEYPOINTS, 3))

    def with_stacked(self, people: np.ndarray, width: int | None = None,
                     height: int | None = None) -> "PoseSequence":
        """The same clip structure with new keypoints (as returned by ``stacked``) and canvas."""
        bounds = np.cumsum([len(frame) for frame in self.frames])[:-1]
        return PoseSequence(tuple(np.split(people, bounds)), width or self.width, height or self.height)


def empty_people(count: int = 0) -> np.ndarray:
    """An all-missing ``[count, K, 3]`` keypoint array."""
    return np.zeros((count, sk.NUM_KEYPOINTS, 3))


def from_coco_wholebody(points: np.ndarray) -> np.ndarray:
    """COCO-WholeBody ``[P, 133, 3]`` (DWPose order) to the pack layout ``[P, K, 3]``.

    The neck, absent from COCO, is the shoulder midpoint when both shoulders are present, with
    the lower of their confidences.
    """
    people = empty_people(len(points))
    for coco_index, name in sk.COCO_BODY_TO_BODY18.items():
        people[:, sk.JOINT[name]] = points[:, coco_index]
    for coco_part, part in sk.COCO_WHOLEBODY_PARTS:
        people[:, part] = points[:, coco_part]
    left, right = points[:, 5], points[:, 6]
    both = (left[:, 2] > 0) & (right[:, 2] > 0)
    people[both, sk.JOINT["neck"], :2] = (left[both, :2] + right[both, :2]) / 2
    people[both, sk.JOINT["neck"], 2] = np.minimum(left[both, 2], right[both, 2])
    return people


def to_coco_wholebody(people: np.ndarray) -> np.ndarray:
    """The pack layout ``[P, K, 3]`` to COCO-WholeBody ``[P, 133, 3]`` (drops the neck and pupils)."""
    points = np.zeros((len(people), sk.COCO_WHOLEBODY_POINTS, 3))
    for coco_index, name in sk.COCO_BODY_TO_BODY18.items():
        points[:, coco_index] = people[:, sk.JOINT[name]]
    for coco_part, part in sk.COCO_WHOLEBODY_PARTS:
        points[:, coco_part] = people[:, part]
    return points


# --- POSE_KEYPOINT in ------------------------------------------------------------------------------
def _triplets(value: Any, where: str) -> np.ndarray | None:
    """A flat x, y, c list as ``[N, 3]``; None for an absent part (None or empty list)."""
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        return None
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise DreamActorError(f"POSE_KEYPOINT {where}: expected a flat list of numbers ({error})") from None
    if array.size % 3:
        raise DreamActorError(f"POSE_KEYPOINT {where}: {array.size} numbers is not a whole number of "
                              "x, y, confidence triplets")
    if not np.isfinite(array).all():
        raise DreamActorError(f"POSE_KEYPOINT {where}: contains NaN or infinite values")
    return array.reshape(-1, 3)


# Keypoint counts each list may have (BODY_18's body may also be a whole COCO-WholeBody 133).
ACCEPTED_POINTS = {
    "pose_keypoints_2d": (sk.BODY_POINTS, sk.COCO_WHOLEBODY_POINTS),
    "foot_keypoints_2d": (sk.FOOT_POINTS,),
    "face_keypoints_2d": (sk.FACE_POINTS_WITHOUT_PUPILS, sk.FACE_POINTS),
    "hand_left_keypoints_2d": (sk.HAND_POINTS,),
    "hand_right_keypoints_2d": (sk.HAND_POINTS,),
}


def _expect_points(points: np.ndarray, allowed: tuple[int, ...], where: str) -> None:
    if len(points) not in allowed:
        raise DreamActorError(f"POSE_KEYPOINT {where}: {len(points)} keypoints, expected "
                              + " or ".join(str(n) for n in allowed))


def _person_from_dict(person: dict, where: str) -> np.ndarray:
    if not isinstance(person, dict):
        raise DreamActorError(f"POSE_KEYPOINT {where}: expected a dict of keypoint lists, got {type(person).__name__}")
    keypoints = empty_people(1)[0]
    body = _triplets(person.get("pose_keypoints_2d"), f"{where} pose_keypoints_2d")
    if body is not None and len(body) == sk.COCO_WHOLEBODY_POINTS:
        return from_coco_wholebody(body[None])[0]
    for key, part in PART_KEYS:
        points = body if key == "pose_keypoints_2d" else _triplets(person.get(key), f"{where} {key}")
        if points is None:
            continue
        _expect_points(points, ACCEPTED_POINTS[key], f"{where} {key}")
        keypoints[part.start:part.start + len(points)] = points
    return keypoints


def _rows_by_id(entries: list[dict], persons: list[np.ndarray], t: int) -> np.ndarray:
    """A frame's people as rows: in list order, or by ``person_id`` when the entries carry one (a
    tracked clip: row i is person i in every frame, all-missing where the person is absent)."""
    ids = [entry.get("person_id") for entry in entries]
    if all(i is None for i in ids):
        return np.stack(persons)
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids) or len(set(ids)) != len(ids):
        raise DreamActorError(f"POSE_KEYPOINT frame {t}: 'person_id' must be a distinct integer >= 0 on every "
                              f"person of the frame, got {ids}")
    rows = empty_people(max(ids) + 1)
    for i, person in zip(ids, persons):
        rows[i] = person
    return rows


def _frame_canvas(frame: dict, where: str) -> tuple[int, int]:
    try:
        width, height = int(frame["canvas_width"]), int(frame["canvas_height"])
    except (KeyError, TypeError, ValueError):
        raise DreamActorError(f"POSE_KEYPOINT {where}: needs integer 'canvas_width' and 'canvas_height'") from None
    if width < 1 or height < 1:
        raise DreamActorError(f"POSE_KEYPOINT {where}: canvas size {width}x{height}, expected both positive")
    return width, height


def from_pose_keypoint(pose_keypoint: list[dict] | dict, coordinates: Coordinates = "auto") -> PoseSequence:
    """Read a POSE_KEYPOINT (a list of frames, or one frame dict) into a ``PoseSequence``.

    ``coordinates="auto"`` follows the frames' own ``coordinates`` key when they have one. Without it
    (comfyui_controlnet_aux's frames never have it) the clip is normalized when every present
    coordinate lies within -0.5..1.5 (``NORMALIZED_MARGIN``: the canvas grown by half its size on each
    side), else pixels. Detectors place points slightly off the frame (x = 1.03 for a hand at the
    edge), so a strict 0..1 test would read such a clip as pixels and collapse the skeleton into a
    corner; a real pose in pixels spans more than two pixels, so the margin cannot mistake one for
    normalized. Every frame must share the first frame's canvas size. Missing points (confidence 0)
    are stored as 0, 0, 0.
    """
    frames = [pose_keypoint] if isinstance(pose_keypoint, dict) else pose_keypoint
    if not isinstance(frames, (list, tuple)) or not frames:
        raise DreamActorError("POSE_KEYPOINT: expected a non-empty list of frames")
    people, canvas = [], None
    for t, frame in enumerate(frames):
        if not isinstance(frame, dict) or not isinstance(frame.get("people", []), list):
            raise DreamActorError(f"POSE_KEYPOINT frame {t}: expected a dict with a 'people' list")
        size = _frame_canvas(frame, f"frame {t}")
        if canvas is None:
            canvas = size
        elif size != canvas:
            raise DreamActorError(f"POSE_KEYPOINT frame {t}: canvas {size[0]}x{size[1]} differs from "
                                  f"frame 0's {canvas[0]}x{canvas[1]}; one clip has one canvas")
        entries = frame.get("people", [])
        persons = [_person_from_dict(p, f"frame {t} person {i}") for i, p in enumerate(entries)]
        people.append(_rows_by_id(entries, persons, t) if persons else empty_people(0))
    present = np.concatenate(people)
    present = present[present[..., 2] > 0][:, :2]
    if coordinates == "auto" and frames[0].get("coordinates") in ("normalized", "pixels"):
        coordinates = frames[0]["coordinates"]
    if coordinates == "auto":
        within = present.size == 0 or (present.min() >= -NORMALIZED_MARGIN and present.max() <= 1 + NORMALIZED_MARGIN)
        coordinates = "normalized" if within else "pixels"
    if coordinates == "normalized":
        for frame in people:
            frame[..., 0] *= canvas[0]
            frame[..., 1] *= canvas[1]
    elif coordinates != "pixels":
        raise DreamActorError(f"coordinates must be 'auto', 'normalized' or 'pixels', got {coordinates!r}")
    rows = max(len(frame) for frame in people)
    if any("person_id" in p for frame in frames for p in frame.get("people", [])):  # every frame: every id
        people = [np.concatenate([frame, empty_people(rows - len(frame))]) for frame in people]
    for frame in people:
        frame[frame[..., 2] <= 0] = 0.0
    return PoseSequence(tuple(people), *canvas)


def has_person_ids(pose_keypoint: list[dict] | dict) -> bool:
    """Whether a POSE_KEYPOINT carries tracked ``person_id``s (rows are then people, see ``to_pose_keypoint``)."""
    frames = [pose_keypoint] if isinstance(pose_keypoint, dict) else pose_keypoint
    return any(isinstance(p, dict) and "person_id" in p for frame in frames if isinstance(frame, dict)
               for p in frame.get("people", []))


# --- POSE_KEYPOINT out -----------------------------------------------------------------------------
def _flat(points: np.ndarray) -> list[float]:
    return points.reshape(-1).tolist()


def to_pose_keypoint(poses: PoseSequence, normalized: bool = True, layout: Layout = "openpose",
                     person_ids: bool = False) -> list[dict]:
    """Write a POSE_KEYPOINT: normalized coordinates (what comfyui_controlnet_aux writes) or pixels.

    ``person_ids`` (a tracked clip, ``track.track_people``): each person dict gets ``person_id``, its
    row, and all-missing rows (the person is not in that frame) are not written; ``from_pose_keypoint``
    puts every person back on its row. Readers that do not know the key ignore it.

    ``layout="openpose"`` writes BODY_18 plus face (70 points when the clip has pupils, else 68),
    hands, and ``foot_keypoints_2d`` when the clip has feet; ``"coco_wholebody"`` writes all 133
    COCO-WholeBody points in ``pose_keypoints_2d`` (without the neck and pupils, which it lacks).
    """
    if layout not in ("openpose", "coco_wholebody"):
        raise DreamActorError(f"layout must be 'openpose' or 'coco_wholebody', got {layout!r}")
    everyone = poses.stacked()
    scale = np.array([poses.width, poses.height, 1.0]) if normalized else np.ones(3)
    has_pupils = bool((everyone[:, [sk.RIGHT_PUPIL, sk.LEFT_PUPIL], 2] > 0).any())
    has_feet = bool((everyone[:, sk.FEET, 2] > 0).any())
    face_end = sk.FACE.stop if has_pupils else sk.FACE.start + sk.FACE_POINTS_WITHOUT_PUPILS
    result = []
    for frame in poses.frames:
        scaled = frame / scale
        scaled[frame[..., 2] <= 0] = 0.0
        people = []
        for row, person in enumerate(scaled):
            if person_ids and not (frame[row, :, 2] > 0).any():
                continue
            tag = {"person_id": row} if person_ids else {}
            if layout == "coco_wholebody":
                people.append({"pose_keypoints_2d": _flat(to_coco_wholebody(person[None])[0]),
                               "face_keypoints_2d": [], "hand_left_keypoints_2d": [],
                               "hand_right_keypoints_2d": [], **tag})
                continue
            entry = {
                "pose_keypoints_2d": _flat(person[sk.BODY]),
                "face_keypoints_2d": _flat(person[sk.FACE.start:face_end]),
                "hand_left_keypoints_2d": _flat(person[sk.LEFT_HAND]),
                "hand_right_keypoints_2d": _flat(person[sk.RIGHT_HAND]),
            }
            if has_feet:
                entry["foot_keypoints_2d"] = _flat(person[sk.FEET])
            people.append({**entry, **tag})
        result.append({"people": people, "canvas_width": poses.width, "canvas_height": poses.height,
                       "coordinates": "normalized" if normalized else "pixels"})
    return result


# --- JSON files ------------------------------------------------------------------------------------
def save_json(pose_keypoint: list[dict], path: str | Path) -> Path:
    """Save a POSE_KEYPOINT as JSON (the list of frames, as OpenPose tools read it)."""
    path = Path(path)
    path.write_text(json.dumps(pose_keypoint))
    return path


def load_json(path: str | Path) -> list[dict]:
    """Load a POSE_KEYPOINT JSON file (a list of frames or a single frame)."""
    path = Path(path)
    if not path.is_file():
        raise DreamActorError(f"pose JSON '{path}' does not exist")
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DreamActorError(f"pose JSON '{path}' is not valid JSON: {error}") from None
    return [value] if isinstance(value, dict) else value
