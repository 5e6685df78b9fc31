"""Where the people are: boxes from OpenCV's built-in HOG people detector, and the square crops a
single-person estimator runs on, with the mapping of crop pixels back to frame pixels.

Why HOG: it is in every OpenCV build (the SVM weights are compiled in), so it finds several people
offline with nothing to download, which lets MediaPipe Holistic (one person per image) serve every
person top-down, one crop each. Its limits: it was trained on upright, whole pedestrians at least
about 100 px tall (the frame is enlarged 1.5x for smaller ones: 4.6 people a frame found on
vtest.avi against 2.6 unenlarged), so seated, partial or lying people are often missed. Most of its
false boxes cost one pose run that finds nobody.
cv2 (a dependency of mediapipe and controlnet-aux) is imported only when a detector is made.
"""

from __future__ import annotations

import numpy as np

from .track import Box


class HogPeopleDetector:
    """People boxes ``(x0, y0, x1, y1)`` in frame pixels, most confident first.

    ``upscale``: the frame is enlarged by this factor first (HOG's window is 64 x 128 px, so people
    shorter than about ``128 / upscale`` px are not seen). ``min_score``: the SVM margin a window
    needs. ``overlap``: boxes overlapping a more confident one by more than this IoU are dropped.
    """

    def __init__(self, upscale: float = 1.5, min_score: float = 0.3, overlap: float = 0.4) -> None:
        import cv2

        self._cv2 = cv2
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.upscale, self.min_score, self.overlap = upscale, min_score, overlap

    def __call__(self, image: np.ndarray) -> list[Box]:
        cv2 = self._cv2
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if self.upscale != 1.0:
            gray = cv2.resize(gray, None, fx=self.upscale, fy=self.upscale, interpolation=cv2.INTER_LINEAR)
        if min(gray.shape) < 128:  # smaller than one detection window
            return []
        rects, scores = self._hog.detectMultiScale(gray, winStride=(8, 8), padding=(8, 8), scale=1.05)
        if not len(rects):
            return []
        rects = [[float(v) for v in rect] for rect in rects]
        scores = [float(score) for score in np.ravel(scores)]
        keep = cv2.dnn.NMSBoxes(rects, scores, self.min_score, self.overlap)
        order = sorted(np.ravel(keep).tolist(), key=lambda i: -scores[i])
        return [tuple(v / self.upscale for v in (x, y, x + w, y + h)) for x, y, w, h in (rects[i] for i in order)]


def crop_window(box: Box, pad: float) -> tuple[float, float, float]:
    """The square around ``box`` grown by ``pad`` of its longer side on every side, as ``(x0, y0,
    side)`` in frame pixels (it may reach past the frame: the crop is filled with black there)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * pad)
    return (x0 + x1 - side) / 2, (y0 + y1 - side) / 2, side


def crop_square(image: np.ndarray, window: tuple[float, float, float], size: int,
                keep: Box | None = None) -> np.ndarray:
    """The ``window`` of ``image`` resampled to ``size`` x ``size`` pixels; with ``keep`` (frame
    pixels), black outside that box, so that a neighbour reaching into the square is not the one
    found (on vtest.avi an unmasked crop of a woman walking beside a man gave the man)."""
    import cv2

    x0, y0, side = window
    scale = size / side
    matrix = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]])
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    if keep is not None:
        left, top = (max(0, int(np.floor((v - o) * scale))) for v, o in zip(keep[:2], (x0, y0)))
        right, bottom = (min(size, int(np.ceil((v - o) * scale))) for v, o in zip(keep[2:], (x0, y0)))
        masked = np.zeros_like(crop)
        masked[top:bottom, left:right] = crop[top:bottom, left:right]
        crop = masked
    return crop


def crop_to_frame(points: np.ndarray, window: tuple[float, float, float], size: int) -> np.ndarray:
    """Keypoints ``[..., 3]`` in the pixels of a ``size`` crop of ``window`` moved to frame pixels
    (missing points, confidence 0, stay 0, 0, 0)."""
    x0, y0, side = window
    mapped = points.astype(np.float64, copy=True)
    mapped[..., :2] = mapped[..., :2] * (side / size) + (x0, y0)
    mapped[mapped[..., 2] <= 0] = 0.0
    return mapped
