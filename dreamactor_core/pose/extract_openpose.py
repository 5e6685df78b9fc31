"""controlnet-aux's ``OpenposeDetector`` (the CMU OpenPose body, hand and face networks in PyTorch) as
a pose backend, from local ``lllyasviel/Annotators`` weights: body_pose_model.pth,
hand_pose_model.pth, facenet.pth. Multi-person; BODY_18 with hands and the 70-point face.

Importing controlnet_aux loads all of its annotators (~5 s), so it happens only when this backend
is chosen. Its face peaks skip parts it cannot find, which loses their identities; a face is only
kept when every part was found (70 landmarks, plus the background map it also reports).

controlnet_aux's ``Body``, ``Hand`` and ``Face`` read their ``.pth`` files with torch's loader and
no ``weights_only`` argument, which unpickles arbitrary code wherever torch's default is not weights-only
(torch < 2.6, or TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD set). While the pack builds them, those three
modules see a ``torch`` whose ``load`` always passes ``weights_only=True``; a file holding anything
but tensors is refused with a clear error.
"""

from __future__ import annotations

import pickle
import threading
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DreamActorError
from . import skeleton as sk
from .model_files import ANNOTATORS_LAYOUT, find_model_file

BODY_FILE = "body_pose_model.pth"
HAND_FILE = "hand_pose_model.pth"
FACE_FILE = "facenet.pth"


def _points(keypoints: Sequence | None, width: int, height: int) -> np.ndarray:
    """controlnet_aux keypoints (normalized, None or negative when missing) as ``[N, 3]`` pixels."""
    if keypoints is None:
        return np.zeros((0, 3))
    rows = [(k.x * width, k.y * height, k.score) if k is not None and k.x >= 0 and k.y >= 0 else (0.0, 0.0, 0.0)
            for k in keypoints]
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def people_from_pose_results(results: Sequence, width: int, height: int) -> np.ndarray:
    """controlnet_aux ``PoseResult``s to ``[P, K, 3]`` pixel keypoints in the pack layout."""
    people = np.zeros((len(results), sk.NUM_KEYPOINTS, 3))
    for person, result in zip(people, results):
        person[sk.BODY] = _points(result.body.keypoints, width, height)
        for hand, part in ((result.left_hand, sk.LEFT_HAND), (result.right_hand, sk.RIGHT_HAND)):
            points = _points(hand, width, height)
            if len(points) == sk.HAND_POINTS:
                person[part] = points
        face = _points(result.face, width, height)
        if len(face) >= sk.FACE_POINTS:  # 70 landmarks then the background map
            person[sk.FACE] = face[:sk.FACE_POINTS]
    return people


_PATCH_LOCK = threading.Lock()


class _WeightsOnlyTorch(types.ModuleType):
    """``torch`` as controlnet_aux's loader modules see it while the pack builds them: everything is
    torch's own except ``load``, which always passes ``weights_only=True``."""

    def __init__(self, torch: types.ModuleType) -> None:
        super().__init__("torch")
        self._torch = torch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._torch, name)

    def load(self, f: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("weights_only", None)  # whatever the caller asked, never unpickle
        return self._torch.load(f, *args, weights_only=True, **kwargs)


@contextmanager
def weights_only_loads(modules: Sequence[types.ModuleType]) -> Iterator[None]:
    """Within the block, ``torch.load`` called from ``modules`` is weights-only (module doc)."""
    import torch

    with _PATCH_LOCK:
        saved = [module.torch for module in modules]
        try:
            for module in modules:
                module.torch = _WeightsOnlyTorch(torch)
            yield
        finally:
            for module, original in zip(modules, saved):
                module.torch = original


def _build(cls: Callable[[str], Any], path: str | Path) -> Any:
    try:
        return cls(str(path))
    except pickle.UnpicklingError as error:
        raise DreamActorError(f"OpenPose file '{path}' holds more than tensors (pickled objects), refused: only "
                              f"weights are loaded (weights_only=True). Use the lllyasviel/Annotators file. "
                              f"({str(error).splitlines()[0]})") from None


class OpenPose:
    """A ``PoseEstimator`` over controlnet-aux's OpenposeDetector (every person, hands and face)."""

    def __init__(self, body_path: str | Path, hand_path: str | Path, face_path: str | Path) -> None:
        import torch
        from controlnet_aux.open_pose import Body, Face, Hand, OpenposeDetector, body, face, hand

        device = "cuda" if torch.cuda.is_available() else "cpu"
        with weights_only_loads((body, hand, face)):
            networks = _build(Body, body_path), _build(Hand, hand_path), _build(Face, face_path)
        self._detector = OpenposeDetector(*networks).to(device)
        self.description = f"controlnet-aux openpose (torch, {device})"

    @classmethod
    def from_dirs(cls, search_dirs: Iterable[str | Path]) -> "OpenPose":
        """Load the three files from the first folders that have them (see ``model_files``)."""
        dirs = list(search_dirs)
        return cls(*(find_model_file(name, dirs, ANNOTATORS_LAYOUT) for name in (BODY_FILE, HAND_FILE, FACE_FILE)))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        results = self._detector.detect_poses(image, include_hand=True, include_face=True)
        return people_from_pose_results(results, width, height)

    def close(self) -> None:
        """The networks are freed with the detector; nothing to release early."""
