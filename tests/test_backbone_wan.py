"""The Wan 2.x image-to-video adapter: layouts, folded mask, LoRA names, latent normalisation."""

from __future__ import annotations

import pytest
import torch

from dreamactor_core import lora, sampling
from dreamactor_core import vae as video_vae
from dreamactor_core.backbones import get_adapter
from dreamactor_core.errors import DreamActorError
from dreamactor_core.model_loading import load_transformer, load_vae
from dreamactor_core.tiny_models import build_tiny_transformer, tiny_text_conditioning, write_tiny_models
from engine_fixtures import canvas_frames, canvas_mask

ADAPTER = get_adapter("wan_i2v")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_models(tmp_path_factory.mktemp("models"), backbone="wan_i2v")


def _sample(model, latent, **kwargs):
    arguments = {**dict(negative=tiny_text_conditioning("wan_i2v", seed=1), steps=2, cfg=3.0, seed=4), **kwargs}
    return sampling.sample(model, tiny_text_conditioning("wan_i2v"), latent, canvas_mask(latent, 4), **arguments)


def test_canvas_to_video_with_every_transformer_layout(tiny):
    vae = load_vae(tiny["vae"])
    latent = video_vae.encode_video(vae, canvas_frames(), tile_size=0)
    assert latent.shape == (1, 16, 3, 8, 16)
    results = [_sample(load_transformer(tiny[key]), latent) for key in ("transformer_folder", "transformer", "transformer_comfy")]
    assert all(torch.equal(results[0], other) for other in results[1:]) and torch.isfinite(results[0]).all()
    assert video_vae.decode_latent(vae, results[0], tile_size=0).shape == (9, 64, 128, 3)


def test_folded_mask_has_one_channel_per_pixel_frame(tiny):
    model = load_transformer(tiny["transformer"])
    latent = torch.zeros(1, 16, 3, 8, 16)
    assert ADAPTER.mask_channels() == 4
    assert ADAPTER.pack_input(latent, latent, canvas_mask(latent, 4)).shape[1] == 36
    with pytest.raises(DreamActorError, match="mask"):
        sampling.sample(model, tiny_text_conditioning("wan_i2v"), latent, canvas_mask(latent, 1), steps=1, cfg=1.0)


def test_lora_layouts_target_every_block_ffn(tiny):
    model = load_transformer(tiny["transformer"])
    ffn = set(ADAPTER.visual_ffn_modules(model.transformer))
    assert ffn == {f"blocks.{n}.ffn.net.{p}" for n in range(2) for p in ("0.proj", "2")}
    for key in ("lora", "lora_kohya", "lora_comfy"):
        weights = lora.load_lora(tiny[key], model)
        assert set(weights.layers) == ffn and weights.unmatched == []
    latent = torch.randn(1, 16, 3, 8, 16, generator=torch.Generator().manual_seed(0))
    base = _sample(model, latent)
    assert not torch.allclose(_sample(model.with_lora(weights, 1.0), latent), base)
    assert torch.equal(_sample(model, latent), base)


def test_latent_normalisation_round_trips(tiny):
    vae = load_vae(tiny["vae_folder"]).vae
    latent = torch.randn(1, 16, 2, 3, 3)
    assert torch.allclose(ADAPTER.denormalize_latent(vae, ADAPTER.normalize_latent(vae, latent)), latent, atol=1e-6)


def test_wan21_needs_the_clip_image_embedding():
    transformer = build_tiny_transformer("wan_i2v")
    transformer.register_to_config(image_dim=8)
    with pytest.raises(DreamActorError, match="encoder_hidden_states_image"):
        ADAPTER.prepare_conditioning(transformer, tiny_text_conditioning("wan_i2v"), 1, torch.device("cpu"), torch.float32)
