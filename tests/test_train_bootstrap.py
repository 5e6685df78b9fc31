"""The bootstrap of the RGB stage's data: scorers on real clips and photos, then whole runs on tiny
random-weight models (64 x 64 panels, 9-frame clips, 2 steps) over real source clips: manifest,
report, contact sheet, threshold, interrupt and resume, bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from real_data import CARTOON_CLIP, skimage_photo, template_clip

from dreamactor_core.app import bootstrap_cli
from dreamactor_core.app.cli import main
from dreamactor_core.errors import DreamActorError
from dreamactor_core.pipeline import AnimationSettings, ModelFiles, load_models
from dreamactor_core.pose import extract
from dreamactor_core.testing.tiny_encoders import write_tiny_encoders
from dreamactor_core.testing.tiny_models import build_tiny_transformer, ffn_lora_state_dict, write_tiny_models
from dreamactor_core.train.bootstrap import scorers
from dreamactor_core.train.bootstrap.contact_sheet import row_size
from dreamactor_core.train.bootstrap.inputs import ClipOptions
from dreamactor_core.train.bootstrap.job import BootstrapJob, run_bootstrap
from dreamactor_core.train.bootstrap.report import read_report
from dreamactor_core.train.bootstrap.scoring import ScoringInputs, WeightedScorer, resolve_scorer, run_scorers
from dreamactor_core.train.manifest import read_manifest
from dreamactor_core.video_io import read_clip, read_image, to_unit_frames, write_video

SETTINGS = AnimationSettings(width=64, height=64, steps=2, transition=False)
CLIPS = ClipOptions(clip_frames=9, stride=2, max_frames=9)


def _extract(frames: torch.Tensor):
    return extract.extract_poses(frames, extract.make_estimator("mediapipe", video=True), 0.3)


@pytest.fixture(scope="module")
def dancer():
    """17 frames of the real dancing clip (every other frame) and their poses."""
    frames = to_unit_frames(read_clip(template_clip(), max_frames=17, stride=2).frames)
    return frames, _extract(frames)


def _inputs(dancer, generated: torch.Tensor, identity: torch.Tensor | None = None) -> ScoringInputs:
    frames, poses = dancer
    picture = identity if identity is not None else to_unit_frames(skimage_photo("astronaut"))
    return ScoringInputs(generated, frames, picture, poses, _extract)


# --- scorers on real data --------------------------------------------------------------------------
def test_pose_agreement_ranks_the_same_motion_above_reversed_shuffled_and_other_motion(dancer):
    frames = dancer[0]
    shuffled = frames[torch.from_numpy(np.random.default_rng(0).permutation(len(frames)))]
    cartoon = to_unit_frames(read_clip(template_clip(CARTOON_CLIP), max_frames=17).frames)
    same = scorers.pose_agreement(_inputs(dancer, frames))
    assert same > 4.9  # the same estimator on the same frames: every joint agrees
    for other in (frames.flip(0), shuffled, cartoon):
        assert scorers.pose_agreement(_inputs(dancer, other)) < same - 1.5


def test_pose_agreement_is_the_minimum_without_a_person(dancer):
    blank = torch.full_like(dancer[0], 0.5)
    assert scorers.pose_agreement(_inputs(dancer, blank)) == 1.0


def test_temporal_stability_penalises_shuffled_and_frozen_video_not_reversed(dancer):
    frames = dancer[0]
    shuffled = frames[torch.from_numpy(np.random.default_rng(0).permutation(len(frames)))]
    assert scorers.temporal_stability(_inputs(dancer, frames)) == 5.0
    assert scorers.temporal_stability(_inputs(dancer, frames.flip(0))) == pytest.approx(5.0)  # same motion energy
    assert scorers.temporal_stability(_inputs(dancer, shuffled)) < 4.0  # jumps between distant moments
    assert scorers.temporal_stability(_inputs(dancer, frames[:1].expand_as(frames))) == 1.0  # frozen


def test_appearance_is_higher_for_the_identitys_own_colours(dancer):
    astronaut = to_unit_frames(skimage_photo("astronaut"))
    # V_o stand-in: the astronaut drifting across the frame (what a good V_o of this identity shows).
    generated = torch.stack([torch.roll(astronaut, shifts=8 * t, dims=1) for t in range(9)])
    own = scorers.appearance(_inputs(dancer, generated, astronaut))
    assert own > 4.5
    for unrelated in ("chelsea", "coffee"):
        assert scorers.appearance(_inputs(dancer, generated, to_unit_frames(skimage_photo(unrelated)))) < own - 2
    # Transparent pixels of an RGBA identity are left out: only the opaque (astronaut) part counts.
    left = astronaut[:300, :256]
    half = torch.cat([torch.cat([left, to_unit_frames(skimage_photo("chelsea"))[:300, :256]], dim=1),
                      torch.ones(300, 512, 1)], dim=-1)
    half[:, 256:, 3] = 0
    left_half = left[None].expand(9, -1, -1, -1)
    assert scorers.appearance(_inputs(dancer, left_half, half)) > 4.5
    assert scorers.appearance(_inputs(dancer, left_half, half[..., :3])) < 4.0  # the cat half, counted


def test_scorer_names_weights_import_strings_and_scale(dancer):
    registry = scorers.BUILTIN_SCORERS
    assert resolve_scorer("appearance=2.5", registry) == WeightedScorer("appearance", scorers.appearance, 2.5)
    plugged = resolve_scorer("test_train_bootstrap:prefers_astronaut", registry)
    assert plugged.scorer is prefers_astronaut and plugged.weight == 1.0
    for bad, message in (("sharpness", "not one of"), ("appearance=x", "NAME=WEIGHT"), ("appearance=-1", ">= 0"),
                         ("no_such_module_here:f", "cannot import"), ("test_train_bootstrap:nothing", "has no")):
        with pytest.raises(DreamActorError, match=message):
            resolve_scorer(bad, registry)
    inputs = _inputs(dancer, dancer[0])
    combined, scores = run_scorers([WeightedScorer("five", lambda _: 5.0), WeightedScorer("one", lambda _: 1, 3.0)],
                                   inputs)
    assert combined == 2.0 and scores == {"five": 5.0, "one": 1.0}
    for value in (0.5, 7, float("nan"), "good"):
        with pytest.raises(DreamActorError, match="scorer 'odd' returned"):
            run_scorers([WeightedScorer("odd", lambda _, v=value: v)], inputs)


def prefers_astronaut(inputs: ScoringInputs) -> float:
    """A user's scorer, plugged in by import string: a stand-in for an MLLM judge's verdict."""
    return 5.0 if inputs.identity_name == "astronaut" else 1.0


# --- whole runs on tiny models ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    files = write_tiny_models(folder)
    encoders = write_tiny_encoders(folder / "text_encoders", folder / "clip_vision")
    models = load_models(ModelFiles(files["transformer"], files["vae"], encoders["pipeline"],
                                    loras=((files["lora"], 1.0),)))
    return models, files


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Sources: two real dancing clips, plus a broken file, a clip with nobody and a too-short one;
    identities: two real photos, small so the tiny runs stay fast."""
    root = tmp_path_factory.mktemp("inputs")
    sources, identities = root / "sources", root / "identities"
    (sources / "cartoons").mkdir(parents=True)
    identities.mkdir()
    shutil.copy(template_clip(), sources / "dancer.webp")
    shutil.copy(template_clip(CARTOON_CLIP), sources / "cartoons" / "girl.webp")
    (sources / "cartoons" / "girl.txt").write_text("a girl is dancing")
    (sources / "broken.mp4").write_bytes(b"not a video at all")
    write_video(sources / "empty_room.mp4", torch.full((18, 64, 64, 3), 0.4), 24)
    write_video(sources / "short.mp4", torch.full((4, 64, 64, 3), 0.4), 24)
    Image.fromarray(skimage_photo("astronaut")).resize((96, 96)).save(identities / "astronaut.png")
    Image.fromarray(skimage_photo("chelsea")).resize((96, 64)).save(identities / "chelsea.png")
    (identities / "chelsea.txt").write_text("a tabby cat")
    (identities / "notes.md").write_text("not a picture")
    return sources, identities


