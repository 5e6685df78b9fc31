"""The streamed long-video node in real ComfyUI: the shipped workflow (Load Video -> DreamActor-M2
Animate Long Video -> Save Video, on the pack's loaders and encoders) runs a real driving clip that
spans several windows on tiny random-weight models, and its saved mp4 is the core's ``animate_stream``
on the same files and inputs; bad inputs fail with messages that say what is wrong."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from repo_scripts import load_script

from comfy_harness.server import PromptFailed
from comfy_harness.workflow import ui_to_api
from dreamactor_core.app.default_models import DEFAULT_MODELS
from dreamactor_core.conditioning.image_encoder import load_image_encoder
from dreamactor_core.conditioning.prompt import fuse_prompt
from dreamactor_core.conditioning.text_encoder import load_text_encoder
from dreamactor_core.long_video import StreamSettings, animate_stream, plan_windows
from dreamactor_core.long_video.video_stream import open_video
from dreamactor_core.models.loading import load_transformer, load_vae
from dreamactor_core.models.lora import load_lora
from dreamactor_core.pipeline import AnimationModels, AnimationSettings
from dreamactor_core.testing.stand_ins import write_tiny_stand_ins
from dreamactor_core.video_io import VideoWriter, read_clip, read_image, to_unit_frames

pytestmark = pytest.mark.comfy

REPO = Path(__file__).resolve().parents[1]
NAME = "dreamactor_m2_long_video"
NODE = "DreamActorM2_AnimateLongVideo"
# Tiny run: 32 px panel, 2 steps, windows of 4 latent frames continuing 1, every second frame of the
# shipped 33-frame 24 fps driving clip (17 frames at 12 fps). With the 12-frame lead-in that is 29
# canvas frames = 8 latent frames: 3 windows.
TINY = {"width": 32, "height": 32, "steps": 2, "window_frames": 4, "context_frames": 1, "stride": 2}
DRIVING_FRAMES, DRIVING_FPS, WINDOWS = 17, 12, 3


@pytest.fixture(scope="module")
def job(comfy, tmp_path_factory):
    job = load_script("run_workflows")
    write_tiny_stand_ins(comfy.models_dir, tmp_path_factory.mktemp("tiny"))
    job.prepare_inputs(comfy.input_dir)
    return job


def _workflow() -> dict:
    return json.loads((REPO / "workflows" / f"{NAME}.json").read_text())


def _prompt(comfy, **changes) -> dict:
    """The shipped workflow as an API prompt at the tiny size, with ``changes`` on the long-video node."""
    prompt = ui_to_api(_workflow(), comfy.object_info())
    node = next(n for n in prompt.values() if n["class_type"] == NODE)
    node["inputs"].update(TINY | changes)
    return prompt


def _use_lora(prompt: dict, mode: str) -> None:
    node = next(n for n in prompt.values() if n["class_type"] == "DreamActorM2_LoadLora")
    node["inputs"]["lora_name"] = DEFAULT_MODELS[f"{mode}_lora"].name


def _saved(comfy, outputs: dict, prompt: dict) -> Path:
    node = next(ident for ident, n in prompt.items() if n["class_type"] == "SaveVideo")
    entry = outputs[node]["images"][0]
    return comfy.output_dir / entry["subfolder"] / entry["filename"]


def test_shipped_workflow_is_load_video_to_the_streamed_node_to_save_video(comfy):
    """Nothing in the graph holds the clip as an IMAGE batch: the VIDEO goes straight in, a VIDEO
    comes out; the pack's loaders name the default files and the notes say where they go."""
    workflow, info = _workflow(), comfy.object_info()
    prompt = ui_to_api(workflow, info)
    by_class = {n["class_type"]: (ident, n["inputs"]) for ident, n in prompt.items()}
    load_video, _ = by_class["LoadVideo"]
    node_id, node = by_class[NODE]
    assert node["video"] == [load_video, 0]
    assert by_class["SaveVideo"][1]["video"] == [node_id, 0]
    assert not {"GetVideoComponents", "CreateVideo", "ImageFromBatch"} & by_class.keys()
    assert info[NODE]["output"] == ["VIDEO", "STRING"]
    assert (node["mode"], node["window_frames"], node["context_frames"]) == ("pose", 31, 3)
    assert (node["width"], node["height"], node["steps"], node["cfg"], node["shift"]) == (416, 624, 30, 6.0, 5.0)
    values = [v for n in workflow["nodes"] for v in n.get("widgets_values", []) if isinstance(v, str)]
    notes = " ".join(n["widgets_values"][0] for n in workflow["nodes"] if n["type"] == "MarkdownNote")
    for role in ("transformer", "vae", "text_encoder", "glyph_encoder", "image_encoder", "pose_lora"):
        assert DEFAULT_MODELS[role].name in values
        assert DEFAULT_MODELS[role].name in notes and f"{DEFAULT_MODELS[role].folder}/" in notes
    assert DEFAULT_MODELS["rgb_lora"].name in notes  # the note says which LoRA rgb mode needs


