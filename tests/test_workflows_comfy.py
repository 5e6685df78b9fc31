"""The shipped workflows (workflows/*.json) in real ComfyUI: they are what scripts/build_workflows.py
writes, use only core and pack nodes with the default model files, and run end to end from UI
format on a real photo and a real dancing clip: the pack's two through the README's main job
(scripts/run_workflows.py) with tiny random-weight models saved under the workflows' own file names,
the two native ones with narrow stand-ins (see test_native_workflow_runs_end_to_end)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from native_fixtures import (
    TEXT_WIDTH,
    write_narrow_siglip,
    write_narrow_transformer,
    write_narrow_vae,
    write_trained_lora,
)
from repo_scripts import load_script

from comfy_harness.workflow import ui_to_api
from dreamactor_core.app.default_models import DEFAULT_MODELS
from dreamactor_core.conditioning.prompt import fuse_prompt
from dreamactor_core.testing.stand_ins import write_tiny_stand_ins
from dreamactor_core.video_io import read_clip

pytestmark = pytest.mark.comfy

REPO = Path(__file__).resolve().parents[1]
MODES = ("pose", "rgb")
NAMES = ("dreamactor_m2_native_pose", "dreamactor_m2_native_rgb", "dreamactor_m2_pose", "dreamactor_m2_rgb")
# Every shipped workflow: the four above and the streamed one (tests/test_long_video_comfy.py checks and runs it).
SHIPPED = ("dreamactor_m2_long_video", *NAMES)
PACK_MODULE = "custom_nodes.ComfyUI-DreamActor-M2"
# The pack nodes a native workflow may use: everything else there is core (loaders, encoders, sampler).
NATIVE_PACK_NODES = {f"DreamActorM2_{n}" for n in ("PoseExtract", "PoseAugment", "PoseRender", "BuildCanvas",
                                                   "TargetOrientedPrompt", "CanvasToVideo", "ExtractResult")}
LOADER_FOLDERS = {"UNETLoader": "diffusion_models", "VAELoader": "vae", "DualCLIPLoader": "text_encoders",
                  "CLIPVisionLoader": "clip_vision"}


def _workflow(name: str) -> dict:
    if name in MODES:
        name = f"dreamactor_m2_{name}"
    return json.loads((REPO / "workflows" / f"{name}.json").read_text())


def _mode(name: str) -> str:
    return name.rsplit("_", 1)[1]


@pytest.fixture(scope="module")
def main_job(comfy, tmp_path_factory):
    job = load_script("run_workflows")
    write_tiny_stand_ins(comfy.models_dir, tmp_path_factory.mktemp("tiny"))
    job.prepare_inputs(comfy.input_dir)
    return job


def test_shipped_files_are_what_the_builder_writes(comfy):
    builder = load_script("build_workflows")
    info = comfy.object_info()
    assert sorted(p.name for p in (REPO / "workflows").iterdir()) == sorted(
        f"{name}.{ext}" for name in SHIPPED for ext in ("jpg", "json"))
    assert sorted(builder.WORKFLOW_BUILDERS) == list(SHIPPED)
    for name in SHIPPED:
        assert builder.build(info, name) == _workflow(name), f"run scripts/build_workflows.py ({name})"


@pytest.mark.parametrize("name", NAMES)
def test_workflow_uses_core_and_pack_nodes_and_the_default_model_files(comfy, name):
    info = comfy.object_info()
    workflow, mode = _workflow(name), _mode(name)
    types = {node["type"] for node in workflow["nodes"]} - {"MarkdownNote"}
    foreign = {t for t in types if t not in info or not (info[t]["python_module"].startswith(PACK_MODULE)
                                                          or not info[t]["python_module"].startswith("custom_nodes"))}
    assert foreign == set()
    assert ("DreamActorM2_PoseExtract" in types) == (mode == "pose")
    if "native" in name:  # core loaders, encoders and sampler; the pack only for pose, canvas, prompt, result
        assert {t for t in types if t.startswith("DreamActorM2_")} <= NATIVE_PACK_NODES
        assert set(LOADER_FOLDERS) | {"LoraLoaderModelOnly", "KSampler", "CLIPTextEncode"} <= types
        links = {m["name"]: (m["directory"], m["url"]) for node in workflow["nodes"] if node["type"] in LOADER_FOLDERS
                 for m in node["properties"]["models"]}  # the frontend's download links for missing files
        assert links == {m.name: (m.folder, m.url) for m in DEFAULT_MODELS.values() if m.url}
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
    by_class = {node["class_type"]: node["inputs"] for node in prompt.values()}
    if "native" in name:
        sampler = by_class["KSampler"]
        assert (sampler["steps"], sampler["cfg"], sampler["sampler_name"], sampler["scheduler"]) == (30, 6.0, "euler",
                                                                                                   "simple")
        assert by_class["ModelSamplingSD3"]["shift"] == 5.0
        assert by_class["DualCLIPLoader"]["type"] == "hunyuan_video_15"
        assert by_class["CLIPVisionEncode"]["crop"] == "none"  # the whole reference, as the pack encodes it
        assert "Native or pack path?" in notes
    else:
        sampler = by_class["DreamActorM2_Sampler"]
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
    _check_previews(comfy, outputs, prompt, mode, panel, frames)


def _check_previews(comfy, outputs: dict, prompt: dict, mode: str, panel: int, frames: int) -> None:
    """The saved canvas (and skeleton) previews of a tiny run: sizes, frame counts, what each half shows."""
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


# ----- the native workflows -----
NATIVE_FILES = {"transformer": "dreamactor_native_test/narrow_hv15.safetensors",
                "lora": "dreamactor_native_test/narrow_trained_lora.safetensors",
                "vae": "dreamactor_native_test/narrow_hv15_vae.safetensors",
                "image_encoder": "dreamactor_native_test/narrow_siglip.safetensors"}


@pytest.fixture(scope="module")
def native_models(comfy, main_job):
    """Narrow HV1.5 stand-ins under test names (the pack workflows' stand-ins keep the default names)."""
    models = comfy.models_dir
    transformer, adapter = write_narrow_transformer(models / "diffusion_models" / NATIVE_FILES["transformer"])
    write_trained_lora(transformer, adapter, models / "loras" / NATIVE_FILES["lora"])
    write_narrow_vae(models / "vae" / NATIVE_FILES["vae"])
    write_narrow_siglip(models / "clip_vision" / NATIVE_FILES["image_encoder"])
    return main_job


def _native_prompt(object_info: dict, name: str, job, lora_strength: float) -> dict:
    """The shipped native workflow as an API prompt at the tiny size, with the stand-ins swapped in."""
    prompt = ui_to_api(_workflow(name), object_info)
    swaps = {
        "UNETLoader": (None, {"unet_name": NATIVE_FILES["transformer"]}),
        "LoraLoaderModelOnly": (None, {"lora_name": NATIVE_FILES["lora"], "strength_model": lora_strength}),
        "KSampler": (None, {"steps": job.TINY_STEPS}),
        "VAELoader": ("DreamActorTest_NarrowHV15VAELoader", {"vae_name": NATIVE_FILES["vae"]}),
        "CLIPVisionLoader": ("DreamActorTest_NarrowCLIPVisionLoader", {"clip_name": NATIVE_FILES["image_encoder"]}),
        "DualCLIPLoader": ("DreamActorTest_RecordingTextEncoderLoader", {"width": TEXT_WIDTH, "name": f"texts_{name}"}),
    }
    for node in prompt.values():
        title, inputs = node["_meta"]["title"], node["inputs"]
        if title in ("Panel width", "Panel height"):
            inputs["value"] = job.TINY_PANEL
        elif title == "Driving frames":
            inputs["length"] = job.TINY_FRAMES
        elif node["class_type"] in swaps:
            class_type, values = swaps[node["class_type"]]
            if class_type:
                node["class_type"], node["inputs"] = class_type, {}
            node["inputs"].update(values)
    result = next(ident for ident, node in prompt.items() if node["class_type"] == "DreamActorM2_ExtractResult")
    prompt["probe_result"] = {"class_type": "DreamActorTest_Probe", "inputs": {"value": [result, 0], "name": name}}
    return prompt


@pytest.mark.parametrize("name", ["dreamactor_m2_native_pose", "dreamactor_m2_native_rgb"])
def test_native_workflow_runs_end_to_end(comfy, native_models, name):
    """The shipped native workflow from UI format, every node real except three loaders that ComfyUI
    0.3.75 builds at their full, fixed sizes whatever the file holds (so no stand-in file could pass
    through them in CI time):
    - VAELoader -> DreamActorTest_NarrowHV15VAELoader: comfy.sd.VAE with ComfyUI's own HV1.5 encoder and
      decoder classes at the file's widths (the core VAELoader would build the 1.26 B-parameter VAE);
    - DualCLIPLoader -> DreamActorTest_RecordingTextEncoderLoader: a CLIP for the real CLIP Text Encode
      nodes that records each text and returns HV1.5-shaped conditioning seeded by the text (the core
      loader would build Qwen2.5-VL 7B and ByT5);
    - CLIPVisionLoader -> DreamActorTest_NarrowCLIPVisionLoader: ComfyUI's ClipVisionModel with a
      one-layer SigLIP-384 config (the core loader recognises SigLIP only with 23+ full layers).
    UNETLoader and LoraLoaderModelOnly stay real but load narrow test files (a transformer ComfyUI builds
    from the file, and a LoRA the trainer wrote for it) under test names, since the default names hold
    the pack workflows' tiny stand-ins; the panel, frame count and steps shrink as in the main job."""
    job, info = native_models, comfy.object_info()
    prompt = _native_prompt(info, name, job, lora_strength=1.0)
    outputs = comfy.run(prompt, timeout=1200)
    panel, frames, mode = job.TINY_PANEL, job.TINY_FRAMES, _mode(name)
    animation = _saved(comfy, outputs, prompt, "Save animation")
    assert len(animation) == frames  # the lead-in second and the 4k+1 padding are cut
    assert animation.shape[1:3] == (512, 512)  # back at the reference photo's size
    _check_previews(comfy, outputs, prompt, mode, panel, frames)
    # The target-oriented prompt and the negative prompt reached the real CLIP Text Encode nodes.
    widgets = {n["class_type"]: n["inputs"] for n in prompt.values()}
    fused = fuse_prompt(widgets["DreamActorM2_TargetOrientedPrompt"]["motion"],
                        widgets["DreamActorM2_TargetOrientedPrompt"]["appearance"])
    negative = next(n["inputs"]["text"] for n in prompt.values() if n["_meta"]["title"] == "Negative prompt")
    assert sorted(comfy.probe(f"texts_{name}")) == sorted([fused, negative])
    # The LoRA goes through core LoraLoaderModelOnly into the sampled result.
    with_lora = comfy.probe(name)
    comfy.run(_native_prompt(info, name, job, lora_strength=0.0), timeout=1200)
    without = comfy.probe(name)
    assert with_lora.shape == without.shape == (frames, 512, 512, 3)
    assert float((with_lora - without).abs().mean()) > 1e-2


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
