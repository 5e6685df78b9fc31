"""OpenPose-style skeleton images: what pose-conditioned video models were trained to read.

Drawn with OpenCV in the standard OpenPose limb order and colours (limbs as filled ellipses at 60 %
brightness, joints as full-colour dots; hands as rainbow edges with blue points, the face as white
points), on black. controlnet_aux's ``draw_bodypose``/``draw_handpose``/``draw_facepose`` draw the
same picture but with fixed 512-pixel line widths and only behind a ~5 s package import, so the
pack draws it itself with widths scaled to the resolution. Pure function of its input: deterministic.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import DreamActorError
from ..progress import ProgressHook, report
from . import skeleton as sk
from .types import PoseSequence

REFERENCE_SIDE = 512  # the resolution OpenPose's standard widths were chosen for
LIMB_BRIGHTNESS = 0.6
HAND_EDGE_COLORS = tuple(
    tuple(int(round(255 * channel)) for channel in colorsys.hsv_to_rgb(index / len(sk.HAND_EDGES), 1.0, 1.0))
    for index in range(len(sk.HAND_EDGES))
)
HAND_POINT_COLOR = (0, 0, 255)
FACE_POINT_COLOR = (255, 255, 255)
BODY_LIMB_COLORS = tuple(tuple(int(c * LIMB_BRIGHTNESS) for c in color) for color in sk.BODY_COLORS.tolist())
BODY_JOINT_COLORS = tuple(tuple(color) for color in sk.BODY_COLORS.tolist())
FOOT_COLORS = tuple(BODY_LIMB_COLORS[9 if ankle == sk.JOINT["right_ankle"] else 12] for ankle, _ in sk.FOOT_LIMBS)


@dataclass(frozen=True)
class RenderStyle:
    """What to draw and how thick, for one image size."""

    stick_width: int
    joint_radius: int
    hand_line: int
    hand_radius: int
    face_radius: int
    hands: bool = True
    face: bool = True
    feet: bool = False
    min_confidence: float = 0.0

    @classmethod
    def for_size(cls, width: int, height: int, **options: object) -> "RenderStyle":
        """OpenPose's widths (4, 4, 2, 4, 3 pixels at 512) scaled by the shorter side."""
        scale = min(width, height) / REFERENCE_SIDE
        size = lambda pixels: max(1, int(round(pixels * scale)))  # noqa: E731
        return cls(size(4), size(4), size(2), size(4), size(3), **options)


def _limb(canvas: np.ndarray, a: list[float], b: list[float], width: int, color: tuple[int, ...]) -> None:
    """A limb as the filled ellipse OpenPose draws between two joints."""
    length = math.hypot(a[0] - b[0], a[1] - b[1])
    angle = math.degrees(math.atan2(a[1] - b[1], a[0] - b[0]))
    centre = (int((a[0] + b[0]) / 2), int((a[1] + b[1]) / 2))
    polygon = cv2.ellipse2Poly(centre, (int(length / 2), width), int(angle), 0, 360, 1)
    cv2.fillConvexPoly(canvas, polygon, color)


def draw_person(canvas: np.ndarray, person: np.ndarray, style: RenderStyle) -> None:
    """Draw one person's ``[K, 3]`` pixel keypoints onto ``canvas`` (uint8 RGB, modified in place)."""
    visible = ((person[:, 2] > 0) & (person[:, 2] >= style.min_confidence)).tolist()
    points = person[:, :2].tolist()
    pixel = [(int(x), int(y)) for x, y in points]
    for (a, b), color in zip(sk.BODY_LIMBS, BODY_LIMB_COLORS):
        if visible[a] and visible[b]:
            _limb(canvas, points[a], points[b], style.stick_width, color)
    if style.feet:
        for (a, b), color in zip(sk.FOOT_LIMBS, FOOT_COLORS):
            if visible[a] and visible[b]:
                _limb(canvas, points[a], points[b], style.stick_width, color)
    for joint, color in enumerate(BODY_JOINT_COLORS):
        if visible[joint]:
            cv2.circle(canvas, pixel[joint], style.joint_radius, color, thickness=-1)
    if style.hands:
        for hand in (sk.LEFT_HAND, sk.RIGHT_HAND):
            for (a, b), color in zip(sk.HAND_EDGES, HAND_EDGE_COLORS):
                if visible[hand.start + a] and visible[hand.start + b]:
                    cv2.line(canvas, pixel[hand.start + a], pixel[hand.start + b], color, style.hand_line)
            for joint in range(hand.start, hand.stop):
                if visible[joint]:
                    cv2.circle(canvas, pixel[joint], style.hand_radius, HAND_POINT_COLOR, thickness=-1)
    if style.face:
        for joint in range(sk.FACE.start, sk.FACE.stop):
            if visible[joint]:
                cv2.circle(canvas, pixel[joint], style.face_radius, FACE_POINT_COLOR, thickness=-1)


def render_poses(poses: PoseSequence, width: int | None = None, height: int | None = None,
                 hands: bool = True, face: bool = True, feet: bool = False, min_confidence: float = 0.0,
                 progress: ProgressHook | None = None) -> np.ndarray:
    """Skeleton images, uint8 ``[T, height, width, 3]``, one per frame (black where nobody is).

    The size defaults to the poses' canvas; another size scales x and y independently (fit the
    poses first with ``augment.normalize_to_panel`` to keep proportions).
    """
    width = poses.width if width is None else width
    height = poses.height if height is None else height
    if width < 1 or height < 1:
        raise DreamActorError(f"render size must be positive, got {width}x{height}")
    if not poses.frames:
        raise DreamActorError("poses: no frames to render")
    style = RenderStyle.for_size(width, height, hands=hands, face=face, feet=feet, min_confidence=min_confidence)
    scale = np.array([width / poses.width, height / poses.height, 1.0])
    images = np.zeros((len(poses), height, width, 3), dtype=np.uint8)
    for index, frame in enumerate(poses.frames):
        for person in frame * scale:
            draw_person(images[index], person, style)
        report(progress, index + 1, len(poses))
    return images
