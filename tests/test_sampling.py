"""The flow-matching sampler: reproducibility, solvers, guidance, windows, progress, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from engine_fixtures import canvas_mask

from dreamactor_core import sampling
from dreamactor_core.errors import DreamActorError
from dreamactor_core.models import lora
from dreamactor_core.models.loading import DreamActorModel, load_transformer
from dreamactor_core.testing.tiny_models import tiny_text_conditioning, write_tiny_models

LATENT = (1, 32, 3, 4, 8)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return write_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def model(paths):
    return load_transformer(paths["transformer"])


@pytest.fixture(scope="module")
def condition():
    return torch.randn(LATENT, generator=torch.Generator().manual_seed(1))


def _run(model, condition, **kwargs):
    defaults = dict(negative=tiny_text_conditioning(seed=1), seed=5, steps=3, cfg=4.0)
    return sampling.sample(model, tiny_text_conditioning(), condition, canvas_mask(condition), **{**defaults, **kwargs})


def test_same_seed_same_video_other_seed_other_video(model, condition):
    first, again, other = _run(model, condition), _run(model, condition), _run(model, condition, seed=6)
    assert first.shape == LATENT and torch.isfinite(first).all()
    assert torch.equal(first, again) and not torch.allclose(first, other)  # same path, same inputs: exact


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


# ----- a curved flow with a closed form -----
# Data x0 ~ N(0, SIGMA^2) per element, noise ~ N(0, 1), x_s = (1 - s) x0 + s noise. The exact velocity
# E[noise - x0 | x_s] is linear in x: v(x, s) = (s - (1 - s) SIGMA^2) / V(s) * x, V(s) = (1 - s)^2 SIGMA^2 + s^2,
# and the ODE dx/ds = v solves to x(s) = x(1) sqrt(V(s)): from noise at s = 1 the sampler must land on
# SIGMA * noise. The flow curves (v changes along the path), so Heun's corrector and DPM++ 2M's
# second-order term decide the error: Euler converges at order 1, Heun and DPM++ 2M at order 2.
SIGMA = torch.linspace(0.2, 2.0, LATENT[1]).view(1, -1, 1, 1, 1)  # a different curvature per channel


def _gaussian_velocity(x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
    s = timestep.double().view(-1, 1, 1, 1, 1) / 1000.0
    variance = (1 - s) ** 2 * SIGMA.double() ** 2 + s ** 2
    return ((s - (1 - s) * SIGMA.double() ** 2) / variance * x.double()).float()


def _gaussian_oracle(model):
    class GaussianFlow(type(model.adapter)):
        def predict_velocity(self, transformer, model_input, timestep, conditioning):
            return _gaussian_velocity(model_input[:, :LATENT[1]], timestep)

    return DreamActorModel(model.transformer, GaussianFlow(), "gaussian-flow")


def _noise(seed: int) -> torch.Tensor:
    return torch.randn(LATENT, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)


def _flow_error(oracle, solver: str, steps: int) -> float:
    result = sampling.sample(oracle, {}, torch.zeros(LATENT), canvas_mask(torch.zeros(LATENT)), seed=5, steps=steps,
                             cfg=1.0, solver=solver, shift=1.0)
    return float((result.double() - SIGMA.double() * _noise(5).double()).abs().max())


@pytest.mark.parametrize("solver, order", [("euler", 1), ("heun", 2), ("dpmpp_2m", 2)])
def test_every_solver_converges_at_its_order_on_a_curved_flow(model, solver, order):
    oracle = _gaussian_oracle(model)
    errors = [_flow_error(oracle, solver, steps) for steps in (8, 16, 32)]
    measured = [math.log2(coarse / fine) for coarse, fine in zip(errors, errors[1:])]
    assert all(abs(p - order) < 0.35 for p in measured), (errors, measured)
    assert errors[2] < errors[1] < errors[0]


def test_heun_first_step_on_the_curved_flow_is_the_trapezoid_value(model):
    """One Heun step s = 1 -> 0.5 (then Euler to 0), by hand: v(x, 1) = x; x_e = x - 0.5 x;
    x_1/2 = x - 0.25 (x + v(x_e, 0.5)); x_0 = x_1/2 - 0.5 v(x_1/2, 0.5)."""
    noise = _noise(5)
    half = torch.full((1,), 500.0)
    euler = noise - 0.5 * noise
    x_half = noise - 0.25 * (noise + _gaussian_velocity(euler, half))
    expected = x_half - 0.5 * _gaussian_velocity(x_half, half)
    result = sampling.sample(_gaussian_oracle(model), {}, torch.zeros(LATENT), canvas_mask(torch.zeros(LATENT)),
                             seed=5, steps=2, cfg=1.0, solver="heun", shift=1.0)
    assert torch.allclose(result, expected, rtol=1e-5, atol=1e-6)


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
    assert torch.equal(seen[0], expected)  # the same one multiplication (or none): exact


def test_cfg_one_ignores_the_negative(model, condition):
    # cfg 1 runs the positive branch alone either way: the same computation, exact
    assert torch.equal(_run(model, condition, cfg=1.0), _run(model, condition, cfg=1.0, negative=None))


def test_sigma_schedule_shift_and_denoise():
    assert sampling.sigma_schedule(4, 1.0) == [1.0, 0.75, 0.5, 0.25, 0.0]
    shifted = sampling.sigma_schedule(4, 5.0)
    assert shifted[0] == 1.0 and shifted[-1] == 0.0 and shifted[2] > 0.5
    assert sampling.sigma_schedule(2, 1.0, denoise=0.5) == [0.5, 0.25, 0.0]


def test_denoise_starts_from_the_noised_latent_at_the_schedule_start(model, condition):
    """With a straight flow towards ``target``, x(0) = x_start - s0 v and x_start = s0 noise + (1 - s0) init,
    so the result is exactly (1 - s0) init + s0 target: it shows the start level and the mix."""
    target, init = torch.randn(LATENT, generator=torch.Generator().manual_seed(9)), torch.full(LATENT, 0.5)
    noise, seen = _noise(5), []

    class Straight(type(model.adapter)):
        def predict_velocity(self, transformer, model_input, timestep, conditioning):
            seen.append(float(timestep[0]))
            return noise - target

    calls = []
    result = sampling.sample(DreamActorModel(model.transformer, Straight(), "straight"), {}, condition,
                             canvas_mask(condition), seed=5, steps=3, cfg=1.0, shift=3.0, denoise=0.5,
                             init_latent=init, progress=lambda d, t: calls.append((d, t)))
    start = sampling.sigma_schedule(3, 3.0, denoise=0.5)[0]
    assert start == pytest.approx(0.75)  # the shifted 0.5 of a 6-step schedule
    assert seen[0] == pytest.approx(1000 * start, rel=1e-6) and calls[-1] == (3, 3)
    assert torch.allclose(result, (1 - start) * init + start * target, atol=1e-5)
    # the real model: refining moves the given latent, less than sampling from noise does
    refined = _run(model, condition, denoise=0.3, init_latent=init, cfg=1.0, negative=None)
    fresh = _run(model, condition, cfg=1.0, negative=None)
    assert 0 < float((refined - init).norm()) < float((fresh - init).norm())


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
    # a window covering every frame takes the unwindowed path: the same computation, exact
    assert torch.equal(_run(model, condition, window_frames=8), _run(model, condition))


def _hooks(transformer) -> int:
    return sum(len(module._forward_hooks) for module in transformer.modules())


def test_progress_counts_every_forward_and_an_interrupt_removes_the_lora(model, condition, paths):
    calls = []
    _run(model, condition, solver="heun", progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (10, 10) and [d for d, _ in calls] == list(range(1, 11))  # (3 + 2) x 2

    class Interrupted(Exception):
        pass

    def stop(done, total):
        if done == 2:
            raise Interrupted

    reference = _run(model, condition)
    with_lora = model.with_lora(lora.load_lora(paths["lora"], model), 1.0)
    with pytest.raises(Interrupted):  # interrupted while the LoRA's hooks sit on the shared transformer
        _run(with_lora, condition, progress=stop)
    assert _hooks(model.transformer) == 0
    assert torch.equal(_run(model, condition), reference)  # the same model and inputs again: exact


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
def test_bad_inputs_are_clear_errors(model, condition, paths, change, message):
    latent = change.pop("condition", condition)
    mask = change.pop("mask", canvas_mask(condition))
    arguments = {**dict(negative=tiny_text_conditioning(seed=1), steps=2, cfg=4.0), **change}
    with_lora = model.with_lora(lora.load_lora(paths["lora"], model), 1.0)
    with pytest.raises(DreamActorError, match=message):
        sampling.sample(with_lora, tiny_text_conditioning(), latent, mask, **arguments)
    assert _hooks(model.transformer) == 0  # no LoRA hook left behind on the shared transformer
