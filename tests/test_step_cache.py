"""The sampler's step cache (diffusers' First Block Cache on the pack's sampler): forwards saved and
distance at 30 steps, the plain path when the cache never skips, one cache state per guidance branch
and window, nothing left behind by a run or an interrupt."""

from __future__ import annotations

import copy

import pytest
import torch
from engine_fixtures import canvas_mask

from dreamactor_core import sampling
from dreamactor_core.errors import DreamActorError
from dreamactor_core.models.backbones import get_adapter
from dreamactor_core.models.loading import DreamActorModel
from dreamactor_core.sampling.schedules import sigma_schedule
from dreamactor_core.sampling.step_cache import StepCache
from dreamactor_core.testing.tiny_models import build_tiny_transformer, tiny_text_conditioning

LATENT = (1, 32, 3, 4, 8)
# Measured on this tiny model at 30 steps, cfg 6: threshold 0.3 runs 14 of 60 forwards whole, relative
# L2 distance 0.002 to the uncached latent (bench/step_cache.py --layers 2); the bounds leave 2x and 5x margin.
THRESHOLD, MAX_COMPUTED_SHARE, MAX_DISTANCE = 0.3, 0.5, 0.01


@pytest.fixture(scope="module")
def model():
    return DreamActorModel(build_tiny_transformer(), get_adapter("hunyuan_video_15"), "tiny.safetensors")


@pytest.fixture(scope="module")
def condition():
    return torch.randn(LATENT, generator=torch.Generator().manual_seed(1))


class TailRuns:
    """Counts forwards that ran the last block's own computation (a skipped forward does not)."""

    def __init__(self, transformer):
        self.count = 0
        self.handle = transformer.transformer_blocks[-1].ff.register_forward_hook(lambda *_: self._hit())

    def _hit(self):
        self.count += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _run(model, condition, **kwargs):
    settings = dict(negative=tiny_text_conditioning(seed=1), seed=5, steps=30, cfg=6.0)
    return sampling.sample(model, tiny_text_conditioning(), condition, canvas_mask(condition), **{**settings, **kwargs})


def _distance(a, b):
    return float((a - b).norm() / b.norm())


def test_cache_saves_forwards_within_the_measured_distance(model, condition):
    plain = _run(model, condition)
    with TailRuns(model.transformer) as tail:
        cached = _run(model, condition, cache_threshold=THRESHOLD)
    assert tail.count <= MAX_COMPUTED_SHARE * 60  # 30 steps x 2 branches
    assert 0 < _distance(cached, plain) <= MAX_DISTANCE


def test_a_cache_that_never_skips_is_the_plain_path(model, condition):
    """Threshold 0 adds no hooks; a tiny threshold computes every forward through the hooks and must
    agree with the plain path to float32 rounding (the same operations, regrouped by the hooks)."""
    with TailRuns(model.transformer) as tail:
        plain = _run(model, condition, steps=6)
    assert tail.count == 12
    with TailRuns(model.transformer) as tail:
        hooked = _run(model, condition, steps=6, cache_threshold=1e-9)
    assert tail.count == 12
    assert torch.allclose(hooked, plain, rtol=1e-5, atol=1e-6)


def _separate_cache_reference(model, condition, threshold, steps, cfg):
    """CFG by hand, Euler, each branch on its own deep copy of the transformer with its own cache:
    what per-branch state means, built without the sampler's context names."""
    adapter = model.adapter
    texts = [tiny_text_conditioning(), tiny_text_conditioning(seed=1)]
    copies = [copy.deepcopy(model.transformer) for _ in texts]
    kwargs = [adapter.prepare_conditioning(t, c, 1, torch.device("cpu"), torch.float32) for t, c in zip(copies, texts)]
    mask = canvas_mask(condition)
    x = torch.randn(condition.shape, generator=torch.Generator("cpu").manual_seed(5))
    sigmas = sigma_schedule(steps, adapter.default_shift)
    for copy_ in copies:
        StepCache(copy_, threshold).__enter__()
    with torch.inference_mode():
        for s, s_next in zip(sigmas[:-1], sigmas[1:]):
            timestep = torch.full((1,), s * 1000.0)
            model_input = adapter.pack_input(x, condition, mask)
            velocities = []
            for copy_, text in zip(copies, kwargs):
                with copy_.cache_context("only"):
                    velocities.append(adapter.predict_velocity(copy_, model_input, timestep, text))
            x = x + (s_next - s) * (velocities[1] + cfg * (velocities[0] - velocities[1]))
    return x


def test_each_guidance_branch_keeps_its_own_cache_state(model, condition):
    """A cache shared by the positive and negative forwards would compare each with the other
    branch's residual and skip (or compute) on the wrong evidence."""
    reference = _separate_cache_reference(model, condition, THRESHOLD, steps=30, cfg=6.0)
    cached = _run(model, condition, cache_threshold=THRESHOLD)
    assert torch.allclose(cached, reference, rtol=1e-5, atol=1e-5)


def test_windows_and_branches_each_get_a_context(model, condition, monkeypatch):
    names = []
    original = StepCache.context

    def spy(self, name):
        names.append(name)
        return original(self, name)

    monkeypatch.setattr(StepCache, "context", spy)
    _run(model, condition, steps=2, window_frames=2, window_overlap=0, cache_threshold=THRESHOLD)
    per_step = len(names) // 2
    assert per_step == 4 and len(set(names[:per_step])) == 4  # 2 windows x 2 branches, all distinct
    assert names[:per_step] == names[per_step:]  # the same state again at the next step


def _fbc_hooks(transformer) -> int:
    return sum("fbc" in name for module in transformer.modules()
               for name in getattr(getattr(module, "_diffusers_hook", None), "hooks", {}))


def test_no_cache_state_survives_a_run_or_an_interrupt(model, condition):
    first = _run(model, condition, steps=8, cache_threshold=THRESHOLD)
    assert not model.transformer.is_cache_enabled and _fbc_hooks(model.transformer) == 0

    def interrupt(done, total):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(model, condition, steps=8, cache_threshold=THRESHOLD, progress=interrupt)
    assert not model.transformer.is_cache_enabled and _fbc_hooks(model.transformer) == 0
    again = _run(model, condition, steps=8, cache_threshold=THRESHOLD)
    assert torch.allclose(again, first, rtol=1e-6, atol=1e-7)  # the same run from a clean state


def test_a_negative_threshold_is_refused(model, condition):
    with pytest.raises(DreamActorError, match="cache_threshold"):
        _run(model, condition, steps=2, cache_threshold=-0.1)
