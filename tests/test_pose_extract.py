"""The extraction loop, backend-independent: frame validation, frame count kept, progress and
interruption, clean-up of detector output, and that the runtimes are imported only when used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pose_samples import standing_person

from dreamactor_core.errors import DreamActorError
from dreamactor_core.pose import skeleton as sk
from dreamactor_core.pose.extract import clean_people, extract_poses, make_estimator

REPO = Path(__file__).resolve().parents[1]


class FakeEstimator:
    """Finds one standing person in frames whose mean is bright, nobody otherwise; records its calls."""

    description = "fake"

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []
        self.closed = False

    def __call__(self, image: np.ndarray) -> np.ndarray:
        self.seen.append(image)
        if image.mean() < 128:
            return np.zeros((0, sk.NUM_KEYPOINTS, 3))
        height, width = image.shape[:2]
        return standing_person(0.1 * width, 0.05 * height, 0.8 * min(width, height))[None]

    def close(self) -> None:
        self.closed = True


def test_comfy_image_batch_in_frame_count_out_with_empty_frames_kept():
    frames = torch.zeros((5, 64, 48, 3))
    frames[[1, 3]] = 1.0
    estimator = FakeEstimator()
    poses = extract_poses(frames, estimator)
    assert [len(frame) for frame in poses.frames] == [0, 1, 0, 1, 0]
    assert (poses.width, poses.height) == (48, 64)
    assert all(image.dtype == np.uint8 and image.shape == (64, 48, 3) for image in estimator.seen)
    assert estimator.seen[1].min() == 255 and estimator.closed


def test_grey_and_rgba_frames_become_rgb():
    estimator = FakeEstimator()
    extract_poses([np.full((8, 8), 255, np.uint8), np.full((8, 8, 4), 255, np.uint8)], estimator)
    assert [image.shape for image in estimator.seen] == [(8, 8, 3), (8, 8, 3)]


def test_progress_per_frame_and_interrupt_still_closes_the_estimator():
    seen, estimator = [], FakeEstimator()
    extract_poses(torch.ones((3, 8, 8, 3)), estimator, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    estimator = FakeEstimator()
    with pytest.raises(KeyboardInterrupt):
        extract_poses(torch.ones((3, 8, 8, 3)), estimator, progress=interrupt)
    assert estimator.closed and len(estimator.seen) == 1


@pytest.mark.parametrize(("frames", "message"), [
    (torch.zeros((0, 64, 64, 3)), "the batch is empty"),
    ([], "the batch is empty"),
    ([np.zeros((64, 64, 3)), np.zeros((32, 64, 3))], "frame 1 is 64x32 but frame 0 is 64x64"),
    ([np.zeros((64, 64, 2))], "expected \\[H, W, 3\\]"),
    (torch.zeros((1, 0, 64, 3)), "is empty"),
])
def test_bad_frame_batches_are_clear_errors(frames, message):
    estimator = FakeEstimator()
    with pytest.raises(DreamActorError, match=message):
        extract_poses(frames, estimator)
    assert estimator.closed


def test_clean_people_drops_unsure_and_off_frame_points_and_empty_people():
    people = np.zeros((3, sk.NUM_KEYPOINTS, 3))
    people[0, 0] = (10, 10, 0.9)
    people[0, 1] = (10, 10, 0.2)  # unsure
    people[0, 2] = (-3, 10, 0.9)  # left of the frame
    people[0, 3] = (10, 41, 0.9)  # below the frame
    people[1, 0] = (5, 5, 0.1)  # a "person" of one unsure point
    cleaned = clean_people(people, 40, 40, min_confidence=0.3)
    assert len(cleaned) == 1
    assert (cleaned[0, :, 2] > 0).sum() == 1
    np.testing.assert_array_equal(cleaned[0, 1:4], 0.0)


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(DreamActorError, match="pose backend must be one of mediapipe, dwpose, openpose"):
        make_estimator("openpifpaf")


def _imported_after(modules: str) -> set[str]:
    code = (f"import sys\nimport {modules}\n"
            "print(','.join(m for m in ('mediapipe', 'onnxruntime', 'controlnet_aux', 'cv2', 'comfy', 'folder_paths')"
            " if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return set(filter(None, result.stdout.strip().split(",")))


def test_pose_modules_import_no_runtime_until_a_backend_is_used():
    assert _imported_after("dreamactor_core.pose.types, dreamactor_core.pose.augment, dreamactor_core.pose.render, "
                           "dreamactor_core.pose.extract") == set()
    # backend modules load their runtime only when an estimator is made
    assert _imported_after("dreamactor_core.pose.extract_mediapipe, dreamactor_core.pose.extract_openpose") == set()
