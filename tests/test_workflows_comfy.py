"""The shipped workflows (workflows/*.json) in real ComfyUI: they are what scripts/build_workflows.py
writes, use only core and pack nodes with the default model files, and run end to end from UI
format — through the README's main job (scripts/run_workflows.py) — on a real photo and a real
dancing clip, with tiny random-weight models saved under the workflows' own file names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from repo_scripts import load_script

from comfy_harness.workflow import ui_to_api
from dreamactor_core.app.default_models import DEFAULT_MODELS
from dreamactor_core.testing.stand_ins import write_tiny_stand_ins
from dreamactor_core.video_io import read_clip

pytestmark = pytest.mark.comfy

REPO = Path(__file__).resolve().parents[1]
MODES = ("pose", "rgb")
PACK_MODULE = "custom_nodes.ComfyUI-DreamActor-M2"


def _workflow(mode: str) -> dict:
    return json.loads((REPO / "workflows" / f"dreamactor_m2_{mode}.json").read_text())


@pytest.fixture(scope="module")
def main_job(comfy, tmp_path_factory):
    job = load_script("run_workflows")
    write_tiny_stand_ins(comfy.models_dir, tmp_path_factory.mktemp("tiny"))
    job.prepare_inputs(comfy.input_dir)
    return job


def test_shipped_files_are_what_the_builder_writes(comfy):
    builder = load_script("build_workflows")
    info = comfy.object_info()
    assert sorted(p.name for p in (REPO / "workflows").iterdir()) == [
        "dreamactor_m2_pose.jpg", "dreamactor_m2_pose.json", "dreamactor_m2_rgb.jpg", "dreamactor_m2_rgb.json"]
    for mode in MODES:
        assert builder.build_workflow(info, mode) == _workflow(mode), f"run scripts/build_workflows.py ({mode})"


@pytest.mark.parametrize("mode", MODES)
def test_workflow_uses_core_and_pack_nodes_and_the_default_model_files(comfy, mode):
    info = comfy.object_info()
    workflow = _workflow(mode)
    types = {node["type"] for node in workflow["nodes"]} - {"MarkdownNote"}
    foreign = {t for t in types if t not in info or not (info[t]["python_module"].startswith(PACK_MODULE)
                                                          or not info[t]["python_module"].startswith("custom_nodes"))}
    assert foreign == set()
    assert ("DreamActorM2_PoseExtract" in types) == (mode == "pose")
    values = [v for node in workflow["nodes"] for v in node.get("widgets_values", []) if isinstance(v, str)]
    roles = ("transformer", "vae", "text_encoder", "glyph_encoder", "image_encoder", f"{mode}_lora")
    for role in roles:
        assert DEFAULT_MODELS[role].name in values
        assert "\\" not in DEFAULT_MODELS[role].name
    notes = " ".join(n["widgets_values"][0] for n in workflow["nodes"] if n["type"] == "MarkdownNote")
    for role in roles:  # the notes say which file goes in which folder
        assert DEFAULT_MODELS[role].name in notes and f"{DEFAULT_MODELS[role].folder}/" in notes
    # Every node sits inside one of the groups, every group holds nodes.
    boxes = [g["bounding"] for g in workflow["groups"]]
    def inside(node, b):
        return (b[0] <= node["pos"][0] and node["pos"][0] + node["size"][0] <= b[0] + b[2]
                and b[1] <= node["pos"][1] and node["pos"][1] + node["size"][1] <= b[1] + b[3])

    assert all(any(inside(node, b) for b in boxes) for node in workflow["nodes"])
    assert all(any(inside(node, b) for node in workflow["nodes"]) for b in boxes)
    # Real-use defaults (the README's tiny run shrinks them).
    prompt = ui_to_api(workflow, info)
    by_title = {node["_meta"]["title"]: node["inputs"] for node in prompt.values()}
    assert (by_title["Panel width"]["value"], by_title["Panel height"]["value"]) == (416, 624)
    assert by_title["Driving frames"]["length"] == 81
    sampler = next(n["inputs"] for n in prompt.values() if n["class_type"] == "DreamActorM2_Sampler")
    assert (sampler["steps"], sampler["cfg"], sampler["shift"]) == (30, 6.0, 5.0)


def _saved(comfy, outputs: dict, prompt: dict, title: str) -> np.ndarray:
    node = next(ident for ident, n in prompt.items() if n["_meta"]["title"] == title)
    entry = outputs[node]["images"][0]
    return read_clip(comfy.output_dir / entry["subfolder"] / entry["filename"]).frames


@pytest.mark.parametrize("mode", MODES)
def test_shipped_workflow_turns_photo_and_clip_into_saved_videos(comfy, main_job, mode):
    prompt = main_job.api_prompt(comfy.object_info(), mode, tiny=True)
    outputs = comfy.run(prompt, timeout=1200)
    panel, frames = main_job.TINY_PANEL, main_job.TINY_FRAMES
    animation = _saved(comfy, outputs, prompt, "Save animation")
    assert len(animation) == frames  # the lead-in second and the 4k+1 padding are cut
    assert animation.shape[1:3] == (512, 512)  # back at the reference photo's size
    canvas = _saved(comfy, outputs, prompt, "Save canvas preview")
    lead_in = 24  # one second of the clip's 24 fps
    assert len(canvas) == lead_in + frames and (len(canvas) - 1) % 4 == 0
    assert canvas.shape[1:3] == (panel, 2 * panel)
    # Frame 0: the reference on the left; after it the left half is black (codec noise aside); the
    # motion half is black during the lead-in second, then shows the driving signal.
    assert canvas[0, :, :panel].mean() > 40
    assert canvas[1:, :, :panel].max() < 30
    assert canvas[:lead_in, :, panel:].max() < 30
    assert (canvas[lead_in:, :, panel:].max(axis=(1, 2, 3)) > 100).all()
    if mode == "pose":
        skeletons = _saved(comfy, outputs, prompt, "Save skeleton preview")
        assert skeletons.shape[:3] == (frames, panel, panel)
        # Skeletons: a few saturated strokes on black, unlike the photo-like driving frames.
        assert ((skeletons.max(axis=3) > 100).mean(axis=(1, 2)) < 0.3).all()
        assert (skeletons.max(axis=(1, 2, 3)) > 100).mean() > 0.8
    else:
        driving = read_clip(comfy.input_dir / "driving.mp4").frames
        assert canvas[lead_in:, :, panel:].mean() > 0.5 * driving[:frames].mean()  # the raw frames, not skeletons


def test_main_job_picks_real_weights_only_when_every_file_is_there(tmp_path):
    job = load_script("run_workflows")
    every = {f"{m.folder}/{m.name}" for m in DEFAULT_MODELS.values()}
    assert set(job.missing_real_files(None, ["pose", "rgb"])) == every
    assert set(job.missing_real_files(tmp_path, ["pose", "rgb"])) == every
    write_tiny_stand_ins(tmp_path / "models", tmp_path / "scratch")
    assert job.missing_real_files(tmp_path / "models", ["pose", "rgb"]) == []
    rgb_lora = DEFAULT_MODELS["rgb_lora"]
    (tmp_path / "models" / rgb_lora.folder / rgb_lora.name).unlink()
    assert job.missing_real_files(tmp_path / "models", ["pose"]) == []  # the pose workflow has all it needs
    assert job.missing_real_files(tmp_path / "models", ["pose", "rgb"]) == [f"loras/{rgb_lora.name}"]