def test_rgb_mode_streams_the_first_max_frames(comfy, job):
    """rgb mode (the driving frames themselves, with the RGB LoRA) on the first 5 kept frames:
    5 + 12 lead-in = 17 canvas frames = 5 latent frames, 2 windows."""
    prompt = _prompt(comfy, mode="rgb", max_frames=5)
    _use_lora(prompt, "rgb")
    saved = read_clip(_saved(comfy, comfy.run(prompt, timeout=1200), prompt))
    assert len(saved.frames) == 5 and saved.fps == pytest.approx(DRIVING_FPS, abs=1e-6)
    assert len(plan_windows(5, TINY["window_frames"], TINY["context_frames"])) == 2


def test_cancel_after_a_window_was_written_stops_the_run_and_removes_the_half_written_video(comfy, job):
    """Cancel (ComfyUI's /interrupt) once the first window is in the mp4: the next progress report
    raises ComfyUI's interrupt, and the node removes the partial file from the temp folder."""
    prompt = _prompt(comfy, mode="rgb", stride=1, seed=7)  # 33 frames: 7 windows; a new seed, nothing cached
    _use_lora(prompt, "rgb")
    temp = comfy.base_dir / "temp" / "dreamactor_m2"
    before = set(temp.glob("long_video_*.mp4")) if temp.is_dir() else set()
    prompt_id = comfy.queue(prompt)
    deadline = time.monotonic() + 600
    while not (set(temp.glob("long_video_*.mp4")) - before if temp.is_dir() else set()):
        assert time.monotonic() < deadline, "the node never started its mp4"
        time.sleep(0.02)
    comfy.interrupt()
    with pytest.raises(PromptFailed, match="execution_interrupted"):
        comfy.wait(prompt_id, timeout=600)
    assert set(temp.glob("long_video_*.mp4")) == before


def _core_models(models_dir: Path, mode: str) -> AnimationModels:
    """The files the workflow's loaders read, loaded by the core as the CLI loads them (float32 on the
    CPU, as ComfyUI's --cpu 'auto' precision gives)."""
    path = {role: model.path(models_dir) for role, model in DEFAULT_MODELS.items()}
    model = load_transformer(path["transformer"])
    model = model.with_lora(load_lora(path[f"{mode}_lora"], model), 1.0)
    return AnimationModels(model, load_vae(path["vae"]), load_text_encoder(path["text_encoder"], path["glyph_encoder"]),
                           load_image_encoder(path["image_encoder"]))


