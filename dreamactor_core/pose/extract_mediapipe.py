"""MediaPipe Holistic as a pose backend: body, hands and face of one person, on any CPU, offline.

mediapipe 0.10.14 ships the holistic graph and its models in the wheel; only ``model_complexity=1``
is bundled (0 and 2 would download). Holistic tracks a single person (``extract_mediapipe_multi``
runs it on each person a people detector finds). Its 33 pose landmarks map to
BODY_18 (neck = shoulder midpoint) and the feet; its 478-point refined face mesh to the 68 iBUG
points plus the two pupils; its hands (labelled by the person's own side) map one to one.
"""

from __future__ import annotations

import numpy as np

from . import skeleton as sk

# MediaPipe pose landmark index for each BODY_18 joint (the neck is synthesized).
POSE_TO_BODY18 = {
    "nose": 0, "right_shoulder": 12, "right_elbow": 14, "right_wrist": 16, "left_shoulder": 11,
    "left_elbow": 13, "left_wrist": 15, "right_hip": 24, "right_knee": 26, "right_ankle": 28,
    "left_hip": 23, "left_knee": 25, "left_ankle": 27, "right_eye": 5, "left_eye": 2,
    "right_ear": 8, "left_ear": 7,
    # MediaPipe has one toe point (foot index) and the heel; there is no small toe.
    "left_big_toe": 31, "left_heel": 29, "right_big_toe": 32, "right_heel": 30,
}
# Face-mesh vertices closest to the 68 iBUG landmarks (jaw, brows, nose, eyes, lips), then the iris
# centres of the refined mesh as the OpenPose pupils (right, left).
FACE_MESH_TO_IBUG70 = (
    127, 234, 132, 58, 172, 150, 149, 148, 152, 377, 378, 379, 397, 288, 361, 454, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87,
    468, 473,
)


def _landmarks(result_landmarks: object, width: int, height: int, with_visibility: bool) -> np.ndarray:
    """MediaPipe normalized landmarks as ``[N, 3]`` pixel x, y, confidence."""
    return np.array([(lm.x * width, lm.y * height, lm.visibility if with_visibility else 1.0)
                     for lm in result_landmarks.landmark])


def holistic_person(result: object, width: int, height: int) -> np.ndarray | None:
    """The pack-layout ``[K, 3]`` person of one Holistic result on a ``width`` x ``height`` image
    (pixels), or None when it found nobody."""
    if result.pose_landmarks is None:
        return None
    person = np.zeros((sk.NUM_KEYPOINTS, 3))
    pose = _landmarks(result.pose_landmarks, width, height, with_visibility=True)
    for name, index in POSE_TO_BODY18.items():
        person[sk.JOINT[name]] = pose[index]
    shoulders = person[[sk.JOINT["left_shoulder"], sk.JOINT["right_shoulder"]]]
    person[sk.JOINT["neck"]] = (*shoulders[:, :2].mean(axis=0), shoulders[:, 2].min())
    if result.face_landmarks is not None:
        face = _landmarks(result.face_landmarks, width, height, with_visibility=False)
        person[sk.FACE] = face[list(FACE_MESH_TO_IBUG70)]  # the refined mesh has the irises
    for landmarks, part in ((result.left_hand_landmarks, sk.LEFT_HAND),
                            (result.right_hand_landmarks, sk.RIGHT_HAND)):
        if landmarks is not None:
            person[part] = _landmarks(landmarks, width, height, with_visibility=False)
    return person


def make_holistic(static: bool) -> object:
    """Holistic as the wheel bundles it (model_complexity 1, refined face mesh with irises);
    ``static``: every image on its own, no tracking from the previous one."""
    import mediapipe

    return mediapipe.solutions.holistic.Holistic(
        static_image_mode=static, model_complexity=1, refine_face_landmarks=True)


class MediaPipeHolistic:
    """A ``PoseEstimator`` over MediaPipe Holistic (one person per frame)."""

    def __init__(self, video: bool = True) -> None:
        self._holistic = make_holistic(static=not video)
        self.description = "mediapipe holistic (CPU, one person)"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        person = holistic_person(self._holistic.process(image), image.shape[1], image.shape[0])
        return np.zeros((0, sk.NUM_KEYPOINTS, 3)) if person is None else person[None]

    def close(self) -> None:
        self._holistic.close()
