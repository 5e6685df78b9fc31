"""The captioning nodes inside real ComfyUI 0.3.75 on the tiny Qwen2.5-VL: Load Captioner from the
registered models/LLM folder and from a single file in text_encoders, Describe Motion / Reference,
Fuse Prompt (LLM) and Score Result; each answer equals the engine's on the same model and frames."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from comfy_harness.server import PromptFailed
from dreamactor_core.conditioning.captioner import GenerationSettings, load_captioner
from dreamactor_core.testing.tiny_captioner import write_tiny_captioner

pytestmark = pytest.mark.comfy
DECODING = {"max_new_tokens": 8, "seed": 0, "temperature": 0.0}


@pytest.fixture(scope="module")
def models(comfy, tmp_path_factory):
    files = write_tiny_captioner(tmp_path_factory.mktemp("captioner"))
    shutil.copytree(files["folder"], comfy.base_dir / "models" / "LLM" / "tiny-qwen2.5-vl", dirs_exist_ok=True)
    text_encoders = comfy.models_dir / "text_encoders"
    for name in ("file", "no_head"):
        shutil.copy(files[name], text_encoders / files[name].name)
        shutil.copy(files[name].with_suffix(".json"), text_encoders / files[name].with_suffix(".json").name)
    shutil.copytree(files["tokenizer"], text_encoders / "tokenizer", dirs_exist_ok=True)
    return files


def _prompt(model_name: str) -> dict:
    load = {"class_type": "DreamActorM2_LoadCaptioner", "inputs": {"model_name": model_name, "precision": "fp32"}}
    return {
        "load": load,
        "frames": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "frames"}},
        "reference": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "reference"}},
        "motion": {"class_type": "DreamActorM2_DescribeMotion",
                   "inputs": {"captioner": ["load", 0], "frames": ["frames", 0], "fps": 8.0, "sample_frames": 4,
                              "skeleton": True, "instruction": "", **DECODING}},
        "look": {"class_type": "DreamActorM2_DescribeReference",
                 "inputs": {"captioner": ["load", 0], "reference": ["reference", 0], "instruction": "Name it.",
                            **DECODING}},
        "fuse": {"class_type": "DreamActorM2_FusePromptLLM",
                 "inputs": {"captioner": ["load", 0], "motion": "a person is jumping", "appearance": "a blue fox",
                            "instruction": "", **DECODING}},
        "score": {"class_type": "DreamActorM2_ScoreResult",
                  "inputs": {"reference": ["reference", 0], "result": ["frames", 0], "fps": 8.0}},
        **{f"p_{name}_{index}": {"class_type": "DreamActorTest_Probe",
                                 "inputs": {"value": [name, index], "name": f"{name}_{index}"}}
           for name in ("motion", "look", "fuse", "score") for index in (0, 1)},
    }


@pytest.mark.parametrize("model_name", ["tiny-qwen2.5-vl", "text_encoders/tiny_qwen_vl.safetensors"])
def test_captioning_nodes_answer_as_the_engine_does(comfy, models, model_name):
    frames = torch.rand(6, 40, 48, 3, generator=torch.Generator().manual_seed(5))
    reference = frames[:1]
    comfy.feed("frames", frames)
    comfy.feed("reference", reference)
    assert model_name in comfy.object_info()["DreamActorM2_LoadCaptioner"]["input"]["required"]["model_name"][0]
    comfy.run(_prompt(model_name))
    engine = load_captioner(models["folder"], settings=GenerationSettings(max_new_tokens=8))
    motion = engine.describe_motion(frames, fps=8.0, count=4, skeleton=True)
    assert (comfy.probe("motion_0"), comfy.probe("motion_1")) == (motion.text, motion.prompt)
    assert "pose skeleton" in comfy.probe("motion_1")
    look = engine.describe_reference(reference, instruction="Name it.")
    assert (comfy.probe("look_0"), comfy.probe("look_1")) == (look.text, look.prompt)
    fused = engine.fuse("a person is jumping", "a blue fox")
    assert comfy.probe("fuse_0") == fused.text and "is waving its wings" in comfy.probe("fuse_1")
    report = json.loads(comfy.probe("score_0"))
    assert comfy.probe("score_1") == -1.0 and report["skipped"]["judge"] == "no captioner connected"
    assert set(report["measures"]) == {"temporal_flicker", "motion_smoothness"}


def test_a_text_encoder_file_without_head_fails_with_what_serves(comfy, models):
    prompt = {"load": {"class_type": "DreamActorM2_LoadCaptioner",
                       "inputs": {"model_name": "text_encoders/tiny_qwen_vl_no_head.safetensors", "precision": "fp32"}},
              "reference": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "reference"}},
              "look": {"class_type": "DreamActorM2_DescribeReference",
                       "inputs": {"captioner": ["load", 0], "reference": ["reference", 0], "instruction": "",
                                  **DECODING}},
              "probe": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["look", 0], "name": "none"}}}
    comfy.feed("reference", torch.rand(1, 30, 30, 3))
    with pytest.raises(PromptFailed, match="without the LM head"):
        comfy.run(prompt)
