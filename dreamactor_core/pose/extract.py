"""Pose extraction over a clip: frame validation, the per-frame loop with progress, and clean-up of
what the backends return, so every backend yields the same kind of ``PoseSequence``.

A backend is a ``PoseEstimator``: it takes one uint8 RGB frame and returns ``[people, K, 3]``
pixel keypoints in the pack layout (``skeleton``). Runtimes are imported by the backend modules only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, Protocol

import numpy as np
import torch

from ..errors import DreamActorError
from ..progress import ProgressHook, report
from .track import track_people
from .types import PoseSequence

Backend = Literal["mediapipe", "dwpose", "openpose", "mediapipe_multi"]
# "mediapipe_multi" came last, so the node's list keeps its older order.
BACKENDS: tuple[str, ...] = ("mediapipe", "dwpose", "openpose", "mediapipe_multi")
# Backends that find several people per frame (MediaPipe Holistic alone follows one person;
# "mediapipe_multi" runs it on each person a people detector boxes): their clips are tracked
# (``track.track_people``) so that a row of every frame is one person throughout.
MULTI_PERSON_BACKENDS: tuple[str, ...] = ("dwpose", "openpose", "mediapipe_multi")
# Backends that need no weight files (nothing to search for).
OFFLINE_BACKENDS: tuple[str, ...] = ("mediapipe", "mediapipe_multi")


class PoseEstimator(Protocol):
    """One frame in (uint8 RGB ``[H, W, 3]``), everyone's keypoints out (``[P, K, 3]``, pixels)."""

    description: str  # backend and device, for logs and the node's report

    def __call__(self, image: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


Frames = torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray]


def _as_uint8_rgb(frame: torch.Tensor | np.ndarray, index: int) -> np.ndarray:
    array = frame.detach().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise DreamActorError(f"frames: frame {index} has shape {array.shape}, expected [H, W, 3] (or 1 or 4 channels)")
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array.astype(np.float32) * 255), 0, 255).astype(np.uint8)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[..., :3])


def validate_frames(frames: Frames) -> tuple[int, int, int]:
    """Check a frame batch and return (count, height, width).

    Accepts ComfyUI's IMAGE (float ``[T, H, W, C]`` in 0..1), uint8 arrays, or a list of frames;
    every frame must have the first one's size (resize before extracting, one clip has one canvas).
    """
    count = len(frames)
    if count == 0:
        raise DreamActorError("frames: the batch is empty, expected at least one image")
    sizes = [tuple(frame.shape[:2]) for frame in frames]
    odd = next((i for i, size in enumerate(sizes) if size != sizes[0]), None)
    if odd is not None:
        raise DreamActorError(f"frames: frame {odd} is {sizes[odd][1]}x{sizes[odd][0]} but frame 0 is "
                              f"{sizes[0][1]}x{sizes[0][0]}; resize them to one size first")
    if min(sizes[0]) < 1:
        raise DreamActorError(f"frames: frame size {sizes[0][1]}x{sizes[0][0]} is empty")
    return count, sizes[0][0], sizes[0][1]


def clean_people(people: np.ndarray, width: int, height: int, min_confidence: float) -> np.ndarray:
    """Drop points below ``min_confidence`` or outside the frame (detectors extrapolate there), then
    people left with no point. Dropped points become 0, 0, 0: missing, never guessed."""
    people = people.astype(np.float64, copy=True)
    x, y, confidence = people[..., 0], people[..., 1], people[..., 2]
    keep = (confidence > 0) & (confidence >= min_confidence) & (x >= 0) & (y >= 0) & (x <= width) & (y <= height)
    people[~keep] = 0.0
    return people[keep.any(axis=1)]


def extract_poses(frames: Frames, estimator: PoseEstimator, min_confidence: float = 0.3,
                  progress: ProgressHook | None = None, track: bool = False) -> PoseSequence:
    """Run ``estimator`` on every frame. Frames with nobody stay as empty frames, so the sequence
    has exactly as many frames as the input. The estimator is closed afterwards, also on interrupt.
    ``track``: reorder each frame's people by person id (``track.track_people``)."""
    try:
        validate_frames(frames)
    except DreamActorError:
        estimator.close()
        raise
    return extract_pose_chunks([frames], estimator, min_confidence, progress, track, total=len(frames))


def extract_pose_chunks(chunks: Iterable[Frames], estimator: PoseEstimator, min_confidence: float = 0.3,
                        progress: ProgressHook | None = None, track: bool = False,
                        total: int | None = None) -> PoseSequence:
    """``extract_poses`` over frame batches arriving one after another (a video decoded in chunks),
    so the frames of a long clip never sit in memory together; every frame must have the first's size.
    ``total``: the frame count for ``progress``, when known."""
    results, size = [], None
    try:
        for chunk in chunks:
            count, height, width = validate_frames(chunk)
            if size is None:
                size = (height, width)
            elif size != (height, width):
                raise DreamActorError(f"frames: frame {len(results)} is {width}x{height} but frame 0 is "
                                      f"{size[1]}x{size[0]}; resize them to one size first")
            for index in range(count):
                image = _as_uint8_rgb(chunk[index], len(results))
                results.append(clean_people(estimator(image), width, height, min_confidence))
                report(progress, len(results), total or len(results))
    finally:
        estimator.close()
    if size is None:
        raise DreamActorError("frames: the batch is empty, expected at least one image")
    poses = PoseSequence(tuple(results), size[1], size[0])
    return track_people(poses) if track else poses


def make_estimator(backend: Backend, model_dirs: Iterable[str] = (), video: bool = True) -> PoseEstimator:
    """The estimator for ``backend``; ``model_dirs`` are searched for weight files, ``video`` lets
    trackers use the previous frame (not "mediapipe_multi", whose crops are still images)."""
    if backend == "mediapipe":
        from .extract_mediapipe import MediaPipeHolistic

        return MediaPipeHolistic(video=video)
    if backend == "mediapipe_multi":
        from .extract_mediapipe_multi import MediaPipeMultiPerson

        return MediaPipeMultiPerson()
    if backend == "dwpose":
        from .extract_dwpose import DWPose

        return DWPose.from_dirs(model_dirs)
    if backend == "openpose":
        from .extract_openpose import OpenPose

        return OpenPose.from_dirs(model_dirs)
    raise DreamActorError(f"pose backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
