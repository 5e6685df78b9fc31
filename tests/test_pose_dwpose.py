"""The DWPose ONNX runner, checked with tiny synthetic ONNX models of the real input and output
shapes whose outputs are chosen so the right answer is known: letterbox and YOLOX decoding,
person NMS, the crop per person and SimCC decoding back to image pixels, and where the files are found.

Each pre- and post-processing step is also compared with rtmlib's (PyPI ``rtmlib``, installed by
``scripts/setup_env.sh``: the maintained descendant of DWPose's own ONNX runner, ``cv_ox_det.py`` and
``cv_ox_pose.py``) on the same inputs, and the whole runner with rtmlib's YOLOX + RTMPose pipeline on
the same ONNX files. The real weights cannot be downloaded here, so the real-weight test skips unless
DREAMACTOR_DWPOSE_DIR is set; everything around the two networks is checked without them."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dreamactor_core.errors import MissingModelFile
from dreamactor_core.pose import skeleton as sk
from dreamactor_core.pose.extract import extract_poses
from dreamactor_core.pose.extract_dwpose import (
    DETECTOR_FILE,
    PERSON_CLASS,
    POSE_FILE,
    POSE_SIZE,
    DWPose,
    crop_person,
    crop_transform,
    decode_people,
    decode_simcc,
    letterbox,
)
from dreamactor_core.pose.model_files import DWPOSE_LAYOUT, find_model_file
from dreamactor_core.pose.types import to_coco_wholebody

ANCHORS = 80 * 80 + 40 * 40 + 20 * 20
IMAGE_WIDTH, IMAGE_HEIGHT = 1280, 960  # letterbox ratio 0.5


def _constant_model(path: Path, input_name: str, input_shape: list[int], outputs: dict[str, np.ndarray]) -> Path:
    """An ONNX model with the given input whose outputs are constants (input shape still checked by ORT)."""
    nodes = [helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value.astype(np.float32), name))
             for name, value in outputs.items()]
    graph = helper.make_graph(
        nodes, "synthetic", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)) for name, value in outputs.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _anchor(level: int, gx: int, gy: int) -> int:
    offsets, widths = (0, 6400, 8000), (80, 40, 20)
    return offsets[level] + gy * widths[level] + gx


def detector_output(with_people: bool = True) -> np.ndarray:
    """Raw YOLOX output: person A (stride 32), a weaker overlapping duplicate of A, person C (stride 16),
    and a confident non-person."""
    output = np.zeros((1, ANCHORS, 85))
    if not with_people:
        return output
    # A: centre (5.5, 8.25) cells of 32 -> (176, 264) letterboxed, 100 x 300 -> image box (252, 228, 452, 828)
    output[0, _anchor(2, 5, 8), :6] = (0.5, 0.25, np.log(100 / 32), np.log(300 / 32), 0.9, 0.9)
    output[0, _anchor(2, 6, 8), :6] = (-0.3, 0.25, np.log(110 / 32), np.log(300 / 32), 0.7, 0.7)
    # C: centre (30.5, 10.5) cells of 16 -> (488, 168), 64 x 64 -> image box (912, 272, 1040, 400)
    output[0, _anchor(1, 30, 10), :6] = (0.5, 0.5, np.log(4), np.log(4), 0.8, 0.8)
    # a confident cat (class 1), never a person
    output[0, _anchor(0, 10, 10), :7] = (0.5, 0.5, 1.0, 1.0, 0.95, 0.05, 0.95)
    return output


def pose_outputs() -> dict[str, np.ndarray]:
    """SimCC outputs: nose at the crop centre, left wrist at the crop's top-left, the rest faint."""
    simcc_x, simcc_y = np.full((1, 133, 576), 0.01), np.full((1, 133, 768), 0.01)
    simcc_x[0, :, 10], simcc_y[0, :, 10] = 0.1, 0.1  # every other point: too unsure to keep
    simcc_x[0, 0, 288], simcc_y[0, 0, 384] = 0.9, 0.8  # crop (144, 192): the box centre
    simcc_x[0, 9, 0], simcc_y[0, 9, 0] = 0.9, 0.7  # crop (0, 0)
    return {"simcc_x": simcc_x, "simcc_y": simcc_y}


@pytest.fixture(scope="module")
def dwpose_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dreamactor_pose")
    _constant_model(folder / DETECTOR_FILE, "images", [1, 3, 640, 640], {"output": detector_output()})
    _constant_model(folder / POSE_FILE, "input", [1, 3, 384, 288], pose_outputs())
    return folder


def test_letterbox_keeps_aspect_in_the_top_left_on_grey():
    image = np.full((50, 100, 3), 200, dtype=np.uint8)
    batch, ratio = letterbox(image)
    assert batch.shape == (1, 3, 640, 640) and batch.dtype == np.float32 and ratio == 6.4
    assert (batch[0, :, :320, :] == 200).all() and (batch[0, :, 320:, :] == 114).all()