def test_shipped_workflow_streams_several_windows_into_the_cores_animate_stream_result(comfy, job, tmp_path):
    """The shipped pose workflow as an artist runs it (tiny sizes), against the core on the same files."""
    prompt = _prompt(comfy)
    node_id = next(ident for ident, n in prompt.items() if n["class_type"] == NODE)
    prompt["probe_report"] = {"class_type": "DreamActorTest_Probe", "inputs": {"value": [node_id, 1],
                                                                              "name": "long_video_report"}}
    outputs = comfy.run(prompt, timeout=1200)
    node = next(n["inputs"] for n in prompt.values() if n["class_type"] == NODE)
    fused = next(fuse_prompt(n["inputs"]["motion"], n["inputs"]["appearance"]) for n in prompt.values()
                 if n["class_type"] == "DreamActorM2_TargetOrientedPrompt")
    negative = next(n["inputs"]["negative_prompt"] for n in prompt.values()
                    if n["class_type"] == "DreamActorM2_TextEncode")
    source = open_video(comfy.input_dir / "driving.mp4", stride=node["stride"])
    reference = to_unit_frames(read_image(comfy.input_dir / "reference.png")[None])
    settings = AnimationSettings(width=node["width"], height=node["height"], steps=node["steps"], cfg=node["cfg"],
                                 shift=node["shift"], seed=node["seed"], solver=node["solver"],
                                 negative_prompt=negative)
    core_path, results = tmp_path / "core.mp4", []
    with VideoWriter(core_path, source.fps) as writer:
        def write(chunk):
            results.append(chunk.result)
            writer.write(chunk.result)

        report = animate_stream(_core_models(comfy.models_dir, "pose"), reference, source.chunks(16), source.frames,
                                source.fps, mode="pose", prompt=fused, write=write, settings=settings,
                                stream=StreamSettings(node["window_frames"], node["context_frames"]))
    assert len(report.windows) == WINDOWS and len(results) == WINDOWS
    # The node surfaces the core's estimate: windows, forwards (2 steps x 2 guidance branches a window)
    # and the seconds per forward measured at the first one.
    summary = comfy.probe("long_video_report")
    assert summary.startswith(f"{DRIVING_FRAMES} frames: {WINDOWS} window(s) of latent frames, "
                              f"{WINDOWS * 2 * 2} transformer forwards at ")
    assert "(measured)" in summary and summary.endswith(f"wrote {DRIVING_FRAMES} frames at {DRIVING_FPS} fps")
    saved = read_clip(_saved(comfy, outputs, prompt))
    assert saved.fps == pytest.approx(DRIVING_FPS, abs=1e-6)
    node_frames = saved.frames.astype(np.float32)
    core_frames = read_clip(core_path).frames.astype(np.float32)
    assert node_frames.shape == core_frames.shape == (DRIVING_FRAMES, 512, 512, 3)
    # Both mp4s come from VideoWriter (x264, crf 18) on the same computation; the float results agree to
    # float32 noise across the two processes, so at most a few uint8 values round the other way and the
    # encoder's output shifts by a code value or two around them. A different seed, a dropped or
    # misplaced window, or a wrong context gives differences of tens of code values everywhere.
    difference = np.abs(node_frames - core_frames)
    assert difference.mean() < 0.5 and np.percentile(difference, 99.9) <= 4, (difference.mean(), difference.max())
    # Against the core's float frames themselves: the codec's own loss on random-weight noise only.
    core_float = torch.cat(results).numpy() * 255
    assert np.abs(core_float - node_frames).mean() < 8


def test_a_video_without_frames_is_refused_with_its_name(comfy, job):
    import av

    with av.open(str(comfy.input_dir / "no_frames.mp4"), mode="w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()  # a header, no frame
    prompt = _prompt(comfy)
    next(n for n in prompt.values() if n["class_type"] == "LoadVideo")["inputs"]["file"] = "no_frames.mp4"
    with pytest.raises(PromptFailed) as failure:
        comfy.run(prompt, timeout=600)
    assert failure.value.node_type == NODE
    assert "no_frames.mp4" in failure.value.exception_message
    assert "holds no video stream" in failure.value.exception_message


def test_a_file_that_is_not_a_video_is_refused_with_its_name(comfy, job):
    (comfy.input_dir / "not_a_video.mp4").write_bytes(b"this is text, not a video")
    prompt = _prompt(comfy)
    next(n for n in prompt.values() if n["class_type"] == "LoadVideo")["inputs"]["file"] = "not_a_video.mp4"
    with pytest.raises(PromptFailed) as failure:
        comfy.run(prompt, timeout=600)
    assert failure.value.node_type == NODE
    assert "not_a_video.mp4" in failure.value.exception_message and "could not be read" in \
        failure.value.exception_message


def test_a_missing_file_and_a_wrong_mode_are_refused_before_anything_runs(comfy, job):
    prompt = _prompt(comfy)
    next(n for n in prompt.values() if n["class_type"] == "LoadVideo")["inputs"]["file"] = "gone.mp4"
    with pytest.raises(PromptFailed, match="gone.mp4"):
        comfy.queue(prompt)
    with pytest.raises(PromptFailed) as failure:
        comfy.queue(_prompt(comfy, mode="depth"))
    assert "mode" in json.dumps(failure.value.node_errors) and "depth" in json.dumps(failure.value.node_errors)


def test_windows_that_leave_no_new_frame_are_refused_with_the_limit(comfy, job):
    with pytest.raises(PromptFailed, match=r"context_frames: expected 0\.\.1"):
        comfy.run(_prompt(comfy, context_frames=2), timeout=600)
