"""DWPose whole-body estimation (133 COCO-WholeBody points per person) from its two ONNX files,
run with onnxruntime: ``yolox_l.onnx`` finds people, ``dw-ll_ucoco_384.onnx`` (RTMPose with SimCC
heads) places each person's keypoints.

controlnet-aux 0.0.10's ``DWposeDetector`` is the mmpose variant (mmcv/mmdet/mmpose do not build
here), so the pre- and post-processing of the ONNX release is written here, following DWPose's own
onnx runner: letterbox to 640, YOLOX grid decoding and person NMS (OpenCV's), an affine crop per
person with 1.25 padding at the pose model's aspect, SimCC arg-max decoding back through the crop.
Frames are fed as RGB, as DWPose does.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from . import skeleton as sk
from .model_files import DWPOSE_LAYOUT, find_model_file
from .types import from_coco_wholebody

DETECTOR_FILE = "yolox_l.onnx"
POSE_FILE = "dw-ll_ucoco_384.onnx"

DETECTOR_SIZE = (640, 640)  # height, width
YOLOX_STRIDES = (8, 16, 32)
LETTERBOX_FILL = 114
PERSON_CLASS = 0
PERSON_SCORE = 0.3
NMS_IOU = 0.45
POSE_SIZE = (288, 384)  # width, height of the pose model's input
CROP_PADDING = 1.25
SIMCC_SPLIT = 2.0
PIXEL_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
PIXEL_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)


# --- detector ----------------------------------------------------------------------------------------
def letterbox(image: np.ndarray, size: tuple[int, int] = DETECTOR_SIZE) -> tuple[np.ndarray, float]:
    """Resize keeping aspect into the top-left of a grey ``size`` canvas; returns NCHW float32 and the ratio."""
    height, width = image.shape[:2]
    ratio = min(size[0] / height, size[1] / width)
    resized = cv2.resize(image, (int(width * ratio), int(height * ratio)), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((*size, 3), LETTERBOX_FILL, dtype=np.uint8)
    canvas[:resized.shape[0], :resized.shape[1]] = resized
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32), ratio


def _yolox_grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Anchor cell offsets ``[A, 2]`` and strides ``[A, 1]`` of YOLOX's three output levels."""
    grids, strides = [], []
    for stride in YOLOX_STRIDES:
        xs, ys = np.meshgrid(np.arange(size[1] // stride), np.arange(size[0] // stride))
        grids.append(np.stack((xs, ys), axis=2).reshape(-1, 2))
        strides.append(np.full((grids[-1].shape[0], 1), stride))
    return np.concatenate(grids), np.concatenate(strides)


def decode_people(output: np.ndarray, ratio: float, size: tuple[int, int] = DETECTOR_SIZE) -> np.ndarray:
    """YOLOX raw output ``[1, A, 5 + classes]`` to person boxes ``[M, 4]`` (x0, y0, x1, y1, image pixels)
    after score filtering and non-maximum suppression."""
    predictions = output[0].astype(np.float64)
    grid, strides = _yolox_grid(size)
    centres = (predictions[:, :2] + grid) * strides
    sizes = np.exp(np.minimum(predictions[:, 2:4], 20.0)) * strides
    scores = predictions[:, 4] * predictions[:, 5 + PERSON_CLASS]
    corners = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1) / ratio
    candidates = scores > PERSON_SCORE
    corners, scores = corners[candidates], scores[candidates]
    if not len(corners):
        return np.zeros((0, 4))
    xywh = np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), PERSON_SCORE, NMS_IOU)
    return corners[np.asarray(keep, dtype=int).reshape(-1)]


# --- pose model ---------------------------------------------------------------------------------------
def crop_transform(box: np.ndarray, size: tuple[int, int] = POSE_SIZE) -> np.ndarray:
    """The 2x3 affine matrix from image pixels to the pose model's input for one person box: the box
    padded by 1.25 and widened or heightened to the input's aspect, centred."""
    centre = (box[:2] + box[2:]) / 2
    box_width, box_height = (box[2:] - box[:2]) * CROP_PADDING
    aspect = size[0] / size[1]
    box_width = max(box_width, box_height * aspect)
    scale = size[0] / max(box_width, 1e-6)
    return np.array([[scale, 0.0, size[0] / 2 - scale * centre[0]],
                     [0.0, scale, size[1] / 2 - scale * centre[1]]])


def crop_person(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int] = POSE_SIZE) -> np.ndarray:
    """The normalized NCHW float32 crop the pose model takes."""
    crop = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR).astype(np.float32)
    crop = (crop - PIXEL_MEAN) / PIXEL_STD
    return np.ascontiguousarray(crop.transpose(2, 0, 1)[None])


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """SimCC outputs ``[1, K, bins]`` to ``[K, 3]`` image x, y, confidence: arg-max per axis, the
    lower of the two maxima as confidence, mapped back through the crop transform."""
    x_bins, y_bins = simcc_x[0], simcc_y[0]
    crop_points = np.stack([x_bins.argmax(axis=1), y_bins.argmax(axis=1)], axis=1) / SIMCC_SPLIT
    confidence = np.minimum(x_bins.max(axis=1), y_bins.max(axis=1))
    inverse = cv2.invertAffineTransform(matrix)
    points = crop_points @ inverse[:, :2].T + inverse[:, 2]
    keypoints = np.concatenate([points, np.clip(confidence, 0.0, 1.0)[:, None]], axis=1)
    keypoints[confidence <= 0] = 0.0
    return keypoints


def _providers() -> list[str]:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available] or available


class DWPose:
    """A ``PoseEstimator`` over the two DWPose ONNX files (every person in the frame)."""

    def __init__(self, detector_path: str | Path, pose_path: str | Path) -> None:
        import onnxruntime

        providers = _providers()
        self._detector = onnxruntime.InferenceSession(str(detector_path), providers=providers)
        self._pose = onnxruntime.InferenceSession(str(pose_path), providers=providers)
        used = self._pose.get_providers()[0].replace("ExecutionProvider", "")
        self.description = f"dwpose onnxruntime ({used})"

    @classmethod
    def from_dirs(cls, search_dirs: Iterable[str | Path]) -> "DWPose":
        """Load both files from the first folders that have them (see ``model_files``)."""
        dirs = list(search_dirs)
        return cls(find_model_file(DETECTOR_FILE, dirs, DWPOSE_LAYOUT), find_model_file(POSE_FILE, dirs, DWPOSE_LAYOUT))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        batch, ratio = letterbox(image)
        detector_input = self._detector.get_inputs()[0].name
        boxes = decode_people(self._detector.run(None, {detector_input: batch})[0], ratio)
        pose_input = self._pose.get_inputs()[0].name
        people = []
        for box in boxes:
            matrix = crop_transform(box)
            simcc_x, simcc_y = self._pose.run(None, {pose_input: crop_person(image, matrix)})[:2]
            people.append(decode_simcc(simcc_x, simcc_y, matrix))
        if not people:
            return np.zeros((0, sk.NUM_KEYPOINTS, 3))
        return from_coco_wholebody(np.stack(people))

    def close(self) -> None:
        """Sessions free themselves when dropped; nothing to release early."""