def _job(inputs, out: Path, extra: tuple[WeightedScorer, ...] = ()) -> BootstrapJob:
    plugged = resolve_scorer("test_train_bootstrap:prefers_astronaut=10", scorers.BUILTIN_SCORERS)
    builtin = tuple(resolve_scorer(name, scorers.BUILTIN_SCORERS) for name in bootstrap_cli.DEFAULT_SCORERS)
    return BootstrapJob(inputs[0], inputs[1], out, builtin + (plugged,) + extra, settings=SETTINGS, clips=CLIPS,
                        threshold=3.0, thumb=48, sheet_frames=2)


class _InterruptOnCall:
    """A scorer that stops the run (as Ctrl+C would) at its n-th call."""

    def __init__(self, call: int) -> None:
        self.calls, self.call = 0, call

    def __call__(self, inputs: ScoringInputs) -> float:
        self.calls += 1
        if self.calls == self.call:
            raise KeyboardInterrupt
        return 3.0


@pytest.fixture(scope="module")
def runs(tiny, inputs, tmp_path_factory):
    """An interrupted run (at the second pair), the run that finishes the job, and a third with
    nothing left to do; with the files as they were after each."""
    out = tmp_path_factory.mktemp("dataset")
    loads = []

    def load():
        loads.append(1)
        return tiny[0]

    with pytest.raises(KeyboardInterrupt):
        run_bootstrap(_job(inputs, out, (WeightedScorer("interrupt", _InterruptOnCall(2), 0.0),)), load)
    interrupted = {name: (out / name).read_bytes() for name in ("manifest.jsonl", "report.jsonl")}
    finished = run_bootstrap(_job(inputs, out), load)
    manifest_after = (out / "manifest.jsonl").read_bytes()
    again = run_bootstrap(_job(inputs, out), load)
    return out, interrupted, finished, manifest_after, again, loads


