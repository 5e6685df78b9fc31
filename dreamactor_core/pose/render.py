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

import numpy as np
import torch

from ..errors import DreamActorError
from ..progress import ProgressHook, report
from . import skeleton as sk
from .types import PoseSequence

REFERENCE_SIDE = 512  # the resolution OpenPose's standard widths were chosen for
LIMB_BRIGHTNESS = 0.6
SHIN_OF_ANKLE = {ankle: sk.BODY_LIMBS.index((ankle - 1, ankle)) for ankle in (sk.JOINT["right_ankle"], sk.JOINT["left_ankle"])}
Color = tuple[float, float, float]


@dataclass(frozen=True)
class Palette:
    """The standard OpenPose colours in one pixel scale (255 for uint8 canvases, 1 for float ones), so
    float images are drawn directly instead of drawn in uint8 and converted."""

    limbs: tuple[Color, ...]
    joints: tuple[Color, ...]
    feet: tuple[Color, ...]  # a foot takes its shin's colour
    hand_edges: tuple[Color, ...]
    hand_point: Color
    face_point: Color

    @classmethod
    def scaled(cls, white: float) -> "Palette":
        def scale(color: tuple[int, ...]) -> Color:
            return tuple(channel * white / 255 for channel in color) if white != 255 else tuple(color)

        limbs = tuple(tuple(int(c * LIMB_BRIGHTNESS) for c in color) for color in sk.BODY_COLORS.tolist())
        hand_edges = tuple(tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(i / len(sk.HAND_EDGES), 1.0, 1.0))
                           for i in range(len(sk.HAND_EDGES)))
        return cls(
            limbs=tuple(map(scale, limbs)),
            joints=tuple(map(scale, sk.BODY_COLORS.tolist())),
            feet=tuple(scale(limbs[SHIN_OF_ANKLE[ankle]]) for ankle, _ in sk.FOOT_LIMBS),
            hand_edges=tuple(map(scale, hand_edges)),
            hand_point=scale((0, 0, 255)),
            face_point=scale((255, 255, 255)),
        )


UINT8_PALETTE = Palette.scaled(255)
FLOAT_PALETTE = Palette.scaled(1.0)


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
    palette: Palette = UINT8_PALETTE

    @classmethod
    def for_size(cls, width: int, height: int, **options: object) -> "RenderStyle":
        """OpenPose's widths (4, 4, 2, 4, 3 pixels at 512) scaled by the shorter side."""
        scale = min(width, height) / REFERENCE_SIDE
        size = lambda pixels: max(1, int(round(pixels * scale)))  # noqa: E731
        return cls(size(4), size(4), size(2), size(4), size(3), **options)


def _limb(canvas: np.ndarray, a: list[float], b: list[float], width: int, color: Color) -> None:
    """A limb as the filled ellipse OpenPose draws between two joints."""
    import cv2
    length = math.hypot(a[0] - b[0], a[1] - b[1])
    angle = math.degrees(math.atan2(a[1] - b[1], a[0] - b[0]))
    centre = (int((a[0] + b[0]) / 2), int((a[1] + b[1]) / 2))
    polygon = cv2.ellipse2Poly(centre, (int(length / 2), width), int(angle), 0, 360, 1)
    cv2.fillConvexPoly(canvas, polygon, color)


def draw_person(canvas: np.ndarray, person: np.ndarray, style: RenderStyle) -> None:
    """Draw one person's ``[K, 3]`` pixel keypoints onto ``canvas`` (RGB in the style palette's
    scale, modified in place)."""
    import cv2  # on first draw, not at pack load (ComfyUI starts faster without OpenCV)

    palette = style.palette
    visible = ((person[:, 2] > 0) & (person[:, 2] >= style.min_confidence)).tolist()
    points = person[:, :2].tolist()
    pixel = [(int(x), int(y)) for x, y in points]
    for (a, b), color in zip(sk.BODY_LIMBS, palette.limbs):
        if visible[a] and visible[b]:
            _limb(canvas, points[a], points[b], style.stick_width, color)
    if style.feet:
        for (a, b), color in zip(sk.FOOT_LIMBS, palette.feet):
            if visible[a] and visible[b]:
                _limb(canvas, points[a], points[b], style.stick_width, color)
    for joint, color in enumerate(palette.joints):
        if visible[joint]:
            cv2.circle(canvas, pixel[joint], style.joint_radius, color, thickness=-1)
    if style.hands:
        for hand in (sk.LEFT_HAND, sk.RIGHT_HAND):
            for (a, b), color in zip(sk.HAND_EDGES, palette.hand_edges):
                if visible[hand.start + a] and visible[hand.start + b]:
                    cv2.line(canvas, pixel[hand.start + a], pixel[hand.start + b], color, style.hand_line)
            for joint in range(hand.start, hand.stop):
                if visible[joint]:
                    cv2.circle(canvas, pixel[joint], style.hand_radius, palette.hand_point, thickness=-1)
    if style.face:
        for joint in range(sk.FACE.start, sk.FACE.stop):
            if visible[joint]:
                cv2.circle(canvas, pixel[joint], style.face_radius, palette.face_point, thickness=-1)


def draw_poses(poses: PoseSequence, width: int | None = None, height: int | None = None,
               hands: bool = True, face: bool = True, feet: bool = False, min_confidence: float = 0.0,
               progress: ProgressHook | None = None, as_float: bool = False) -> np.ndarray:
    """Skeleton images ``[T, height, width, 3]``, one per frame (black where nobody is): uint8, or
    float32 in 0..1 with ``as_float`` (the same pixels divided by 255).

    The size defaults to the poses' canvas; another size scales x and y independently (fit the
    poses first with ``augment.normalize_to_panel`` to keep proportions).
    """
    width = poses.width if width is None else width
    height = poses.height if height is None else height
    if width < 1 or height < 1:
        raise DreamActorError(f"render size must be positive, got {width}x{height}")
    if not poses.frames:
        raise DreamActorError("poses: no frames to render")
    style = RenderStyle.for_size(width, height, hands=hands, face=face, feet=feet, min_confidence=min_confidence,
                                 palette=FLOAT_PALETTE if as_float else UINT8_PALETTE)
    scale = np.array([width / poses.width, height / poses.height, 1.0])
    images = np.zeros((len(poses), height, width, 3), dtype=np.float32 if as_float else np.uint8)
    for index, frame in enumerate(poses.frames):
        for person in frame * scale:
            draw_person(images[index], person, style)
        report(progress, index + 1, len(poses))
    return images


def render_poses(poses: PoseSequence, width: int | None = None, height: int | None = None,
                 hands: bool = True, face: bool = True, feet: bool = False, min_confidence: float = 0.0,
                 progress: ProgressHook | None = None) -> torch.Tensor:
    """``draw_poses`` in the engine's frame layout: float ``[T, H, W, 3]`` in 0..1 (ComfyUI's IMAGE)."""
    return torch.from_numpy(draw_poses(poses, width, height, hands, face, feet, min_confidence, progress, as_float=True))
