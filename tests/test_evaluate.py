"""``python -m dreamactor_core evaluate`` (run as a subprocess) on videos made like the demo's: the
astronaut photo as reference, the real dancing clip as driving, and two results, one that moves
exactly like the clip and one of blinking noise; plus the model-free measures on known signals."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from real_data import skimage_photo, template_clip
from repo_scripts import run_command

from dreamactor_core.app.evaluation import motion_smoothness, pair_files, temporal_flicker
from dreamactor_core.errors import DreamActorError
from dreamactor_core.testing.tiny_captioner import write_tiny_captioner
from dreamactor_core.testing.tiny_encoders import write_tiny_encoders
from dreamactor_core.video_io import read_clip, write_video

REPO = Path(__file__).resolve().parents[1]
FRAMES = 12


def evaluate(*args: str) -> subprocess.CompletedProcess:
    return run_command("evaluate", *args)


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench")
    for folder in ("results", "references", "driving"):
        (root / folder).mkdir()
    Image.fromarray(skimage_photo("astronaut")).resize((96, 96)).save(root / "references" / "astronaut.png")
    clip = read_clip(template_clip(), max_frames=FRAMES)
    write_video(root / "driving" / "dance.mp4", clip.frames, clip.fps)
    write_video(root / "results" / "astronaut__dance.mp4", clip.frames, clip.fps)  # moves exactly like the clip
    noise = np.random.default_rng(0).integers(0, 256, (FRAMES, *clip.frames.shape[1:])).astype(np.float32)
    noise = (noise * np.where(np.arange(FRAMES) % 2, 0.4, 1.0)[:, None, None, None]).astype(np.uint8)  # blinks
    write_video(root / "results" / "astronaut__dance_noise.mp4", noise, clip.fps)
    (root / "driving" / "dance_noise.mp4").write_bytes((root / "driving" / "dance.mp4").read_bytes())
    write_video(root / "results" / "nobody__dance.mp4", noise, clip.fps)  # no such reference
    return root


def test_evaluate_writes_the_report_and_contact_sheet(bench, tmp_path):
    siglip = write_tiny_encoders(tmp_path / "text_encoders", tmp_path / "clip_vision")["siglip"]
    judge = write_tiny_captioner(tmp_path / "models")["folder"]
    out = tmp_path / "report"
    done = evaluate("--results", str(bench / "results"), "--references", str(bench / "references"),
                    "--driving", str(bench / "driving"), "--out", str(out), "--image-encoder", str(siglip),
                    "--model", str(judge), "--judge-frames", "2")
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    videos = {entry["name"]: entry for entry in report["videos"]}
    assert set(videos) == {"astronaut__dance", "astronaut__dance_noise"}
    good, noise = videos["astronaut__dance"]["measures"], videos["astronaut__dance_noise"]["measures"]
    assert good["pose_agreement"] == pytest.approx(5.0, abs=0.3)  # the clip against itself (after mp4 coding)
    assert "pose_agreement" not in noise or noise["pose_agreement"] < good["pose_agreement"]
    assert noise["temporal_flicker"] > good["temporal_flicker"]
    assert noise["motion_smoothness"] < good["motion_smoothness"]
    assert -1.0 <= good["siglip_similarity_min"] <= good["siglip_similarity"] <= 1.0
    # the random-weight judge answers no number: every aspect is reported with its two answers, none guessed
    judged = videos["astronaut__dance"]["judge"]
    assert judged["unreadable"] == list(judged["scores"]) and all(len(a) == 2 for a in judged["answers"].values())
    assert not any(name.startswith("judge_") for name in good)
    assert report["average"]["temporal_flicker"]["videos"] == 2
    assert report["average"]["temporal_flicker"]["mean"] == pytest.approx(
        (good["temporal_flicker"] + noise["temporal_flicker"]) / 2)
    assert report["skipped"] == [{"name": "nobody__dance", "reason": report["skipped"][0]["reason"]}]
    assert "no reference picture" in report["skipped"][0]["reason"]
    sheet = out / "contact_sheet_001.png"
    assert sheet.is_file() and Image.open(sheet).height == 2 * 96
    assert "wrote" in done.stdout and '"temporal_flicker"' in done.stdout


def test_measures_are_skipped_with_reasons_not_defaulted(bench, tmp_path):
    done = evaluate("--results", str(bench / "results"), "--references", str(bench / "references"),
                    "--driving", str(bench / "driving"), "--out", str(tmp_path), "--pose-backend", "none")
    assert done.returncode == 0, done.stderr
    entry = json.loads((tmp_path / "report.json").read_text())["videos"][0]
    assert entry["skipped"] == {"pose_agreement": "--pose-backend none", "siglip_similarity": "no --image-encoder",
                                "judge": "no --model (a Qwen2.5-VL-Instruct judge)"}
    assert set(entry["measures"]) == {"temporal_flicker", "motion_smoothness"}


def test_bad_folders_are_clear_errors(bench, tmp_path):
    done = evaluate("--results", str(tmp_path), "--references", str(bench / "references"),
                    "--driving", str(bench / "driving"))
    assert done.returncode == 2 and "holds no video" in done.stderr
    with pytest.raises(DreamActorError, match="references folder .* does not exist"):
        pair_files(bench / "results", tmp_path / "missing", bench / "driving")


def test_flicker_and_smoothness_on_known_signals():
    steady = torch.full((6, 16, 16, 3), 0.5)
    assert temporal_flicker(steady) == 0.0 and motion_smoothness(steady) == 1.0
    blinking = torch.stack([torch.full((16, 16, 3), 0.2 + 0.6 * (t % 2)) for t in range(6)])
    assert temporal_flicker(blinking) == pytest.approx(0.6)
    assert motion_smoothness(blinking) == pytest.approx(1.0 - 0.6)  # |x_t - blend of neighbours| = 0.6
    ramp = torch.stack([torch.full((16, 16, 3), t / 10) for t in range(6)])  # even change: linear blend is exact
    assert motion_smoothness(ramp) == pytest.approx(1.0) and temporal_flicker(ramp) == pytest.approx(0.1)
    assert temporal_flicker(steady[:1]) is None and motion_smoothness(steady[:2]) is None
