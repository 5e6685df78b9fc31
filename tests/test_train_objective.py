"""The training objective on small exact tensors: the velocity target, the path every cell is put on
(the sampler's ``noised``), the loss over the whole latent, and the noise-level distribution."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from train_fixtures import tiny_config

from dreamactor_core.sampling.sampler import noised
from dreamactor_core.train.objective import Example, draw_noise_level, flow_matching_loss, velocity_target


class StubAdapter:
    """The adapter calls flow_matching_loss makes, with the model input laid out in the open."""

    def pack_input(self, noisy, condition, mask):
        return torch.cat([noisy, condition, mask], dim=1)

    def predict_velocity(self, transformer, model_input, timestep, text):
        return transformer(model_input, timestep)


class Answer(torch.nn.Module):
    """A 'transformer' that returns a fixed velocity and records what it was given."""

    def __init__(self, velocity: torch.Tensor) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.velocity = velocity

    def forward(self, model_input, timestep):
        self.seen = (model_input.detach().clone(), timestep.detach().clone())
        return self.velocity + self.weight


def _example() -> tuple[Example, torch.Tensor]:
    """Latent [1, 2, 2, 2, 4]: frame 0 and the right half given (mask 1), the rest generated."""
    clean = torch.arange(32, dtype=torch.float32).reshape(1, 2, 2, 2, 4) / 8.0
    noise = torch.linspace(-1.0, 1.0, 32).reshape(1, 2, 2, 2, 4).flip(-1)
    mask = torch.zeros(1, 1, 2, 2, 4)
    mask[:, :, 0] = 1.0
    mask[..., 2:] = 1.0
    condition = clean + 5.0  # anything other than clean: the model sees it, the path does not use it
    return Example(condition, mask, clean, "p", torch.zeros(1, 4, 4, 3)), noise


def test_velocity_target_is_noise_minus_clean():
    assert torch.equal(velocity_target(torch.tensor([1.0, 2.0]), torch.tensor([0.5, -1.0])), torch.tensor([-0.5, -3.0]))


def test_the_true_velocity_has_zero_loss_and_the_reverse_sign_does_not():
    example, noise = _example()
    target = noise - example.clean
    assert flow_matching_loss(Answer(target), StubAdapter(), example, {}, 0.3, noise).item() == 0.0
    reverse = flow_matching_loss(Answer(-target), StubAdapter(), example, {}, 0.3, noise).item()
    assert reverse == pytest.approx(float((2 * target).pow(2).mean()), rel=1e-6)


@pytest.mark.parametrize("cell", [(0, 0, 0, 0), (1, 1, 1, 3), (1, 1, 1, 1)], ids=["frame0-reference", "driving-half",
                                                                               "generated"])
def test_every_latent_cell_counts_in_the_loss(cell):
    """An error of 3 in one of the latent's 32 values gives a loss of 9 / 32 wherever it is: the
    loss covers the given cells too (the sampler moves them with the model's velocity)."""
    example, noise = _example()
    velocity = noise - example.clean
    velocity[(0, 1, *cell[1:])] += 3.0
    loss = flow_matching_loss(Answer(velocity), StubAdapter(), example, {}, 0.7, noise).item()
    assert loss == pytest.approx(9.0 / 32.0, rel=1e-6)


def test_every_cell_is_on_the_samplers_path_and_the_model_sees_the_condition():
    example, noise = _example()
    model = Answer(torch.zeros_like(noise))
    level = 0.25
    flow_matching_loss(model, StubAdapter(), example, {}, level, noise)
    model_input, timestep = model.seen
    expected = 0.75 * example.clean + 0.25 * noise  # given cells included: nothing pins them to the condition
    assert torch.allclose(model_input[:, :2], expected, atol=1e-6)
    assert torch.equal(noised(example.clean, noise, level), model_input[:, :2])
    assert torch.equal(model_input[:, 2:4], example.condition) and torch.equal(model_input[:, 4:], example.mask)
    assert timestep.tolist() == [250.0]


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


@pytest.mark.parametrize("sampling", ["logit_normal", "uniform"])
def test_noise_levels_follow_the_shifted_distribution(sampling):
    """Kolmogorov-Smirnov: 4000 draws against the analytic CDF of s' = shift s / (1 + (shift - 1) s),
    s = sigmoid(N(0, 1)) or U(0, 1). The bound 1.63 / sqrt(n) is the 1% critical value; a missing
    shift or the other base distribution is off by > 0.1."""
    shift, n = 5.0, 4000
    config = tiny_config(timestep_sampling=sampling, timestep_shift=shift)
    generator = torch.Generator().manual_seed(1)
    adapter = SimpleNamespace(default_shift=7.0)  # ignored: the config's shift wins
    levels = sorted(draw_noise_level(generator, config, adapter) for _ in range(n))
    assert 0.0 < levels[0] and levels[-1] < 1.0

    def cdf(level: float) -> float:
        raw = level / (shift - (shift - 1.0) * level)  # the shift inverted
        return _normal_cdf(math.log(raw / (1.0 - raw))) if sampling == "logit_normal" else raw

    distance = max(max(abs((i + 1) / n - cdf(x)), abs(i / n - cdf(x))) for i, x in enumerate(levels))
    assert distance < 1.63 / math.sqrt(n), distance


def test_noise_levels_default_to_the_backbones_sampling_shift():
    generator_a, generator_b = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    by_default = draw_noise_level(generator_a, tiny_config(timestep_sampling="uniform"), SimpleNamespace(default_shift=3.0))
    raw = torch.rand(1, generator=generator_b).item()
    assert by_default == pytest.approx(3.0 * raw / (1.0 + 2.0 * raw), rel=1e-12)