def test_kept_triplets_read_back_with_their_files(runs, inputs):
    out = runs[0]
    triplets = read_manifest(out / "manifest.jsonl")
    clips = ["cartoons/girl.webp#frames0-16step2", "dancer.webp#frames0-16step2"]  # frames 0-16, every 2nd
    assert sorted(t.source for t in triplets) == clips
    for triplet in triplets:
        assert triplet.identity == out / "identities" / "astronaut.png"
        generated, target = read_clip(triplet.driving).frames, read_clip(triplet.target).frames
        assert len(generated) == len(target) == 9  # clip of 9 frames after stride 2, every frame kept
        assert generated.shape[1:3] == (64, 64)  # V_o at the identity picture's size, shrunk to the panel
        source = read_clip(inputs[0] / triplet.source.split("#")[0], max_frames=1).frames[0]
        assert target.shape[1:3] == source.shape[:2]  # V_src at its own size
        assert np.array_equal(read_image(triplet.reference), source)  # V_src[0], lossless
    prompts = {t.source: t.prompt for t in triplets}
    assert prompts == {clips[0]: "a girl is dancing", clips[1]: "a person is dancing"}  # girl.txt, or --motion


def test_threshold_keeps_exactly_the_pairs_scored_above_it(runs):
    out = runs[0]
    scored = [o for o in read_report(out / "report.jsonl") if o.status != "skipped"]
    assert len(scored) == 4 and {o.identity for o in scored} == {"astronaut", "chelsea"}
    weights = {"pose_agreement": 1, "temporal_stability": 1, "appearance": 1,
               "test_train_bootstrap:prefers_astronaut": 10, "interrupt": 0}  # in the interrupted run only
    for outcome in scored:
        assert set(weights) - {"interrupt"} <= set(outcome.scores) <= set(weights)
        assert all(1.0 <= v <= 5.0 for v in outcome.scores.values())
        mean = sum(weights[n] * v for n, v in outcome.scores.items()) / sum(weights.values())
        assert outcome.score == pytest.approx(mean)
        assert (outcome.status == "kept") == (outcome.score > 3.0)
    kept = {(t.source, t.identity.stem, t.score) for t in read_manifest(out / "manifest.jsonl")}
    assert kept == {(o.source, o.identity, o.score) for o in scored if o.status == "kept"}


def test_per_video_problems_are_skipped_with_their_reason(runs):
    reasons = {o.source: o.reason for o in read_report(runs[0] / "report.jsonl") if o.status == "skipped"}
    assert "unreadable" in reasons["broken.mp4"]
    assert "no person found" in reasons["empty_room.mp4"]
    assert "fewer than one clip" in reasons["short.mp4"]


def test_interrupt_keeps_written_lines_and_rerun_skips_done_pairs(runs):
    out, interrupted, finished, manifest_after, again, loads = runs
    # Sources run in sorted order: broken.mp4 is skipped, then the cartoon clip with the astronaut is
    # kept; the interrupt comes while scoring the cartoon clip with the cat.
    assert [o.identity for o in read_report(out / "report.jsonl")][:2] == ["", "astronaut"]
    assert interrupted["manifest.jsonl"].count(b"\n") == 1
    assert (out / "manifest.jsonl").read_bytes().startswith(interrupted["manifest.jsonl"])  # appended, not rewritten
    assert (out / "report.jsonl").read_bytes().startswith(interrupted["report.jsonl"])
    assert (finished.kept, finished.rejected, finished.already_done) == (1, 2, 1)  # the kept pair was not redone
    assert (again.kept, again.rejected, again.already_done, again.skipped) == (0, 0, 4, 3)
    assert (out / "manifest.jsonl").read_bytes() == manifest_after
    assert len(loads) == 2  # the third run had nothing to generate and loaded no model
    assert not list(out.rglob(".partial-*"))


