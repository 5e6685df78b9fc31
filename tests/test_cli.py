"""``python -m dreamactor_core animate``: the pipeline outside ComfyUI, run as a user runs it (a
subprocess), on a real photo and a real dancing clip, on tiny models made on the fly or found by
name in a ComfyUI models folder."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image
from real_data import skimage_photo, template_clip
from repo_scripts import run_command

from dreamactor_core.app.cli import build_parser
from dreamactor_core.app.cli_options import parse_lora
from dreamactor_core.app.default_models import DEFAULT_MODELS
from dreamactor_core.pose.extract import BACKENDS
from dreamactor_core.testing.stand_ins import write_tiny_stand_ins
from dreamactor_core.video_io import read_clip

REPO = Path(__file__).resolve().parents[1]
FRAMES = 9


def animate(*args: str) -> subprocess.CompletedProcess:
    return run_command("animate", *args)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("inputs")
    Image.fromarray(skimage_photo("chelsea")).save(folder / "cat.png")  # 451 x 300
    return {"reference": str(folder / "cat.png"), "driving": str(template_clip())}


def _common(inputs: dict, out: Path, mode: str) -> list[str]:
    return ["--reference", inputs["reference"], "--driving", inputs["driving"], "--mode", mode, "--out", str(out),
            "--width", "64", "--height", "64", "--max-frames", str(FRAMES), "--steps", "2", "--no-transition"]


def test_pose_mode_on_tiny_models_writes_animation_skeletons_and_canvas(inputs, tmp_path):
    out = tmp_path / "cat_dancing.mp4"
    run = animate(*_common(inputs, out, "pose"), "--tiny", "--save-driving", str(tmp_path / "skeletons.mp4"),
                  "--save-canvas", str(tmp_path / "canvas.mp4"), "--prompt", "a cat is dancing")
    assert run.returncode == 0, run.stderr
    assert "TINY RANDOM-WEIGHT" in run.stderr
    # The time estimate reaches the user before the bulk of the sampling: forwards (2 steps x 2 guidance
    # branches), then the time measured on the first forward.
    assert f"{FRAMES} frames: 1 window(s) of latent frames, 4 transformer forwards" in run.stderr
    assert "first forward took" in run.stderr
    animation = read_clip(out).frames
    # Every driving frame, at the reference's 451 x 300 (H.264 pads odd sizes by one pixel).
    assert animation.shape[:3] == (FRAMES, 300, 452)
    skeletons = read_clip(tmp_path / "skeletons.mp4").frames
    assert skeletons.shape[:3] == (FRAMES, 64, 64)
    assert ((skeletons.max(axis=3) > 100).mean(axis=(1, 2)) < 0.3).all()  # strokes on black, not photos
    canvas = read_clip(tmp_path / "canvas.mp4").frames
    assert canvas.shape[:3] == (FRAMES, 64, 128)
    assert canvas[0, :, :64].mean() > 40 and canvas[1:, :, :64].max() < 30


def test_rgb_mode_finds_the_default_files_in_a_comfyui_models_folder(inputs, tmp_path):
    models = tmp_path / "models"
    write_tiny_stand_ins(models, tmp_path / "scratch")
    out = tmp_path / "rgb.mp4"
    lora = f"{DEFAULT_MODELS['rgb_lora'].name}:0.8"
    run = animate(*_common(inputs, out, "rgb"), "--models-dir", str(models), "--lora", lora, "--cfg", "1")
    assert run.returncode == 0, run.stderr
    assert "TINY" not in run.stderr
    assert read_clip(out).frames.shape[:3] == (FRAMES, 300, 452)


def test_missing_models_are_named_with_their_folder(inputs, tmp_path):
    run = animate(*_common(inputs, tmp_path / "x.mp4", "rgb"))
    assert run.returncode == 2 and "--transformer, --vae, --text-encoder: required" in run.stderr
    run = animate(*_common(inputs, tmp_path / "x.mp4", "rgb"), "--models-dir", str(tmp_path))
    assert run.returncode == 2
    assert f"'{DEFAULT_MODELS['transformer'].name}' not found: put it in the 'diffusion_models'" in run.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_lora_strength_syntax():
    assert parse_lora("dreamactor_m2/pose.safetensors") == ("dreamactor_m2/pose.safetensors", 1.0)
    assert parse_lora("pose.safetensors:0.5") == ("pose.safetensors", 0.5)
    assert parse_lora(r"C:\loras\pose.safetensors") == (r"C:\loras\pose.safetensors", 1.0)
    with pytest.raises(ValueError, match="NAME:STRENGTH"):
        parse_lora("pose.safetensors:strong")


def test_animate_and_evaluate_offer_every_pose_backend(capsys):
    """The commands take their --pose-backend choices from the engine's list, so a new backend
    (mediapipe_multi came after the commands) is offered everywhere; only the arguments are parsed."""
    commands = {"animate": ["animate", "--reference", "a.png", "--driving", "d.mp4", "--out", "o.mp4"],
                "evaluate": ["evaluate", "--results", "r", "--references", "p", "--driving", "d"]}
    parser = build_parser()
    for command in commands.values():
        for backend in BACKENDS:
            assert parser.parse_args([*command, "--pose-backend", backend]).pose_backend == backend
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--pose-backend", "no_such_backend"])
    assert parser.parse_args([*commands["evaluate"], "--pose-backend", "none"]).pose_backend == "none"
    assert "invalid choice: 'no_such_backend'" in capsys.readouterr().err
