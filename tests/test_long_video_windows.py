"""The sampler's overlapping temporal windows checked by value: a velocity that depends on where a
frame sits in its window must blend exactly as the ramps say, and a sequence longer than one window
must sample through the windowed path to the unwindowed result when the velocity is per frame."""

from __future__ import annotations

import pytest
import torch
from engine_fixtures import canvas_mask

from dreamactor_core import sampling
from dreamactor_core.models.backbones import get_adapter
from dreamactor_core.models.loading import DreamActorModel
from dreamactor_core.testing.tiny_models import build_tiny_transformer

CHANNELS = 32


@pytest.fixture(scope="module")
def transformer():
    return build_tiny_transformer()


class _PositionAdapter:
    """Velocity = the condition + the frame's position inside its window (0 for the reference frame):
    what a model with temporal position embeddings does, so every window disagrees on shared frames."""

    def pack_input(self, noisy, condition, mask):
        return torch.cat([noisy, condition, mask], dim=1)

    def predict_velocity(self, transformer, model_input, timestep, conditioning):
        condition = model_input[:, CHANNELS:2 * CHANNELS]
        position = torch.arange(condition.shape[2], dtype=condition.dtype).view(1, 1, -1, 1, 1)
        return condition + position


def _blend(transformer, frames, window, overlap, condition):
    windows = sampling.temporal_windows(frames, window, overlap)
    mask = canvas_mask(condition)
    velocity = sampling.GuidedVelocity(DreamActorModel(transformer, _PositionAdapter(), "stub"), [{}], 1.0,
                                       condition, mask, windows, None, len(windows))
    return windows, velocity(torch.zeros_like(condition), 0.5)


def test_position_dependent_velocities_blend_by_the_hand_computed_ramps(transformer):
    # 8 latent frames, windows of 4 with 1 shared frame: [0,1,2,3], [0,3,4,5], [0,5,6,7]. Frame 3 is the
    # last of window 0 (position 3) and the first new one of window 1 (position 1), each weighted 1/2;
    # frame 0 is position 0 everywhere. Expected offsets by hand:
    condition = torch.randn(1, CHANNELS, 8, 2, 4, generator=torch.Generator().manual_seed(0))
    windows, blended = _blend(transformer, 8, 4, 1, condition)
    assert windows == [[0, 1, 2, 3], [0, 3, 4, 5], [0, 5, 6, 7]]
    offsets = torch.tensor([0, 1, 2, 0.5 * 3 + 0.5 * 1, 2, 0.5 * 3 + 0.5 * 1, 2, 3]).view(1, 1, -1, 1, 1)
    torch.testing.assert_close(blended, condition + offsets, atol=1e-6, rtol=0)


def test_two_shared_frames_cross_fade_one_third_two_thirds(transformer):
    # [0,1,2,3,4], [0,3,4,5,6], [0,5,6,7,8]: on frames 3, 4 the leaving window weighs 2/3, 1/3 and the
    # arriving one 1/3, 2/3 (linear ramps); positions: frame 3 is 3 then 1, frame 4 is 4 then 2.
    condition = torch.randn(1, CHANNELS, 9, 2, 4, generator=torch.Generator().manual_seed(1))
    windows, blended = _blend(transformer, 9, 5, 2, condition)
    assert windows == [[0, 1, 2, 3, 4], [0, 3, 4, 5, 6], [0, 5, 6, 7, 8]]
    fade = [2 / 3 * 3 + 1 / 3 * 1, 1 / 3 * 4 + 2 / 3 * 2]
    offsets = torch.tensor([0, 1, 2, *fade, *fade, 3, 4]).view(1, 1, -1, 1, 1)
    torch.testing.assert_close(blended, condition + offsets, atol=1e-6, rtol=0)


@pytest.mark.parametrize("frames, window, overlap", [(9, 4, 1), (13, 5, 2), (11, 6, 0), (10, 4, 2)])
def test_position_dependent_velocities_blend_as_the_window_weights(transformer, frames, window, overlap):
    condition = torch.randn(1, CHANNELS, frames, 2, 4, generator=torch.Generator().manual_seed(frames))
    windows, blended = _blend(transformer, frames, window, overlap, condition)
    assert len(windows) > 1
    expected = condition.clone()
    offsets = torch.zeros(frames)
    for members, weight in zip(windows, sampling.window_weights(windows, frames)):
        offsets[members] += weight * torch.arange(len(members), dtype=torch.float32)
    torch.testing.assert_close(blended, expected + offsets.view(1, 1, -1, 1, 1), atol=1e-6, rtol=0)


def test_a_sequence_longer_than_one_window_samples_to_the_unwindowed_result(transformer):
    """A per-frame velocity (nonlinear in the latent, so every step matters) is the same in every
    window, so blending with weights that sum to one must reproduce the single-window run."""

    class PerFrame(type(get_adapter("hunyuan_video_15"))):
        def predict_velocity(self, transformer, model_input, timestep, conditioning):
            x, condition = model_input[:, :CHANNELS], model_input[:, CHANNELS:2 * CHANNELS]
            return torch.sin(3 * x) * (1 + condition) + float(timestep[0]) / 1000.0

    model = DreamActorModel(transformer, PerFrame(), "per-frame")
    condition = torch.randn(1, CHANNELS, 11, 4, 8, generator=torch.Generator().manual_seed(2))
    mask = canvas_mask(condition)
    common = dict(seed=3, steps=4, cfg=1.0, shift=3.0)
    whole = sampling.sample(model, {}, condition, mask, **common)
    for window, overlap in ((4, 1), (5, 2), (3, 0)):
        assert len(sampling.temporal_windows(11, window, overlap)) > 1
        windowed = sampling.sample(model, {}, condition, mask, window_frames=window, window_overlap=overlap, **common)
        # Same per-frame arithmetic, summed with weights that add to 1 in float32: rounding only.
        torch.testing.assert_close(windowed, whole, atol=1e-5, rtol=0)