def test_contact_sheet_has_one_row_per_scored_pair_best_first(runs):
    out = runs[0]
    sheets = sorted(out.glob("contact_sheet_*.png"))
    assert [s.name for s in sheets] == ["contact_sheet_001.png"]
    width, height = row_size(48, 2)
    with Image.open(sheets[0]) as sheet:
        assert sheet.size == (width, 4 * height)
        pixels = np.asarray(sheet.convert("RGB"))
    astronaut = np.asarray(Image.open(out / "identities" / "astronaut.png").convert("RGB").resize((48, 48)))
    # Best first: the two kept astronaut rows lead, their identity thumbnail is the astronaut.
    for row in range(2):
        assert np.abs(pixels[row * 48:(row + 1) * 48, :48].astype(int) - astronaut).mean() < 12
        assert pixels[row * 48 + 24, width - 10, 1] > pixels[row * 48 + 24, width - 10, 0]  # green panel: kept
    assert pixels[3 * 48 + 24, width - 10, 0] > pixels[3 * 48 + 24, width - 10, 1]  # red panel: rejected


# --- the command and bad inputs --------------------------------------------------------------------
TINY_ARGS = ["--tiny", "--width", "64", "--height", "64", "--clip-frames", "9", "--stride", "2", "--max-frames", "9",
             "--steps", "2"]


def _command(argv: list[str], capsys) -> tuple[int, str, str]:
    """``python -m dreamactor_core train bootstrap ARGV``: exit code, stdout, stderr."""
    capsys.readouterr()
    code = main(["train", "bootstrap", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_command_resumes_a_finished_dataset_without_generating(runs, inputs, capsys):
    sources, identities = inputs
    code, out, _ = _command(["--sources", str(sources), "--identities", str(identities), "--out", str(runs[0]),
                             *TINY_ARGS], capsys)
    assert code == 0
    assert "kept 0, rejected 0, skipped 3, already done 4" in out
    assert "contact_sheet_001.png" in out


def test_folder_problems_stop_the_run_before_any_model_loads(inputs, tmp_path, capsys):
    def never():
        raise AssertionError("models loaded")

    (tmp_path / "no_videos").mkdir()
    (tmp_path / "no_pictures").mkdir()
    (tmp_path / "no_pictures" / "readme.txt").write_text("x")
    (tmp_path / "twins").mkdir()
    (tmp_path / "broken_picture").mkdir()
    (tmp_path / "broken_picture" / "a.png").write_bytes(b"not a png")
    for picture in ("a.png", "a.jpg"):
        Image.new("RGB", (8, 8)).save(tmp_path / "twins" / picture)
    sources, identities = inputs
    for folder_sources, folder_identities, message in (
        (tmp_path / "missing", identities, "does not exist"),
        (tmp_path / "no_videos", identities, "holds no video"),
        (sources, tmp_path / "no_pictures", "holds no picture"),
        (sources, tmp_path / "twins", "share the name 'a'"),
        (sources, tmp_path / "broken_picture", "could not be read"),
    ):
        job = BootstrapJob(folder_sources, folder_identities, tmp_path / "out",
                           (WeightedScorer("five", lambda _: 5.0),), settings=SETTINGS, clips=CLIPS)
        with pytest.raises(DreamActorError, match=message):
            run_bootstrap(job, never)
    with pytest.raises(DreamActorError, match="threshold"):
        BootstrapJob(sources, identities, tmp_path, (WeightedScorer("five", lambda _: 5.0),), threshold=7)
    with pytest.raises(DreamActorError, match="below the clip length"):
        ClipOptions(clip_frames=9, max_frames=5)
    code, _, err = _command(["--sources", str(sources), "--identities", str(identities), "--out",
                             str(tmp_path / "o")], capsys)
    assert code == 2 and "--lora: the pose-stage LoRA is required" in err
    code, _, err = _command(["--sources", str(sources), "--identities", str(identities), "--out",
                             str(tmp_path / "o"), "--lora", "pose.safetensors"], capsys)
    assert code == 2 and "--transformer, --vae, --text-encoder: required" in err
    code, _, err = _command(["--sources", str(sources), "--identities", str(identities), "--out",
                             str(tmp_path / "o"), "--tiny", "--scorer", "sharpness"], capsys)
    assert code == 2 and "scorer 'sharpness': not one of pose_agreement" in err


def test_command_rejects_a_lora_for_another_backbone(inputs, tmp_path, capsys):
    from safetensors.torch import save_file

    wan_lora = tmp_path / "wan_pose_lora.safetensors"
    save_file(ffn_lora_state_dict(build_tiny_transformer("wan_i2v"), "wan_i2v"), str(wan_lora))
    sources, identities = inputs
    code, _, err = _command(["--sources", str(sources), "--identities", str(identities), "--out",
                             str(tmp_path / "o"), "--lora", str(wan_lora), *TINY_ARGS], capsys)
    assert code == 2 and "LoRA 'wan_pose_lora.safetensors' matches none" in err
    report = [json.loads(line) for line in (tmp_path / "o" / "report.jsonl").read_text().splitlines()]
    assert [item["source"] for item in report] == ["broken.mp4"]  # what came before the error stays written
