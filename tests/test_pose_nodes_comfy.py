"""The three pose nodes inside real ComfyUI: a real photo goes LoadImage -> extract -> augment ->
render as an API-format prompt, and every output equals what the engine computes from the same input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from real_data import opencv_sample

from comfy_harness.server import PromptFailed
from dreamactor_core.pose import augment, render, types
from dreamactor_core.pose.extract import extract_poses, make_estimator
from dreamactor_core.video_io import read_image

pytestmark = pytest.mark.comfy


def _pose_prompt(image_name: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        "2": {"class_type": "DreamActorM2_PoseExtract",
              "inputs": {"images": ["1", 0], "backend": "mediapipe", "min_confidence": 0.3}},
        "3": {"class_type": "DreamActorM2_PoseAugment",
              "inputs": {"pose_keypoint": ["2", 0], "scale_bones": True, "scale_min": 0.8, "scale_max": 1.2,
                         "seed": 5, "symmetric": True, "normalize_box": True, "width": 384, "height": 512,
                         "margin": 0.05}},
        "4": {"class_type": "DreamActorM2_PoseRender",
              "inputs": {"pose_keypoint": ["3", 0], "width": 0, "height": 0, "draw_hands": True,
                         "draw_face": True, "draw_feet": False, "min_confidence": 0.0}},
        "5": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["2", 0], "name": "pose_extracted"}},
        "6": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["2", 1], "name": "pose_preview"}},
        "7": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["3", 0], "name": "pose_augmented"}},
        "8": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["4", 0], "name": "pose_rendered"}},
    }


def test_extract_augment_render_in_comfyui_match_the_engine(comfy):
    shutil.copy(opencv_sample("messi5.jpg"), comfy.input_dir / "messi5.jpg")
    comfy.run(_pose_prompt("messi5.jpg"))
    extracted, preview = comfy.probe("pose_extracted"), comfy.probe("pose_preview")
    augmented, rendered = comfy.probe("pose_augmented"), comfy.probe("pose_rendered")

    image = read_image(opencv_sample("messi5.jpg"))
    expected = extract_poses(image[None], make_estimator("mediapipe", video=False))
    got = types.from_pose_keypoint(extracted)
    assert len(got) == 1 and len(got.frames[0]) == 1 and (got.width, got.height) == (548, 342)
    np.testing.assert_allclose(got.frames[0], expected.frames[0], atol=1e-3)
    assert preview.shape == (1, 342, 548, 3) and preview.dtype == torch.float32
    assert torch.equal(preview, render.render_poses(got))

    want = augment.augment_clip(got, augment.draw_bone_factors(5, 0.8, 1.2, True), (384, 512), 0.05)
    after = types.from_pose_keypoint(augmented)
    assert (after.width, after.height) == (384, 512)
    np.testing.assert_allclose(after.frames[0], want.frames[0], atol=1e-9)
    assert rendered.shape == (1, 512, 384, 3)
    assert torch.equal(rendered, render.render_poses(after))
    assert rendered.sum() > 0


def test_a_clip_keeps_its_frame_count_through_extract_and_render(comfy):
    from real_data import template_clip

    from dreamactor_core.video_io import read_clip

    frames = torch.from_numpy(read_clip(template_clip(), max_frames=4, stride=6).frames).float() / 255
    comfy.feed("dancer_frames", frames)
    prompt = {
        "1": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "dancer_frames"}},
        "2": {"class_type": "DreamActorM2_PoseExtract",
              "inputs": {"images": ["1", 0], "backend": "mediapipe", "min_confidence": 0.3}},
        "3": {"class_type": "DreamActorM2_PoseRender",
              "inputs": {"pose_keypoint": ["2", 0], "width": 256, "height": 256, "draw_hands": False,
                         "draw_face": False, "draw_feet": True, "min_confidence": 0.5}},
        "4": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["2", 0], "name": "clip_poses"}},
        "5": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["3", 0], "name": "clip_skeletons"}},
    }
    comfy.run(prompt)
    poses = types.from_pose_keypoint(comfy.probe("clip_poses"))
    expected = extract_poses(frames, make_estimator("mediapipe", video=True))
    assert len(poses) == 4 and [len(f) for f in poses.frames] == [len(f) for f in expected.frames]
    for got, want in zip(poses.frames, expected.frames):
        np.testing.assert_allclose(got, want, atol=1e-3)
    skeletons = comfy.probe("clip_skeletons")
    assert skeletons.shape == (4, 256, 256, 3)
    assert torch.equal(skeletons, render.render_poses(poses, 256, 256, False, False, True, 0.5))


def test_a_photo_without_people_gives_an_empty_frame_and_augmenting_it_is_a_clear_error(comfy):
    from PIL import Image
    from real_data import skimage_photo

    Image.fromarray(skimage_photo("chelsea")).save(comfy.input_dir / "chelsea.png")
    prompt = _pose_prompt("chelsea.png")
    comfy.run({key: prompt[key] for key in ("1", "2", "5", "6")})
    extracted = comfy.probe("pose_extracted")
    assert [len(frame["people"]) for frame in extracted] == [0]
    assert not comfy.probe("pose_preview").any()
    with pytest.raises(PromptFailed) as failure:
        comfy.run(prompt)
    assert failure.value.node_type == "DreamActorM2_PoseAugment"
    assert "no person in any frame" in failure.value.exception_message


def test_a_bad_pose_keypoint_is_a_clear_node_error(comfy):
    comfy.feed("bad_pose", [{"people": [], "canvas_width": 0, "canvas_height": 64}])
    prompt = {
        "1": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "bad_pose"}},
        "2": {"class_type": "DreamActorM2_PoseRender",
              "inputs": {"pose_keypoint": ["1", 0], "width": 0, "height": 0, "draw_hands": True,
                         "draw_face": True, "draw_feet": False, "min_confidence": 0.0}},
        "3": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["2", 0], "name": "never"}},
    }
    with pytest.raises(PromptFailed) as failure:
        comfy.run(prompt)
    assert failure.value.node_type == "DreamActorM2_PoseRender"
    assert "canvas size 0x64, expected both positive" in failure.value.exception_message


def test_dwpose_without_its_files_names_the_file_and_the_folder(comfy):
    shutil.copy(opencv_sample("messi5.jpg"), comfy.input_dir / "messi5.jpg")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "messi5.jpg"}},
        "2": {"class_type": "DreamActorM2_PoseExtract",
              "inputs": {"images": ["1", 0], "backend": "dwpose", "min_confidence": 0.3}},
        "3": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["2", 0], "name": "never"}},
    }
    with pytest.raises(PromptFailed) as failure:
        comfy.run(prompt)
    assert failure.value.node_type == "DreamActorM2_PoseExtract"
    assert "'yolox_l.onnx' not found" in failure.value.exception_message
    assert "'dreamactor_pose' models folder" in failure.value.exception_message
