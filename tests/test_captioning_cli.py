"""``python -m dreamactor_core caption motion|reference|fuse`` run as a user runs it (a subprocess) on
the tiny Qwen2.5-VL: answers on stdout, the exact prompt on request, clear errors for bad files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from repo_scripts import run_command

from dreamactor_core.testing.tiny_captioner import write_tiny_captioner
from dreamactor_core.video_io import write_video

REPO = Path(__file__).resolve().parents[1]


def caption(*args: str) -> subprocess.CompletedProcess:
    return run_command("caption", *args)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("caption_cli")
    files = write_tiny_captioner(root)
    frames = np.random.default_rng(1).integers(0, 256, (6, 40, 48, 3), dtype=np.uint8)
    files["video"] = write_video(root / "clip.mp4", frames, 8.0)
    files["picture"] = root / "picture.png"
    Image.fromarray(frames[0]).save(files["picture"])
    return files


def test_motion_and_reference_answer_deterministically_with_the_prompt_shown(setup):
    first = caption("motion", str(setup["video"]), "--model", str(setup["folder"]), "--frames", "4",
                    "--max-new-tokens", "6", "--show-prompt")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() and "<|video_pad|>" in first.stderr and "generic subject" in first.stderr
    again = caption("motion", str(setup["video"]), "--model", str(setup["folder"]), "--frames", "4",
                    "--max-new-tokens", "6")
    assert again.stdout == first.stdout
    reference = caption("reference", str(setup["picture"]), "--model", str(setup["file"]), "--max-new-tokens", "6",
                        "--instruction", "Name it.", "--show-prompt")
    assert reference.returncode == 0, reference.stderr
    assert "Name it.<|im_end|>" in reference.stderr and "<|image_pad|>" in reference.stderr


def test_fuse_without_a_model_is_the_template_and_says_so():
    done = caption("fuse", "--motion", "a person is waving both hands", "--appearance", "a gray bird")
    assert done.returncode == 0 and done.stdout.strip() == "a gray bird is waving both hands."
    assert "template fusion" in done.stderr


def test_fuse_with_the_model_sends_the_papers_example(setup):
    done = caption("fuse", "--motion", "a person is jumping", "--appearance", "a blue fox", "--model",
                   str(setup["fp8"]), "--max-new-tokens", "6", "--show-prompt")
    assert done.returncode == 0, done.stderr
    assert "a gray bird with colorful feathers is waving its wings" in done.stderr


def test_a_text_encoder_file_without_head_names_the_file_that_serves(setup):
    done = caption("reference", str(setup["picture"]), "--model", str(setup["no_head"]))
    assert done.returncode == 2 and "without the LM head" in done.stderr and "models/LLM" in done.stderr
    missing = caption("reference", str(setup["picture"]), "--model", str(setup["file"].parent / "gone.safetensors"))
    assert missing.returncode == 2 and "'gone.safetensors' not found" in missing.stderr