def test_yolox_decoding_and_nms_give_the_person_boxes_in_image_pixels():
    boxes = decode_people(detector_output(), ratio=0.5)
    order = np.argsort(boxes[:, 0])
    np.testing.assert_allclose(boxes[order], [[252, 228, 452, 828], [912, 272, 1040, 400]], atol=1e-6)
    assert len(decode_people(detector_output(with_people=False), ratio=0.5)) == 0


def test_crop_transform_pads_the_box_to_the_model_aspect():
    matrix = crop_transform(np.array([252.0, 228.0, 452.0, 828.0]))
    # padded height 750 fills 384 rows; the width follows the 288:384 aspect, centred on the box
    np.testing.assert_allclose(matrix @ [352, 528, 1], [144, 192])
    np.testing.assert_allclose(matrix @ [352 - 281.25, 528 - 375, 1], [0, 0], atol=1e-9)


def test_runner_finds_every_person_and_maps_simcc_back_to_the_image(dwpose_dir):
    estimator = DWPose.from_dirs([dwpose_dir])
    assert estimator.description.startswith("dwpose onnxruntime (")
    image = np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH, 3), dtype=np.uint8)
    poses = extract_poses(np.stack([image, image]), estimator, min_confidence=0.3)
    assert [len(frame) for frame in poses.frames] == [2, 2]
    people = poses.frames[0][np.argsort(poses.frames[0][:, sk.JOINT["nose"], 0])]
    # (the synthetic model holds float32 constants: box sizes are exact to about 1e-4 px)
    np.testing.assert_allclose(people[0, sk.JOINT["nose"]], [352, 528, 0.8], atol=1e-3)
    np.testing.assert_allclose(people[0, sk.JOINT["left_wrist"]], [352 - 281.25, 528 - 375, 0.7], atol=1e-3)
    np.testing.assert_allclose(people[1, sk.JOINT["nose"]], [976, 336, 0.8], atol=1e-3)
    # the faint points were dropped, never guessed; the neck needs both shoulders
    assert (people[..., 2] > 0).sum() == 4


def test_a_frame_without_people_stays_an_empty_frame(tmp_path):
    _constant_model(tmp_path / DETECTOR_FILE, "images", [1, 3, 640, 640], {"output": detector_output(False)})
    _constant_model(tmp_path / POSE_FILE, "input", [1, 3, 384, 288], pose_outputs())
    poses = extract_poses(np.zeros((3, 64, 64, 3), dtype=np.uint8), DWPose.from_dirs([tmp_path]))
    assert [len(frame) for frame in poses.frames] == [0, 0, 0]


def test_files_are_found_in_the_controlnet_aux_layout(dwpose_dir, tmp_path):
    layout = tmp_path / "ckpts" / "yzd-v" / "DWPose"
    layout.mkdir(parents=True)
    (layout / POSE_FILE).write_bytes((dwpose_dir / POSE_FILE).read_bytes())
    found = find_model_file(POSE_FILE, [tmp_path / "empty", tmp_path / "ckpts"], DWPOSE_LAYOUT)
    assert found == layout / POSE_FILE


def test_a_missing_file_names_the_file_and_the_folder(tmp_path):
    with pytest.raises(MissingModelFile) as missing:
        DWPose.from_dirs([tmp_path])
    assert missing.value.model_file == DETECTOR_FILE and missing.value.folder == "dreamactor_pose"
    message = missing.value.args[0]
    assert "'yolox_l.onnx' not found" in message and "'dreamactor_pose' models folder" in message
    assert "yzd-v/DWPose" in message and str(tmp_path) in message


# ----- against rtmlib, the maintained DWPose ONNX runner -----
def _rtmlib_tools(folder: Path):
    from rtmlib.tools.object_detection.yolox import YOLOX
    from rtmlib.tools.pose_estimation.rtmpose import RTMPose

    # DWPose's published settings, written out rather than taken from the module under test: 640 x 640
    # letterbox, NMS at IoU 0.45, people above 0.3; a 288 x 384 pose input with ImageNet mean and std.
    detector = YOLOX(str(folder / DETECTOR_FILE), model_input_size=(640, 640), det_mode="multiclass",
                     nms_thr=0.45, score_thr=0.3, backend="onnxruntime", device="cpu")
    pose = RTMPose(str(folder / POSE_FILE), model_input_size=(288, 384), mean=(123.675, 116.28, 103.53),
                   std=(58.395, 57.12, 57.375), backend="onnxruntime", device="cpu")
    return detector, pose


def _smooth_image(height: int = IMAGE_HEIGHT, width: int = IMAGE_WIDTH) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    image = np.stack([(cols / 5) % 256, (rows / 4) % 256, ((cols + rows) / 9) % 256], axis=-1).astype(np.uint8)
    return cv2.GaussianBlur(image, (0, 0), 3)


