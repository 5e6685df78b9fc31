"""``--captioner`` for ``train pose`` and ``train bootstrap``: clips without a caption file get the
captioner's prompt (a tiny random-weight Qwen2.5-VL of the real classes, scripted to answer a fixed
text through its real ``generate``), cached on disk so a second run loads no captioner; a written
caption still wins; a broken captioner file stops the run before training or generation."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image
from real_data import skimage_photo, template_clip
from train_fixtures import dancer_frames, tiny_config, write_webp

from dreamactor_core.app.cli import main
from dreamactor_core.conditioning import captioner as captioner_module
from dreamactor_core.conditioning.prompt import fuse_prompt
from dreamactor_core.errors import DreamActorError
from dreamactor_core.pipeline import AnimationSettings, load_models
from dreamactor_core.testing.stand_ins import write_tiny_model_files
from dreamactor_core.testing.tiny_captioner import script_answers, write_tiny_captioner
from dreamactor_core.train import captions as captions_module
from dreamactor_core.train.bootstrap import job as job_module
from dreamactor_core.train.bootstrap.inputs import ClipOptions
from dreamactor_core.train.bootstrap.job import BootstrapJob, run_bootstrap
from dreamactor_core.train.bootstrap.scoring import WeightedScorer
from dreamactor_core.train.captions import ClipCaptions
from dreamactor_core.train.data import prepare_pose_videos
from dreamactor_core.train.manifest import read_manifest

ANSWER = "he jumps"  # no repeated character: script_answers chains one token to the next
SMALL = captioner_module.GenerationSettings(max_new_tokens=12, image_pixels=32 * 32, frame_pixels=32 * 32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_tiny_captioner(tmp_path_factory.mktemp("captioner"))


@pytest.fixture()
def loads(monkeypatch):
    """Every captioner load, counted; the loaded model answers ``ANSWER`` to any question (small
    pictures keep the tiny model fast)."""
    count: list[str] = []

    def load(path, **kwargs):
        count.append(str(path))
        captioner = captioner_module.load_captioner(path, **{**kwargs, "settings": SMALL})
        script_answers(captioner.model, captioner.processor.tokenizer, ANSWER)
        return captioner

    monkeypatch.setattr(captions_module, "load_captioner", load)
    return count


def _cache(tmp_path, train_cache):
    """A fresh cache folder holding the session's poses (so no test re-extracts them)."""
    cache = tmp_path / "cache"
    if (train_cache / "poses").is_dir():
        shutil.copytree(train_cache / "poses", cache / "poses")
    return cache


def _clips(folder):
    """The dancer's first 7 frames three times: raw (no caption), with a .txt, listed in captions.json."""
    folder.mkdir(parents=True)
    for name in ("raw", "texted", "listed"):
        write_webp(folder / f"{name}.webp", dancer_frames()[:7])
    (folder / "texted.txt").write_text("a dancer in a red dress")
    (folder / "captions.json").write_text(json.dumps({"listed": "a dancer on a stage"}))
    return folder


def _prompts(folder, config, cache, messages):
    return {item.path.name: item.prompt for item in prepare_pose_videos(folder, config, cache, messages.append)}


