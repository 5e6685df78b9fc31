"""The whole pipeline inside real ComfyUI, on a real photo and a real dancing clip, in both modes:
the README's main-job graphs (scripts/run_workflows.py) with tiny random-weight model files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dreamactor_core.tiny_models import write_tiny_models
from dreamactor_core.video_io import read_clip
from dreamactor_core.tiny_encoders import write_tiny_encoders

pytestmark = pytest.mark.comfy

REPO = Path(__file__).resolve().parents[1]


def _main_job():
    spec = importlib.util.spec_from_file_location("run_workflows", REPO / "scripts" / "run_workflows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def prepared(comfy):
    job = _main_job()
    tiny = write_tiny_models(comfy.models_dir)
    write_tiny_encoders(comfy.models_dir / "text_encoders", comfy.models_dir / "clip_vision")
    job.prepare_inputs(comfy.input_dir)
    files = {"vae": tiny["vae"].name, "transformer": tiny["transformer"].name, "lora": tiny["lora"].name,
             "text_encoder": "tiny_hunyuan_video_15_pipeline"}
    return job, files


def _saved(comfy, outputs: dict, node: str) -> np.ndarray:
    entry = outputs[node]["images"][0]
    return read_clip(comfy.output_dir / entry["subfolder"] / entry["filename"]).frames


@pytest.mark.parametrize("mode", ["pose", "rgb"])
def test_reference_and_driving_clip_become_a_saved_animation(comfy, prepared, mode):
    job, files = prepared
    outputs = comfy.run(job.build(comfy.object_info(), mode, files), timeout=1200)
    driving = read_clip(comfy.input_dir / "driving.mp4").frames
    animation = _saved(comfy, outputs, "animation")
    assert len(animation) == len(driving)  # transition and 4k+1 padding cut, every driving frame kept
    assert animation.shape[1:3] == (512, 512)  # the reference photo's size
    canvas = _saved(comfy, outputs, "canvas_preview")
    assert (len(canvas) - 1) % 4 == 0 and canvas.shape[1:3] == (job.PANEL, 2 * job.PANEL)
    # Reference on the left of frame 0 only; black left half on every later frame (codec noise aside).
    assert canvas[0, :, : job.PANEL].mean() > 40
    assert canvas[1:, :, : job.PANEL].max() < 30
    if mode == "pose":
        skeletons = _saved(comfy, outputs, "skeleton_preview")
        assert len(skeletons) == len(driving)
        assert (skeletons.max(axis=(1, 2, 3)) > 100).mean() > 0.8  # a skeleton drawn on most frames
