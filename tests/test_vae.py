"""Tiled VAE encode/decode: exactness without tiling, tile counts, blending, bad inputs."""

from __future__ import annotations

import pytest
import torch
from engine_fixtures import canvas_frames

from dreamactor_core.errors import DreamActorError
from dreamactor_core.models import vae as video_vae
from dreamactor_core.models.loading import load_vae
from dreamactor_core.testing.tiny_models import write_tiny_models


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_vae(write_tiny_models(tmp_path_factory.mktemp("models"))["vae"])


def test_one_tile_equals_the_plain_diffusers_vae(model):
    frames = canvas_frames()
    latent = video_vae.encode_video(model, frames, tile_frames=16, tile_size=0)
    with torch.no_grad():
        pixels = frames.permute(3, 0, 1, 2).unsqueeze(0) * 2 - 1
        expected = model.vae.encode(pixels).latent_dist.mode() * model.vae.config.scaling_factor
        decoded = model.vae.decode(expected / model.vae.config.scaling_factor).sample
    assert latent.shape == (1, 32, 3, 4, 8) and torch.equal(latent, expected)
    video = video_vae.decode_latent(model, latent, tile_frames=16, tile_size=0)
    assert video.shape == frames.shape
    assert torch.equal(video, ((decoded[0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1))


def test_tiles_are_counted_in_time_and_space(model):
    frames = canvas_frames()
    calls = []
    latent = video_vae.encode_video(model, frames, tile_frames=4, tile_overlap_frames=0, tile_size=64,
                                    progress=lambda d, t: calls.append((d, t)))
    assert latent.shape == (1, 32, 3, 4, 8) and torch.isfinite(latent).all()
    assert calls[-1] == (12, 12)  # 2 chunks in time x (1 row x 6 columns of 64-pixel tiles)
    calls.clear()
    video = video_vae.decode_latent(model, latent, tile_frames=4, tile_overlap_frames=0, tile_size=0,
                                    progress=lambda d, t: calls.append((d, t)))
    assert video.shape == frames.shape and calls[-1] == (2, 2)
    assert 0.0 <= float(video.min()) and float(video.max()) <= 1.0


def test_blending_cross_fades_only_the_overlap():
    out = torch.zeros(6)
    video_vae._blend_into(out, 0, torch.ones(4), 0, 0)
    video_vae._blend_into(out, 2, torch.full((4,), 3.0), 2, 0)
    assert torch.allclose(out, torch.tensor([1.0, 1.0, 1 + 2 / 3, 1 + 4 / 3, 3.0, 3.0]))


def test_chunks_cover_long_videos_with_constant_size():
    starts = video_vae._chunk_starts(121, 16, 12)
    assert starts[0] == 0 and starts[-1] + 16 >= 120 and len(starts) == 10


def test_state_is_restored_and_bad_inputs_are_errors(model):
    before = {k: v for k, v in vars(model.vae).items() if k == "use_tiling" or k.startswith("tile_")}
    video_vae.encode_video(model, canvas_frames(), tile_size=64)

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        video_vae.decode_latent(model, torch.zeros(1, 32, 3, 4, 8), tile_size=32, progress=interrupt)
    assert {k: v for k, v in vars(model.vae).items() if k == "use_tiling" or k.startswith("tile_")} == before
    assert all(not m._forward_hooks for m in model.vae.modules())
    with pytest.raises(DreamActorError, match="4k\\+1 frames"):
        video_vae.encode_video(model, torch.zeros(8, 64, 128, 3))
    with pytest.raises(DreamActorError, match="IMAGE batch"):
        video_vae.encode_video(model, torch.zeros(9, 64, 128))
    with pytest.raises(DreamActorError, match="latent"):
        video_vae.decode_latent(model, torch.zeros(1, 16, 3, 4, 8))
    with pytest.raises(DreamActorError, match="multiples of 4"):
        video_vae.decode_latent(model, torch.zeros(1, 32, 3, 4, 8), tile_frames=6)
