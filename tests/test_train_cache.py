"""The latent cache (``--cache-latents N``): entries encoded once and read by later runs, keyed by
content and settings (other settings encode new entries; a mismatching file is an error), and each
entry is exactly the uncached encoding of the sample its key draws."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from train_fixtures import tiny_config, tiny_model_paths, video_folder

from dreamactor_core.conditioning.image_encoder import load_image_encoder
from dreamactor_core.errors import DreamActorError
from dreamactor_core.models.loading import load_vae
from dreamactor_core.train.latent_cache import LatentCache, item_digest
from dreamactor_core.train.loop import train
from dreamactor_core.train.objective import Example, encode_example
from dreamactor_core.train.stages import pose_stage

QUIET = lambda message: None  # noqa: E731


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("train_cache_latents")


def _run(root, train_cache, cache_dir, **settings) -> list[str]:
    messages: list[str] = []
    config = tiny_config(min_frames=5, max_frames=5, max_steps=1, cache_latents=2, bone_scale_probability=0.5,
                         **settings)
    stage = pose_stage(video_folder(root / "clips", frames=7), config, train_cache, QUIET)
    train(stage, tiny_model_paths(root), config, root / "out.safetensors", cache_dir=cache_dir, log=messages.append)
    return [m for m in messages if m.startswith("latent cache")]


def test_entries_are_encoded_once_and_other_settings_never_reuse_them(root, train_cache):
    cache_dir = root / "cache"
    assert _run(root, train_cache, cache_dir)[0].startswith("latent cache: 2 variant(s) of 1 clip(s), 2 encoded now, 0 read")
    assert ", 0 encoded now, 2 read" in _run(root, train_cache, cache_dir)[0]
    assert ", 2 encoded now, 0 read" in _run(root, train_cache, cache_dir, bone_scale_range=(0.9, 1.1))[0]
    assert len(list((cache_dir / "latents").glob("*.safetensors"))) == 4


def test_an_entry_is_the_encoding_of_the_sample_its_key_draws(root, train_cache):
    paths = tiny_model_paths(root)
    config = tiny_config(min_frames=5, max_frames=5, bone_scale_probability=0.5)
    stage = pose_stage(video_folder(root / "clips", frames=7), config, train_cache, QUIET)
    vae, encoder = load_vae(paths.vae), load_image_encoder(paths.image_encoder)
    cache = LatentCache(root / "own", config, "tiny")

    def make(item, rng):
        return stage.make_sample(item, rng, config, vae.adapter.temporal_compression)

    def encode(sample):
        example = encode_example(sample, vae, config)
        return replace(example, image_embeds=encoder.encode(sample.reference))

    keys = cache.fill(list(stage.items), 3, make, encode, QUIET)
    assert len(set(keys)) == 3 and keys[1] == cache.key(item_digest(stage.items[0]), 1)
    sample = make(stage.items[0], np.random.default_rng(int(keys[1][:16], 16)))
    fresh, stored = encode(sample), cache.read(keys[1])
    # The same VAE and SigLIP calls on the same frames on one CPU: equal up to float rounding only.
    for name in ("condition", "mask", "clean", "image_embeds"):
        assert torch.allclose(getattr(stored, name), getattr(fresh, name), atol=1e-6), name
    assert stored.prompt == sample.prompt
    # Variants are different draws (window and augmentation), not copies.
    conditions = [cache.read(key).condition for key in keys]
    assert not all(torch.allclose(conditions[0], other) for other in conditions[1:])


def test_an_entry_with_other_settings_is_an_error_not_reused(root, train_cache):
    config = tiny_config(min_frames=5, max_frames=5)
    made, reader = LatentCache(root / "swap", config, "tiny"), LatentCache(root / "swap", config, "other vae")
    made._write("k", Example(torch.zeros(1), torch.zeros(1), torch.zeros(1), "p", torch.zeros(1, 1, 1, 3)))
    with pytest.raises(DreamActorError, match="made with other settings"):
        reader.read("k")