def test_raw_clips_are_captioned_once_and_written_captions_win(tmp_path, train_cache, files, loads):
    folder, cache = _clips(tmp_path / "clips"), _cache(tmp_path, train_cache)
    config = tiny_config(min_frames=5, max_frames=5, prompt="a fixed prompt", captioner=str(files["file"]))
    expected = {"raw.webp": f"{ANSWER}.", "texted.webp": "a dancer in a red dress", "listed.webp": "a dancer on a stage"}
    messages: list[str] = []
    assert _prompts(folder, config, cache, messages) == expected
    assert loads == [str(files["file"])]
    assert f"captioned raw.webp: '{ANSWER}.'" in messages and not any("texted" in m or "listed" in m
                                                                       for m in messages if "caption" in m)
    assert any(m.startswith("captioner freed after captioning 1 clip(s): raw.webp") for m in messages)
    (entry,) = [json.loads(p.read_text()) for p in (cache / "captions").glob("*.json")]
    assert entry == {"motion": ANSWER, "appearance": ANSWER, "caption": f"{ANSWER}.", "source": "raw.webp"}

    again: list[str] = []
    assert _prompts(folder, config, cache, again) == expected
    assert len(loads) == 1  # the second run read the cache and loaded no captioner
    assert f"caption of raw.webp from the cache: '{ANSWER}.'" in again

    # another frame stride is another clip for the captioner: captioned again, not reused
    assert _prompts(folder, tiny_config(min_frames=3, max_frames=3, frame_stride=2, captioner=str(files["file"])),
                    cache, [])["raw.webp"] == f"{ANSWER}."
    assert len(loads) == 2
    # without --captioner the old rule: the fixed prompt
    assert _prompts(folder, tiny_config(min_frames=5, max_frames=5, prompt="a fixed prompt"), cache, []) == {
        **expected, "raw.webp": "a fixed prompt"}


def test_train_pose_command_trains_on_captioned_raw_clips(tmp_path, train_cache, files, loads, monkeypatch):
    from dreamactor_core.train import text_cache

    folder, cache = tmp_path / "clips", _cache(tmp_path, train_cache)
    folder.mkdir()
    write_webp(folder / "raw.webp", dancer_frames()[:5])
    encoded: list[str] = []
    prepare = text_cache.TextEmbeddings.prepare

    def recording(self, prompts, load_encoder, log=print):
        encoded.extend(prompts)
        return prepare(self, prompts, load_encoder, log)

    monkeypatch.setattr(text_cache.TextEmbeddings, "prepare", recording)
    argv = ["train", "pose", "--tiny", "--videos", str(folder), "--cache-dir", str(cache), "--min-frames", "5",
            "--max-frames", "5", "--max-steps", "1", "--rank", "4", "--captioner", str(files["file"])]
    assert main([*argv, "--out", str(tmp_path / "one.safetensors")]) == 0
    assert f"{ANSWER}." in encoded and (tmp_path / "one.safetensors").is_file()
    assert main([*argv, "--out", str(tmp_path / "two.safetensors")]) == 0
    assert len(loads) == 1


@pytest.mark.parametrize("kind", ["text_only", "garbage", "missing"])
def test_a_broken_captioner_stops_the_run_before_training(tmp_path, train_cache, files, kind, monkeypatch, capsys):
    from dreamactor_core.train import loop

    path = {"text_only": files["text_only"], "garbage": tmp_path / "garbage.safetensors",
            "missing": tmp_path / "nowhere.safetensors"}[kind]
    if kind == "garbage":
        path.write_bytes(b"this is not a safetensors file")
    trained: list[int] = []
    monkeypatch.setattr(loop, "train", lambda *args, **kwargs: trained.append(1))
    folder, cache = tmp_path / "clips", _cache(tmp_path, train_cache)
    folder.mkdir()
    write_webp(folder / "raw.webp", dancer_frames()[:5])
    code = main(["train", "pose", "--tiny", "--videos", str(folder), "--cache-dir", str(cache), "--min-frames", "5",
                 "--max-frames", "5", "--max-steps", "1", "--out", str(tmp_path / "lora.safetensors"),
                 "--captioner", str(path)])
    error = capsys.readouterr().err
    assert code == 2 and not trained
    expected = {"text_only": "without the vision tower", "garbage": "garbage.safetensors",
                "missing": "nowhere.safetensors"}[kind]
    assert "error: " in error and expected in error
    assert not (cache / "captions").exists() or not list((cache / "captions").iterdir())


# --- bootstrap -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return load_models(write_tiny_model_files(folder, image_encoder=False))


