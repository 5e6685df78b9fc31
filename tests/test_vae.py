"""Tiled VAE encode/decode: exactness without tiling, exact temporal chunks (the causal state
carried), spatial tiling kept, tile counts, blending, bad inputs.

Chunked against whole-clip results: equal up to float32 summation order (``numerics``): the
chunks run the same convolutions on the same frames, and the mid-block attention sums each query
frame's keys in another grouping. The reduction is the widest sum in the tiny VAE, a 3x3x3
convolution over 64 channels (1728 terms); chunks that restart the VAE miss by ~1 (relative).
"""

from __future__ import annotations

import pytest
import torch
from engine_fixtures import canvas_frames
from numerics import assert_float32_close

from dreamactor_core.errors import DreamActorError
from dreamactor_core.models import vae as video_vae
from dreamactor_core.models.loading import load_vae
from dreamactor_core.testing.tiny_models import write_tiny_models

REDUCTION = 27 * 64  # the tiny VAE's widest sum: a 3x3x3 convolution over 64 channels


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_vae(write_tiny_models(tmp_path_factory.mktemp("models"))["vae"])


def _whole(model, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """diffusers' own single call on the whole clip: normalised latent and its decoded frames."""
    scale = model.vae.config.scaling_factor
    with torch.inference_mode():
        latent = model.vae.encode(frames.permute(3, 0, 1, 2).unsqueeze(0) * 2 - 1).latent_dist.mode() * scale
        video = ((model.vae.decode(latent / scale).sample[0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1)
    return latent, video


@pytest.fixture(scope="module")
def long_clip(model):
    """33 frames (9 latent frames): four 8-frame chunks after the causal frame."""
    frames = torch.rand(33, 32, 48, 3, generator=torch.Generator().manual_seed(3))
    return frames, *_whole(model, frames)


def test_temporal_chunks_carry_the_causal_state_and_equal_the_whole_clip(model, long_clip):
    frames, latent, video = long_clip
    chunked = video_vae.encode_video(model, frames, tile_frames=8, tile_size=0)
    assert_float32_close(chunked, latent, REDUCTION)
    assert_float32_close(video_vae.decode_latent(model, latent, tile_frames=8, tile_size=0), video, REDUCTION)
    # Restarting the VAE at every chunk (the pack's old method) is far outside that bound.
    scale = model.vae.config.scaling_factor
    with torch.inference_mode():
        pixels = frames.permute(3, 0, 1, 2).unsqueeze(0) * 2 - 1
        restarted = torch.cat([model.vae.encode(pixels[:, :, :9]).latent_dist.mode()] + [
            model.vae.encode(pixels[:, :, begin - 1:begin + 8]).latent_dist.mode()[:, :, 1:] for begin in (9, 17, 25)], dim=2)
    with pytest.raises(AssertionError, match="exceeds"):
        assert_float32_close(restarted * scale, latent, REDUCTION)


def test_temporal_chunks_keep_the_vaes_spatial_tiling_and_its_blending(model):
    """64-pixel tiles overlapping by 16 on 80 x 80 frames: two tiles a side, blended by diffusers."""
    frames = torch.rand(17, 80, 80, 3, generator=torch.Generator().manual_seed(4))
    with video_vae._tiling(model, 64, None, 1, "encoder"):  # diffusers' own tiled call on the whole clip
        latent, video = _whole(model, frames)
    assert_float32_close(video_vae.encode_video(model, frames, tile_frames=8, tile_size=64), latent, REDUCTION)
    assert_float32_close(video_vae.decode_latent(model, latent, tile_frames=8, tile_size=64), video, REDUCTION)
    assert not model.vae.use_tiling and all("forward" not in vars(m) for m in model.vae.modules())


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
