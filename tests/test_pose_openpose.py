"""The controlnet-aux OpenposeDetector backend: its results map into the pack layout (checked on
controlnet_aux's own result types), and its three files are found or named when missing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from dreamactor_core.errors import DreamActorError, MissingModelFile
from dreamactor_core.pose import skeleton as sk
from dreamactor_core.pose.extract import extract_poses
from dreamactor_core.pose.extract_openpose import BODY_FILE, FACE_FILE, HAND_FILE, OpenPose, people_from_pose_results
from dreamactor_core.pose.model_files import ANNOTATORS_LAYOUT, find_model_file

pytestmark = pytest.mark.slow  # importing controlnet_aux takes ~5 s


def test_pose_results_map_to_pixels_with_missing_points_missing():
    from controlnet_aux.open_pose import BodyResult, Keypoint, PoseResult

    body = [Keypoint(0.5, 0.25, 0.9)] + [None] * 16 + [Keypoint(0.1, 0.2, 0.7)]
    left = [Keypoint(0.3, 0.6)] * 20 + [Keypoint(-1 / 200, -1 / 100)]  # controlnet_aux marks misses with -1
    face_all = [Keypoint(0.5, 0.2)] * 71  # 70 landmarks and the background map
    face_partial = [Keypoint(0.5, 0.2)] * 60  # parts skipped: identities unknown
    results = [PoseResult(BodyResult(body, 1.0, 2), left, None, face_all),
               PoseResult(BodyResult(body, 1.0, 2), None, None, face_partial)]
    people = people_from_pose_results(results, 200, 100)
    assert people.shape == (2, sk.NUM_KEYPOINTS, 3)
    np.testing.assert_allclose(people[0, sk.JOINT["nose"]], [100, 25, 0.9])
    np.testing.assert_allclose(people[0, sk.JOINT["left_ear"]], [20, 20, 0.7])
    assert (people[0, 1:17] == 0).all()
    np.testing.assert_allclose(people[0, sk.LEFT_HAND.start], [60, 60, 1.0])
    assert (people[0, sk.LEFT_HAND.stop - 1] == 0).all() and (people[0, sk.RIGHT_HAND] == 0).all()
    assert (people[0, sk.FACE, 2] == 1).all() and (people[1, sk.FACE] == 0).all()


def test_files_are_found_in_the_annotators_layout_and_missing_ones_are_named(tmp_path):
    layout = tmp_path / "ckpts" / ANNOTATORS_LAYOUT
    layout.mkdir(parents=True)
    (layout / BODY_FILE).write_bytes(b"")
    assert find_model_file(BODY_FILE, [tmp_path / "ckpts"], ANNOTATORS_LAYOUT) == layout / BODY_FILE
    with pytest.raises(MissingModelFile) as missing:
        OpenPose.from_dirs([tmp_path / "ckpts"])
    assert missing.value.model_file == HAND_FILE and missing.value.folder == "dreamactor_pose"
    assert "lllyasviel/Annotators" in missing.value.args[0]


def test_the_backend_runs_controlnet_aux_end_to_end_on_randomly_initialized_networks(tmp_path):
    """Plumbing only (random networks find nobody): the files load the way controlnet_aux loads
    them, detection with hands and face runs on a real photo, and the frame is kept."""
    from real_data import skimage_photo

    _write_random_networks(tmp_path)
    estimator = OpenPose.from_dirs([tmp_path])
    assert estimator.description.startswith("controlnet-aux openpose (torch, ")
    poses = extract_poses(skimage_photo("astronaut")[None], estimator)
    assert len(poses) == 1 and (poses.width, poses.height) == (512, 512)


class _Payload:
    """Unpickling this runs code: it writes the file named in ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pickled code ran"))


def _write_random_networks(folder: Path) -> None:
    import torch
    from controlnet_aux.open_pose.face import FaceNet
    from controlnet_aux.open_pose.model import bodypose_model, handpose_model

    torch.manual_seed(0)
    for name, model, prefixed in ((BODY_FILE, bodypose_model(), True), (HAND_FILE, handpose_model(), True),
                                  (FACE_FILE, FaceNet(), False)):
        state = model.state_dict()
        if prefixed:  # the released body and hand files lack the sub-module prefix
            state = {key.split(".", 1)[1]: value for key, value in state.items()}
        torch.save(state, folder / name)


def test_a_pickle_bearing_file_is_refused_even_where_torch_defaults_to_full_unpickling(tmp_path, monkeypatch):
    """controlnet_aux calls torch.load(path) bare; the pack forces weights_only=True, whatever torch's default."""
    import torch
    from controlnet_aux.open_pose import body

    _write_random_networks(tmp_path)
    marker = tmp_path / "ran.txt"
    torch.save({"payload": _Payload(str(marker))}, tmp_path / HAND_FILE)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # torch < 2.6's default: full unpickling
    with pytest.raises(DreamActorError, match=f"'{tmp_path / HAND_FILE}' holds more than tensors"):
        OpenPose.from_dirs([tmp_path])
    assert not marker.exists()
    assert body.torch is torch  # controlnet_aux's module sees the real torch again


REAL_WEIGHTS = os.environ.get("DREAMACTOR_OPENPOSE_DIR", "")


@pytest.mark.skipif(not (REAL_WEIGHTS and all((Path(REAL_WEIGHTS) / f).is_file() for f in (BODY_FILE, HAND_FILE, FACE_FILE))),
                    reason="set DREAMACTOR_OPENPOSE_DIR to a folder with the lllyasviel/Annotators OpenPose files")
def test_real_weights_find_the_astronaut():
    from real_data import skimage_photo

    poses = extract_poses(skimage_photo("astronaut")[None], OpenPose.from_dirs([REAL_WEIGHTS]))
    nose = poses.frames[0][0, sk.JOINT["nose"]]
    assert nose[2] > 0 and 150 < nose[0] < 300 and 60 < nose[1] < 200