def test_letterbox_equals_rtmlib_yolox_preprocessing(dwpose_dir):
    detector, _ = _rtmlib_tools(dwpose_dir)
    image = np.random.default_rng(0).integers(0, 256, (333, 517, 3), dtype=np.uint8)
    padded, their_ratio = detector.preprocess(image)
    batch, ratio = letterbox(image)
    assert ratio == their_ratio and np.array_equal(batch[0].transpose(1, 2, 0), padded.astype(np.float32))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_yolox_decoding_equals_rtmlib_on_the_same_raw_output(dwpose_dir, seed):
    """Random people (boxes of 32 to 53 px on cells 96 px apart: no IoU near the threshold, where
    rtmlib's +1-pixel areas and OpenCV's NMS could differ) plus the synthetic duplicates and the cat."""
    detector, _ = _rtmlib_tools(dwpose_dir)
    output = detector_output()
    rng = np.random.default_rng(seed)
    for gx, gy in rng.choice(np.arange(0, 20, 3), size=(3, 2), replace=False):  # cells 96 px apart
        output[0, _anchor(2, int(gx), int(gy)), :6] = (*rng.uniform(0, 1, 2), *rng.uniform(0, 0.5, 2),
                                                        rng.uniform(0.6, 1), rng.uniform(0.6, 1))
    boxes, classes = detector.postprocess(output.copy(), 0.5)
    theirs = np.asarray(boxes)[np.asarray(classes) == PERSON_CLASS]
    ours = decode_people(output, 0.5)
    key = np.lexsort((ours[:, 1], ours[:, 0]))
    their_key = np.lexsort((theirs[:, 1], theirs[:, 0]))
    np.testing.assert_allclose(ours[key], theirs[their_key], rtol=1e-9)


@pytest.mark.parametrize("box", [(252.0, 228.0, 452.0, 828.0), (912.0, 272.0, 1040.0, 400.0), (10.5, 20.25, 700.75, 300.5)])
def test_person_crop_and_simcc_decoding_equal_rtmlib(dwpose_dir, box):
    _, pose = _rtmlib_tools(dwpose_dir)
    from rtmlib.tools.pose_estimation.post_processings import _combine_axis_scores

    image, box = _smooth_image(), np.array(box)
    their_crop, centre, scale = pose.preprocess(image, box)
    matrix = crop_transform(box)
    # rtmlib builds the same affine matrix in float32 and normalizes in float64: equal to float32 rounding
    np.testing.assert_allclose(crop_person(image, matrix)[0].transpose(1, 2, 0), their_crop, atol=1e-6)
    rng = np.random.default_rng(3)
    simcc_x, simcc_y = rng.random((1, 133, 2 * POSE_SIZE[0])), rng.random((1, 133, 2 * POSE_SIZE[1]))
    keypoints, _ = pose.postprocess([simcc_x, simcc_y], centre, scale)
    ours = decode_simcc(simcc_x, simcc_y, matrix)
    np.testing.assert_allclose(ours[:, :2], keypoints[0], atol=1e-6)
    # DWPose's confidence is the lower of the two axis maxima (rtmlib now averages them by default)
    minimum = _combine_axis_scores(simcc_x[0].max(axis=1), simcc_y[0].max(axis=1), method="min")
    np.testing.assert_allclose(ours[:, 2], np.clip(minimum, 0, 1))


def test_whole_runner_equals_rtmlib_pipeline_on_the_same_onnx_files(dwpose_dir):
    detector, pose = _rtmlib_tools(dwpose_dir)
    image = _smooth_image()
    boxes, classes = detector(image)
    people = np.asarray(boxes)[np.asarray(classes) == PERSON_CLASS]
    keypoints, _ = pose(image, bboxes=list(people))
    ours = to_coco_wholebody(DWPose.from_dirs([dwpose_dir])(image))
    order, their_order = np.argsort(ours[:, 0, 0]), np.argsort(keypoints[:, 0, 0])
    present = ours[order, :, 2] > 0
    assert present.sum() == 2 * 133  # every point of both people (the faint ones at 0.1 too)
    np.testing.assert_allclose(ours[order][..., :2], keypoints[their_order], atol=1e-3)


REAL_WEIGHTS = os.environ.get("DREAMACTOR_DWPOSE_DIR", "")


@pytest.mark.skipif(not (REAL_WEIGHTS and (Path(REAL_WEIGHTS) / POSE_FILE).is_file()),
                    reason="set DREAMACTOR_DWPOSE_DIR to a folder with the real DWPose ONNX files")
def test_real_weights_find_the_astronaut():
    from real_data import skimage_photo

    poses = extract_poses(skimage_photo("astronaut")[None], DWPose.from_dirs([REAL_WEIGHTS]))
    assert len(poses.frames[0]) >= 1
    nose = poses.frames[0][0, sk.JOINT["nose"]]
    assert nose[2] > 0 and 150 < nose[0] < 300 and 60 < nose[1] < 200
