"""MediaPipe Holistic for several people, top-down: a people detector boxes everyone
(``detect_people``), Holistic runs on each person's padded square crop, and the crop's keypoints
are moved back to frame pixels. Offline like one-person MediaPipe: nothing is downloaded.

Why not MediaPipe's own multi-pose (Tasks ``PoseLandmarker``, ``num_poses``): it needs ``.task``
bundles with metadata that the wheel does not ship (its bare tflite files are refused), and its
detector, Holistic's, sees the whole frame at 224 px: on vtest.avi's 768 x 576 frames it finds none
of the 60-100 px walkers. A crop enlarges each person before Holistic sees them. Each crop is a still image
(Holistic's own tracking follows one region, not a person who moves through crops); identities
across frames come from ``track.track_people``.
"""

from __future__ import annotations

import numpy as np

from . import skeleton as sk
from .detect_people import HogPeopleDetector, crop_square, crop_to_frame, crop_window
from .extract_mediapipe import holistic_person, make_holistic
from .track import Box, box_iou, person_box


def fills_box(person: np.ndarray, box: Box, min_height: float = 0.3) -> bool:
    """Whether ``person``'s body is the one the detector boxed: its centre inside ``box`` and its
    height at least ``min_height`` of the box's (Holistic also "finds" flat phantoms in a crop of a
    van, which this rejects)."""
    body = person_box(person[sk.BODY])
    if body is None:
        return False
    x0, y0, x1, y1 = box
    centre_x, centre_y = (body[0] + body[2]) / 2, (body[1] + body[3]) / 2
    return x0 <= centre_x <= x1 and y0 <= centre_y <= y1 and body[3] - body[1] >= min_height * (y1 - y0)


def drop_duplicates(people: list[np.ndarray], overlap: float) -> list[np.ndarray]:
    """People in order, without those whose body box overlaps an earlier one's by more than
    ``overlap`` IoU: two crops around one person (or neighbours) find the same body twice."""
    kept: list[np.ndarray] = []
    boxes = []
    for person in people:
        box = person_box(person[sk.BODY])
        if box is None or any(box_iou(box, other) > overlap for other in boxes):
            continue
        kept.append(person)
        boxes.append(box)
    return kept


class MediaPipeMultiPerson:
    """A ``PoseEstimator``: everyone the detector boxes, each through MediaPipe Holistic.

    ``max_people``: crops per frame, most confident boxes first (each costs one Holistic run).
    ``pad``: margin around a box, as a fraction of its longer side, so limbs outside the box stay
    in the crop. ``crop_size``: the crop's side in pixels (small people are enlarged to it).
    """

    def __init__(self, max_people: int = 8, pad: float = 0.25, crop_size: int = 256, overlap: float = 0.3) -> None:
        self._detector = HogPeopleDetector()
        self._holistic = make_holistic(static=True)
        self.max_people, self.pad, self.crop_size, self.overlap = max_people, pad, crop_size, overlap
        self.description = "mediapipe holistic per person (CPU, HOG people detector)"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        people = []
        for box in self._detector(image)[:self.max_people]:
            window = crop_window(box, self.pad)
            crop = crop_square(image, window, self.crop_size, keep=box)
            person = holistic_person(self._holistic.process(crop), self.crop_size, self.crop_size)
            if person is not None:
                person = crop_to_frame(person, window, self.crop_size)
                if fills_box(person, box):
                    people.append(person)
        people = drop_duplicates(people, self.overlap)
        return np.stack(people) if people else np.zeros((0, sk.NUM_KEYPOINTS, 3))

    def close(self) -> None:
        self._holistic.close()
