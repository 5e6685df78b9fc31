"""RGB-stage training: manifest triplets, warm start from a pose LoRA in any layout (the delta is
carried over exactly), refusal of LoRAs for another backbone or rank without losing files, and a
warning (not a refusal) for a pose LoRA trained with another reference image embedding setting."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from real_data import CARTOON_CLIP, template_clip
from safetensors.torch import save_file
from train_fixtures import dancer_frames, tiny_config, tiny_model_paths, write_webp

from dreamactor_core.errors import DreamActorError
from dreamactor_core.models import checkpoints
from dreamactor_core.models.loading import load_transformer
from dreamactor_core.models.lora import load_lora
from dreamactor_core.testing.tiny_models import build_tiny_transformer, ffn_lora_state_dict
from dreamactor_core.train.loop import train
from dreamactor_core.train.lora_peft import read_warm_start
from dreamactor_core.train.manifest import Triplet, append_triplet
from dreamactor_core.train.stages import rgb_stage
from dreamactor_core.video_io import read_clip

QUIET = lambda message: None  # noqa: E731


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("train_rgb")


@pytest.fixture(scope="module")
def manifest(root):
    """One triplet: V_src = the dancer's first 9 frames, V_o = 9 frames of a cartoon dancer."""
    data = root / "data"
    data.mkdir()
    target = write_webp(data / "src.webp", dancer_frames()[:9])
    driving = write_webp(data / "vo.webp", read_clip(template_clip(CARTOON_CLIP), max_frames=9).frames)
    Image.fromarray(dancer_frames()[0]).save(data / "ref.png")
    append_triplet(data / "manifest.jsonl", Triplet(driving, target, data / "ref.png", "a cartoon girl dancing", 4.8,
                                                    {"imaging": 4.8}, data / "ref.png", "dancer"))
    return data / "manifest.jsonl"


def _delta(path, model):
    """Each layer's effective weight change, scale x up @ down, as the pack's loader applies it."""
    return {name: layer.scale * layer.up.float() @ layer.down.float() for name, layer in load_lora(path, model).layers.items()}


def test_warm_start_carries_a_kohya_lora_over_exactly(root, manifest):
    paths = tiny_model_paths(root)
    pose_lora = root / "pose_kohya.safetensors"
    save_file(ffn_lora_state_dict(build_tiny_transformer(), rank=8, alpha=2.0, layout="kohya", seed=4), str(pose_lora))
    config = tiny_config(rank=8, learning_rate=0.0, weight_decay=0.0, max_steps=1)
    result = train(rgb_stage(manifest, config, QUIET), paths, config, root / "rgb.safetensors",
                   cache_dir=root / "cache", init_lora=pose_lora, log=QUIET)
    assert result.step == 1 and torch.isfinite(torch.tensor(result.losses)).all()
    _, metadata = checkpoints.read_header(result.lora)
    assert metadata["stage"] == "rgb"
    model = load_transformer(paths.transformer)
    expected, got = _delta(pose_lora, model), _delta(result.lora, model)
    assert expected.keys() == got.keys() and len(got) == 4
    assert all(torch.allclose(expected[name], got[name], atol=1e-6) for name in expected)


def test_training_moves_the_warm_started_lora(root, manifest):
    paths = tiny_model_paths(root)
    pose_lora = root / "pose_diffusers.safetensors"
    save_file(ffn_lora_state_dict(build_tiny_transformer(), rank=8, alpha=8.0, seed=5), str(pose_lora))
    config = tiny_config(rank=8, learning_rate=1e-3, max_steps=2, batch_size=2)
    result = train(rgb_stage(manifest, config, QUIET), paths, config, root / "rgb_moved.safetensors",
                   cache_dir=root / "cache", init_lora=pose_lora, log=QUIET)
    model = load_transformer(paths.transformer)
    before, after = _delta(pose_lora, model), _delta(result.lora, model)
    assert all((before[name] - after[name]).abs().max() > 1e-5 for name in before)


def test_warm_start_from_a_lora_trained_without_image_embeds_warns_and_trains(root, manifest):
    paths = tiny_model_paths(root)
    pose_lora = root / "pose_without_embeds.safetensors"
    save_file(ffn_lora_state_dict(build_tiny_transformer(), rank=8, alpha=8.0, seed=6), str(pose_lora),
              metadata={"stage": "pose", "image_embeds": "none"})
    config = tiny_config(rank=8, max_steps=1)
    messages: list[str] = []
    result = train(rgb_stage(manifest, config, QUIET), paths, config, root / "rgb_warned.safetensors",
                   cache_dir=root / "cache", init_lora=pose_lora, log=messages.append)
    assert result.step == 1
    assert [m for m in messages if m.startswith("warning")] == [
        "warning: --init-lora 'pose_without_embeds.safetensors' was trained with reference image embeddings 'none', "
        "this run uses 'siglip'; the warm start still applies"]
    assert checkpoints.read_header(result.lora)[1]["image_embeds"] == "siglip"


@pytest.mark.parametrize("metadata, this_run, warned", [
    ({"stage": "pose", "image_embeds": "siglip"}, "siglip", False),
    ({"stage": "pose", "image_embeds": "siglip"}, "none", True),
    ({"stage": "pose"}, "siglip", True),  # this pack's LoRAs from before the key trained without
    ({}, "siglip", False),  # a LoRA from elsewhere does not say how it was trained
])
def test_warm_start_warns_only_when_the_image_embeds_setting_differs(root, metadata, this_run, warned):
    pose_lora = root / "pose_metadata.safetensors"
    save_file(ffn_lora_state_dict(build_tiny_transformer(), rank=8, seed=7), str(pose_lora), metadata=metadata)
    model = load_transformer(tiny_model_paths(root).transformer)
    messages: list[str] = []
    layers = read_warm_start(pose_lora, model, model.adapter.visual_ffn_modules(model.transformer), 8, this_run,
                             messages.append)
    assert len(layers) == 4
    assert len(messages) == int(warned)


@pytest.mark.parametrize("make, message", [
    (lambda: ffn_lora_state_dict(build_tiny_transformer("wan_i2v"), backbone="wan_i2v", rank=8), "matches none"),
    (lambda: ffn_lora_state_dict(build_tiny_transformer(), rank=4), "has rank \\[4\\], this run trains rank 8"),
])
def test_a_wrong_warm_start_is_refused_and_nothing_is_lost(root, manifest, make, message):
    paths = tiny_model_paths(root)
    bad = root / "bad_init.safetensors"
    save_file(make(), str(bad))
    out = root / "kept" / "rgb.safetensors"
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(b"an earlier LoRA")
    earlier = root / "kept" / "rgb_checkpoints" / "step_00000007"
    earlier.mkdir(parents=True, exist_ok=True)
    (earlier / "model.safetensors").write_bytes(b"earlier state")
    config = tiny_config(rank=8, max_steps=1)
    with pytest.raises(DreamActorError, match=message):
        train(rgb_stage(manifest, config, QUIET), paths, config, out, cache_dir=root / "cache", init_lora=bad, log=QUIET)
    assert out.read_bytes() == b"an earlier LoRA"
    assert (earlier / "model.safetensors").read_bytes() == b"earlier state"
    assert sorted(p.name for p in out.parent.iterdir()) == ["rgb.safetensors", "rgb_checkpoints"]


def test_manifest_clips_shorter_than_the_minimum_are_an_error(manifest):
    with pytest.raises(DreamActorError, match="every clip is shorter than min_frames 13"):
        rgb_stage(manifest, tiny_config(min_frames=13, max_frames=21), QUIET)
