"""Training conditions the transformer as inference does: every training forward and the sample
render get the reference frame's SigLIP embedding, the very tensor ``pipeline.animate`` gives the
transformer for that picture; without an image encoder they get the backbone's zero embedding, the
log says so once, and the LoRA's metadata records which it was."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from train_fixtures import tiny_config, tiny_model_paths, video_folder

from dreamactor_core.conditioning.embedding_cache import SHARED_CACHE
from dreamactor_core.models import checkpoints
from dreamactor_core.models.backbones.hunyuan_video_15 import HunyuanVideo15
from dreamactor_core.pipeline import AnimationSettings, animate, load_models
from dreamactor_core.train.loop import train
from dreamactor_core.train.stages import pose_stage
from dreamactor_core.video_io import read_clip, to_unit_frames

PROMPT = "a person dancing"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("train_image_embeds")


@pytest.fixture(scope="module")
def clips(root):
    """A 5-frame clip: with 5-frame windows every sample's reference is the clip's frame 0."""
    return video_folder(root / "clips", frames=5, prompt=PROMPT)


@pytest.fixture
def forwards(monkeypatch):
    """Every transformer forward's (training mode, image_embeds), in call order."""
    seen: list[tuple[bool, torch.Tensor]] = []
    original = HunyuanVideo15.predict_velocity

    def spy(self, transformer, model_input, timestep, conditioning):
        seen.append((transformer.training, conditioning["image_embeds"].detach().clone()))
        return original(self, transformer, model_input, timestep, conditioning)

    monkeypatch.setattr(HunyuanVideo15, "predict_velocity", spy)
    return seen


def _inference_embeds(root, clips, frame: int, seen: list) -> torch.Tensor:
    """The ``image_embeds`` ``pipeline.animate`` gives the transformer for ``frame`` of the clip as
    reference, from freshly loaded models and an emptied embedding cache (nothing reused from training)."""
    SHARED_CACHE.clear()
    frames = to_unit_frames(read_clip(clips / "dancer.webp").frames)
    seen.clear()
    animate(load_models(tiny_model_paths(root)), frames[frame:frame + 1], frames, 25.0, mode="rgb", prompt=PROMPT,
            settings=AnimationSettings(width=64, height=64, steps=1, cfg=1.0))
    assert len(seen) == 1
    return seen[0][1]


def test_training_and_sample_render_get_the_embedding_inference_computes(root, train_cache, clips, forwards):
    config = tiny_config(min_frames=5, max_frames=5, max_steps=1, sample_every=1, sample_steps=2, sample_cfg=2.0)
    messages: list[str] = []
    result = train(pose_stage(clips, config, train_cache, messages.append), tiny_model_paths(root), config,
                   root / "with.safetensors", cache_dir=train_cache, log=messages.append)
    training = [embeds for is_training, embeds in forwards if is_training]
    rendering = [embeds for is_training, embeds in forwards if not is_training]
    assert len(training) == 1 and len(rendering) == 4  # 2 sampler steps x (positive, negative)
    assert (root / "with_samples" / "step_00000001.mp4").is_file()
    expected = _inference_embeds(root, clips, 0, forwards)
    other_frame = _inference_embeds(root, clips, 4, forwards)
    assert expected.ndim == 3 and expected.shape[1] > 1 and expected.abs().max() > 0  # SigLIP tokens, not the placeholder
    assert not torch.equal(expected, other_frame)  # the embedding tells frames apart
    assert all(torch.equal(embeds, expected) for embeds in training + rendering)
    _, metadata = checkpoints.read_header(result.lora)
    assert metadata["image_embeds"] == "siglip"
    assert [m for m in messages if "image embeddings" in m] == [
        "reference image embeddings: tiny_siglip.safetensors (SigLIP), as at inference"]


def test_without_an_image_encoder_training_uses_zeros_and_says_so_once(root, train_cache, clips, forwards):
    paths = replace(tiny_model_paths(root), image_encoder=None)
    config = tiny_config(min_frames=5, max_frames=5, max_steps=2, batch_size=2)
    messages: list[str] = []
    result = train(pose_stage(clips, config, train_cache, messages.append), paths, config, root / "without.safetensors",
                   cache_dir=train_cache, log=messages.append)
    assert len(forwards) == 4
    # No image tokens at all: the adapter drops an absent (all-zero) image embedding, as diffusers masks it whole.
    assert all(embeds.shape[:2] == (1, 0) for _, embeds in forwards)
    assert sum("no image encoder" in m for m in messages) == 1
    _, metadata = checkpoints.read_header(result.lora)
    assert metadata["image_embeds"] == "none"