def test_bootstrap_captions_motion_and_appearance_without_text_files(tmp_path, files, loads, tiny_models,
                                                                    monkeypatch):
    sources, identities = tmp_path / "sources", tmp_path / "identities"
    sources.mkdir(), identities.mkdir()
    shutil.copy(template_clip(), sources / "raw.webp")
    shutil.copy(template_clip(), sources / "texted.webp")
    (sources / "texted.txt").write_text("a girl is dancing")
    Image.fromarray(skimage_photo("astronaut")).resize((64, 64)).save(identities / "astronaut.png")
    Image.fromarray(skimage_photo("chelsea")).resize((64, 48)).save(identities / "chelsea.png")
    (identities / "chelsea.txt").write_text("a tabby cat")
    prompts: list[str] = []
    animate = job_module.animate

    def recording(*args, prompt, **kwargs):
        assert all(c._captioner is None for c in captions_seen)  # freed before any generation
        prompts.append(prompt)
        return animate(*args, prompt=prompt, **kwargs)

    captions_seen: list[ClipCaptions] = []
    monkeypatch.setattr(job_module, "animate", recording)
    messages: list[str] = []

    def run():
        captions = ClipCaptions(files["file"], tmp_path / "cache", log=messages.append)
        captions_seen.append(captions)
        job = BootstrapJob(sources, identities, tmp_path / "out", (WeightedScorer("five", lambda inputs: 5.0),),
                           captions=captions, settings=AnimationSettings(width=64, height=64, steps=2, transition=False),
                           clips=ClipOptions(clip_frames=9, stride=2, max_frames=9), threshold=4.5, thumb=48,
                           sheet_frames=2)
        return run_bootstrap(job, lambda: tiny_models, messages.append)

    assert run().kept == 4
    assert sorted(prompts) == sorted(fuse_prompt(motion, look) for motion in (ANSWER, "a girl is dancing")
                                     for look in (ANSWER, "a tabby cat"))
    triplets = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert sorted({(t.source.split("#")[0], t.prompt) for t in triplets}) == [
        ("raw.webp", ANSWER), ("texted.webp", "a girl is dancing")]
    assert f"captioned astronaut.png: '{ANSWER}'" in messages and f"captioned raw.webp: '{ANSWER}'" in messages
    assert not any(m.startswith(("captioned chelsea", "captioned texted")) for m in messages)
    assert loads == [str(files["file"])]
    assert run().already_done == 4 and len(loads) == 1  # the re-run reads the cache: no captioner loaded


def test_bootstrap_stops_on_a_broken_captioner_before_generating(tmp_path, files):
    sources, identities = tmp_path / "sources", tmp_path / "identities"
    sources.mkdir(), identities.mkdir()
    shutil.copy(template_clip(), sources / "raw.webp")
    Image.fromarray(skimage_photo("astronaut")).resize((64, 64)).save(identities / "astronaut.png")
    generated: list[int] = []
    job = BootstrapJob(sources, identities, tmp_path / "out", (WeightedScorer("five", lambda inputs: 5.0),),
                       captions=ClipCaptions(files["no_head"], tmp_path / "cache", log=lambda m: None),
                       clips=ClipOptions(clip_frames=9, stride=2, max_frames=9))
    with pytest.raises(DreamActorError, match=r"without the LM head"):
        run_bootstrap(job, lambda: generated.append(1))
    assert not generated and not (tmp_path / "out" / "manifest.jsonl").exists()


def test_bootstrap_command_passes_the_captioner_and_stops_before_generating(tmp_path, files, capsys):
    sources, identities = tmp_path / "sources", tmp_path / "identities"
    sources.mkdir(), identities.mkdir()
    shutil.copy(template_clip(), sources / "raw.webp")
    Image.fromarray(skimage_photo("astronaut")).resize((64, 64)).save(identities / "astronaut.png")
    code = main(["train", "bootstrap", "--tiny", "--sources", str(sources), "--identities", str(identities),
                 "--out", str(tmp_path / "out"), "--captioner", str(files["text_only"])])
    assert code == 2 and "without the vision tower" in capsys.readouterr().err
    assert not (tmp_path / "out" / "report.jsonl").exists()
