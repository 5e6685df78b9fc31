"""Every backbone adapter end to end on tiny models, plus what is particular to each."""

from __future__ import annotations

import pytest
import torch
from engine_fixtures import canvas_frames, canvas_mask
from numerics import TINY_MODEL_REDUCTION, assert_float32_close

from dreamactor_core import sampling
from dreamactor_core.errors import DreamActorError
from dreamactor_core.models import lora
from dreamactor_core.models import vae as video_vae
from dreamactor_core.models.backbones import ADAPTERS, get_adapter
from dreamactor_core.models.backbones.hunyuan_video import fuse_linear1, split_linear1
from dreamactor_core.models.loading import DreamActorModel, load_transformer, load_vae
from dreamactor_core.testing.tiny_models import build_tiny_transformer, tiny_text_conditioning, write_tiny_models


@pytest.fixture(scope="module", params=sorted(ADAPTERS))
def tiny(request, tmp_path_factory):
    paths = write_tiny_models(tmp_path_factory.mktemp(request.param), backbone=request.param)
    return request.param, paths


def _sample(model, latent, backbone, **kwargs):
    arguments = {**dict(negative=tiny_text_conditioning(backbone, seed=1), steps=2, cfg=3.0, seed=4), **kwargs}
    mask = canvas_mask(latent, model.adapter.mask_channels())
    return sampling.sample(model, tiny_text_conditioning(backbone), latent, mask, **arguments)


def test_canvas_to_video_with_every_transformer_layout(tiny):
    backbone, paths = tiny
    vae = load_vae(paths["vae"])
    latent = video_vae.encode_video(vae, canvas_frames(), tile_size=0)
    adapter = get_adapter(backbone)
    assert latent.shape[:2] == (1, adapter.latent_channels) and latent.shape[-1] == 128 // adapter.spatial_compression
    models = [load_transformer(paths[key]) for key in ("transformer_folder", "transformer", "transformer_comfy")]
    assert all(model.adapter is adapter for model in models)
    # Stored weights exactly: the output bound below cannot see every mapping error (in the tiny models a
    # text-refiner key projection with its rows swapped moves the output by ~1e-4, under the bound).
    states = [model.transformer.state_dict() for model in models]
    assert all(state.keys() == states[0].keys() for state in states)
    assert all(torch.equal(state[key], states[0][key]) for state in states[1:] for key in state)
    results = [_sample(model, latent, backbone) for model in models]
    for other in results[1:]:  # the same weights from three layouts: equal up to float32 summation order
        assert_float32_close(other, results[0], TINY_MODEL_REDUCTION)
    assert torch.equal(_sample(models[0], latent, backbone), results[0])  # same model, same inputs: exact
    assert video_vae.decode_latent(vae, results[0], tile_size=0).shape == (9, 64, 128, 3)


def test_lora_layouts_target_exactly_the_visual_ffn(tiny):
    backbone, paths = tiny
    model = load_transformer(paths["transformer"])
    ffn = set(model.adapter.visual_ffn_modules(model.transformer))
    assert ffn and all("context" not in name for name in ffn)
    for key in ("lora", "lora_kohya", "lora_comfy"):
        weights = lora.load_lora(paths[key], model)
        assert set(weights.layers) == ffn and weights.unmatched == []
    spatial = model.adapter.spatial_compression
    latent = torch.randn(1, model.adapter.latent_channels, 3, 64 // spatial, 128 // spatial,
                         generator=torch.Generator().manual_seed(0))
    base = _sample(model, latent, backbone)
    assert not torch.allclose(_sample(model.with_lora(weights, 1.0), latent, backbone), base)
    assert torch.equal(_sample(model, latent, backbone), base)  # same model and inputs again: exact


def test_latent_normalisation_round_trips(tiny):
    backbone, paths = tiny
    adapter, vae = get_adapter(backbone), load_vae(paths["vae_folder"]).vae
    latent = torch.randn(1, adapter.latent_channels, 2, 3, 3)
    assert torch.allclose(adapter.denormalize_latent(vae, adapter.normalize_latent(vae, latent)), latent, atol=1e-5)


def test_wan_mask_folds_the_four_pixel_frames_of_a_latent_frame():
    adapter = get_adapter("wan_i2v")
    latent = torch.zeros(1, 16, 3, 8, 16)
    assert adapter.mask_channels() == 4 and adapter.pack_input(latent, latent, canvas_mask(latent, 4)).shape[1] == 36
    model = DreamActorModel(build_tiny_transformer("wan_i2v"), adapter, "tiny")
    with pytest.raises(DreamActorError, match="mask"):
        sampling.sample(model, tiny_text_conditioning("wan_i2v"), latent, canvas_mask(latent, 1), steps=1, cfg=1.0)


def test_wan21_needs_the_clip_image_embedding():
    transformer = build_tiny_transformer("wan_i2v")
    transformer.register_to_config(image_dim=8)
    with pytest.raises(DreamActorError, match="encoder_hidden_states_image"):
        get_adapter("wan_i2v").prepare_conditioning(transformer, tiny_text_conditioning("wan_i2v"), 1,
                                                    torch.device("cpu"), torch.float32)


def test_hunyuan_video_single_block_split_reads_the_width_from_the_tensor():
    """diffusers' converter assumes width 3072 (backbone gotcha 1); the pack's split must not."""
    fused = {"single_blocks.3.linear1.weight": torch.randn(3 * 24 + 40, 24), "single_blocks.3.linear1.bias": torch.randn(112)}
    parts = split_linear1(fused)
    assert parts["single_blocks.3.linear1_mlp.weight"].shape == (40, 24) and parts["single_blocks.3.linear1_q.bias"].shape == (24,)
    back = fuse_linear1(parts)
    assert all(torch.equal(back[key], fused[key]) for key in fused)  # stored weights: exact


def test_hunyuan_video_needs_the_pooled_text_embedding():
    transformer = build_tiny_transformer("hunyuan_video_i2v")
    text = {"encoder_hidden_states": torch.zeros(1, 4, 32), "encoder_attention_mask": torch.ones(1, 4)}
    with pytest.raises(DreamActorError, match="pooled_projections"):
        get_adapter("hunyuan_video_i2v").prepare_conditioning(transformer, text, 1, torch.device("cpu"), torch.float32)
