"""The flow-matching sampler: reproducibility, solvers, guidance, windows, progress, bad inputs."""

from __future__ import annotations

import pytest
import torch
from engine_fixtures import canvas_mask

from dreamactor_core import sampling
from dreamactor_core.errors import DreamActorError
from dreamactor_core.models.loading import DreamActorModel, load_transformer
from dreamactor_core.testing.tiny_models import tiny_text_conditioning, write_tiny_models

LATENT = (1, 32, 3, 4, 8)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_transformer(write_tiny_models(tmp_path_factory.mktemp("models"))["transformer"])


@pytest.fixture(scope="module")
def condition():
    return torch.randn(LATENT, generator=torch.Generator().manual_seed(1))


def _run(model, condition, **kwargs):
    defaults = dict(negative=tiny_text_conditioning(seed=1), seed=5, steps=3, cfg=4.0)
    return sampling.sample(model, tiny_text_conditioning(), condition, canvas_mask(condition), **{**defaults, **kwargs})


def test_same_seed_same_video_other_seed_other_video(model, condition):
    first, again, other = _run(model, condition), _run(model, condition), _run(model, condition, seed=6)
    assert first.shape == LATENT and torch.isfinite(first).all()
    assert torch.equal(first, again) and not torch.allclose(first, other)


@pytest.mark.parametrize("solver", sampling.SOLVERS)
def test_every_solver_recovers_x0_from_a_perfect_velocity(model, solver):
    """With v = noise - x0 exactly (a straight flow), every solver must land on x0."""
    target = torch.randn(LATENT, generator=torch.Generator().manual_seed(9))
    noise = torch.randn(LATENT, generator=torch.Generator().manual_seed(5))

    class Oracle(type(model.adapter)):
        def predict_velocity(self, transformer, model_input, timestep, conditioning):
            return noise - target

    oracle = DreamActorModel(model.transformer, Oracle(), "oracle")
    result = sampling.sample(oracle, {}, torch.zeros(LATENT), canvas_mask(target), seed=5, steps=4, cfg=1.0,
                             solver=solver, shift=3.0)
    assert torch.allclose(result, target, atol=1e-5)


@pytest.mark.parametrize("empty_regions", sampling.EMPTY_REGIONS)
def test_empty_canvas_regions_reach_the_model_as_chosen(model, empty_regions):
    seen = []

    class Recorder(type(model.adapter)):
        def predict_velocity(self, transformer, model_input, timestep, conditioning):
            seen.append(model_input[:, 32:64].clone())
            return torch.zeros_like(model_input[:, :32])

    condition = torch.randn(LATENT) + 5.0
    mask = canvas_mask(condition)
    sampling.sample(DreamActorModel(model.transformer, Recorder(), "recorder"), {}, condition, mask, steps=1,
                    cfg=1.0, empty_regions=empty_regions)
    expected = condition * mask if empty_regions == "zero_latent" else condition
    assert torch.equal(seen[0], expected)


def test_cfg_one_ignores_the_negative(model, condition):
    assert torch.equal(_run(model, condition, cfg=1.0), _run(model, condition, cfg=1.0, negative=None))


def test_sigma_schedule_shift_and_denoise():
    assert sampling.sigma_schedule(4, 1.0) == [1.0, 0.75, 0.5, 0.25, 0.0]
    shifted = sampling.sigma_schedule(4, 5.0)
    assert shifted[0] == 1.0 and shifted[-1] == 0.0 and shifted[2] > 0.5
    assert sampling.sigma_schedule(2, 1.0, denoise=0.5) == [0.5, 0.25, 0.0]


def test_denoise_refines_an_existing_latent(model, condition):
    calls = []
    result = _run(model, condition, denoise=0.5, init_latent=torch.zeros(LATENT), progress=lambda d, t: calls.append((d, t)))
    assert result.shape == LATENT and calls[-1] == (6, 6)  # 3 steps x (positive, negative)


def test_temporal_windows_cover_all_frames_and_keep_the_reference():
    windows = sampling.temporal_windows(9, 4, 1)
    assert all(window[0] == 0 for window in windows)
    assert set().union(*map(set, windows)) == set(range(9))
    weights = sampling.window_weights(windows, 9)
    total = torch.zeros(9)
    for window, weight in zip(windows, weights):
        total[window] += weight
    assert torch.allclose(total, torch.ones(9))
    assert sampling.temporal_windows(3, 8, 2) == [[0, 1, 2]]


def test_windowed_sampling_runs_and_a_large_window_changes_nothing(model, condition):
    windowed = _run(model, condition, window_frames=2, window_overlap=0)
    assert windowed.shape == LATENT and torch.isfinite(windowed).all()
    assert torch.equal(_run(model, condition, window_frames=8), _run(model, condition))


def test_progress_counts_every_forward_and_an_interrupt_leaves_the_model_usable(model, condition):
    calls = []
    _run(model, condition, solver="heun", progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (10, 10) and [d for d, _ in calls] == list(range(1, 11))  # (3 + 2) x 2

    class Interrupted(Exception):
        pass

    def stop(done, total):
        if done == 2:
            raise Interrupted

    reference = _run(model, condition)
    with pytest.raises(Interrupted):
        _run(model, condition, progress=stop)
    assert torch.equal(_run(model, condition), reference)


@pytest.mark.parametrize("change, message", [
    (dict(steps=0), "steps"),
    (dict(solver="ddim"), "solver"),
    (dict(empty_regions="grey"), "empty_regions"),
    (dict(denoise=0.5), "denoise < 1"),
    (dict(negative=None), "negative"),
    (dict(condition=torch.zeros(1, 16, 3, 4, 8)), "canvas latent"),
    (dict(mask=torch.zeros(1, 1, 2, 4, 8)), "mask"),
    (dict(condition=torch.zeros(1, 32, 3, 4, 7), mask=torch.zeros(1, 1, 3, 4, 7)), "seam"),
])
def test_bad_inputs_are_clear_errors(model, condition, change, message):
    before = {k: v.clone() for k, v in model.transformer.state_dict().items()}
    latent = change.pop("condition", condition)
    mask = change.pop("mask", canvas_mask(condition))
    arguments = {**dict(negative=tiny_text_conditioning(seed=1), steps=2, cfg=4.0), **change}
    with pytest.raises(DreamActorError, match=message):
        sampling.sample(model, tiny_text_conditioning(), latent, mask, **arguments)
    assert all(torch.equal(v, before[k]) for k, v in model.transformer.state_dict().items())
