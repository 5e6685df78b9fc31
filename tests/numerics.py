"""How close two float32 results of different code paths must be, and why.

Two computations that are equal in exact arithmetic (the same weights loaded from two file layouts,
a model run whole or with its blocks offloaded) need not be equal bit for bit in float32: the BLAS
picks its kernel, blocking and summation order from the tensor's storage offset, alignment and the
CPU's instruction set (AVX2, AVX-512, AMX), so one machine can agree to the last bit where another
differs by a few ulps. Tests compare such results with ``assert_float32_close``; ``torch.equal``
stays only for stored weights and for one computation repeated on the same path with the same inputs.

The bound. A dot product of length n summed in float32 in two different orders differs by rounding
errors of about eps32 = 2**-23 ~ 1.19e-7 per addition, relative to the size of the terms. Those add
like a random walk, so the typical difference is ~ sqrt(n) * eps32 * scale, where scale is the size
of the result (the worst case, n * eps32, needs every rounding to go the same way). A network adds
one such error per layer, and later layers (attention softmax, guidance cfg * (cond - uncond),
several sampler steps) amplify them by factors of order one to ten. So the tolerance is

    atol = k * sqrt(n) * eps32 * max(|expected|),  with k = 64 by default,

n the longest reduction in the model (hidden, feed-forward or head width) and k covering about
four standard deviations times the depth and the amplification of a tiny test model. For the tiny
models (n <= 256) that is ~1.2e-4 of the output's scale: far above the 4e-7 seen between GEMM paths,
far below what a wrong weight, a swapped q/k/v chunk or a missing scale does (changes of order 1e-2
to 1 of the scale), so the tests still fail when the code is wrong.
"""

from __future__ import annotations

import math

import torch

EPS32 = torch.finfo(torch.float32).eps
DEFAULT_K = 64.0


def float32_atol(expected: torch.Tensor, reduction: int, k: float = DEFAULT_K) -> float:
    """The absolute tolerance of the module doc for results of scale ``max|expected|``."""
    scale = float(expected.detach().abs().max()) if expected.numel() else 0.0
    return k * math.sqrt(reduction) * EPS32 * max(scale, 1e-30)


def assert_float32_close(actual: torch.Tensor, expected: torch.Tensor, reduction: int, k: float = DEFAULT_K) -> None:
    """Equal up to float32 accumulation order (module doc); shapes and finiteness must match exactly."""
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert torch.isfinite(actual).all() and torch.isfinite(expected).all(), "non-finite values"
    atol = float32_atol(expected, reduction, k)
    worst = float((actual.double() - expected.double()).abs().max()) if actual.numel() else 0.0
    assert worst <= atol, f"max difference {worst:.3g} exceeds the float32 accumulation bound {atol:.3g}"

# The longest reduction in the tiny test models (dreamactor_core/testing/tiny_models.py and
# tiny_encoders.py): Wan's 256-wide timestep frequencies; the others reduce over at most 192 (SigLIP's
# 8 x 8 x 3 patches; heads, hidden and feed-forward widths are 128 or less).
TINY_MODEL_REDUCTION = 256
