"""Flow-matching ODE solvers: one object per run, ``step`` moves the latent from s to s_next.

The velocity is v = noise - x0 with x_t = (1 - s) x0 + s noise, so the clean estimate at level s is
x0 = x - s v. A solver receives the velocity already computed at (x, s) and may ask for more
(Heun's corrector) through ``velocity``.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

import torch

from ..errors import DreamActorError

SOLVERS = ("euler", "heun", "dpmpp_2m")
Velocity = Callable[[torch.Tensor, float], torch.Tensor]


class Solver(Protocol):
    def step(self, x: torch.Tensor, v: torch.Tensor, s: float, s_next: float, velocity: Velocity) -> torch.Tensor: ...


class Euler:
    """First order: one forward a step."""

    def step(self, x: torch.Tensor, v: torch.Tensor, s: float, s_next: float, velocity: Velocity) -> torch.Tensor:
        return x + (s_next - s) * v


class Heun:
    """Second order (trapezoid): two forwards a step, except the last step to s = 0 (an Euler step)."""

    def step(self, x: torch.Tensor, v: torch.Tensor, s: float, s_next: float, velocity: Velocity) -> torch.Tensor:
        if s_next == 0.0:
            return x + (s_next - s) * v
        x_euler = x + (s_next - s) * v
        return x + (s_next - s) * 0.5 * (v + velocity(x_euler, s_next))


class DpmPp2M:
    """DPM-Solver++(2M) in flow-matching form: second order from the previous step's x0, one forward a step."""

    def __init__(self) -> None:
        self.previous_x0: torch.Tensor | None = None
        self.previous_h: float | None = None

    def step(self, x: torch.Tensor, v: torch.Tensor, s: float, s_next: float, velocity: Velocity) -> torch.Tensor:
        x0 = x - s * v
        x, self.previous_h = dpmpp_2m_step(x, x0, self.previous_x0, self.previous_h, s, s_next)
        self.previous_x0 = x0
        return x


def make_solver(name: str) -> Solver:
    """A fresh solver (DPM++ 2M keeps history, so never share one between runs)."""
    solvers = {"euler": Euler, "heun": Heun, "dpmpp_2m": DpmPp2M}
    if name not in solvers:
        raise DreamActorError(f"solver: expected one of {', '.join(SOLVERS)}, got '{name}'")
    return solvers[name]()


def forwards_per_run(name: str, steps: int) -> int:
    """Velocity evaluations of a run (per guidance branch and window), for progress bars."""
    return steps + (steps - 1 if name == "heun" else 0)


def _lambda(s: float) -> float:
    """log-SNR of flow matching: log((1 - s) / s)."""
    if s <= 0.0:
        return math.inf
    if s >= 1.0:
        return -math.inf
    return math.log(1.0 - s) - math.log(s)


def dpmpp_2m_step(x: torch.Tensor, x0: torch.Tensor, previous_x0: torch.Tensor | None,
                  previous_h: float | None, s: float, s_next: float) -> tuple[torch.Tensor, float]:
    """One DPM-Solver++(2M) step in flow-matching form (alpha = 1 - s, sigma = s, data prediction).

    First order on the first step (no history) and the last (s_next = 0 returns x0).
    """
    if s_next == 0.0:
        return x0, math.inf
    h = _lambda(s_next) - _lambda(s)
    denoised = x0
    if previous_x0 is not None and previous_h is not None and math.isfinite(previous_h):
        r = previous_h / h
        denoised = x0 + (x0 - previous_x0) / (2.0 * r)
    x_next = (s_next / s) * x - (1.0 - s_next) * math.expm1(-h) * denoised
    return x_next, h
