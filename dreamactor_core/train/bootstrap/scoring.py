"""The quality filter of the self-bootstrapped data: what a scorer sees, its scale, and how scores
combine.

The paper keeps a generated video V_o only when its Video-Bench average (a multimodal-LLM judge) is
above 4.5 on a 1-5 scale, then checks the survivors by hand. Every scorer here returns a number on
that same 1-5 scale, so a threshold reads the way the paper's does; the built-in scorers
(``scorers.py``) measure something in 0..1 and map it linearly (``from_unit``). A scorer is any
callable ``(ScoringInputs) -> float``: a built-in one by name, or the user's own as an import
string ``module:function`` (the module must be importable, e.g. on ``PYTHONPATH``).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import torch

from ...errors import DreamActorError
from ...pose.types import PoseSequence

LOWEST, HIGHEST = 1.0, 5.0  # Video-Bench's scale, the one the paper's 4.5 threshold is on


@dataclass(frozen=True)
class ScoringInputs:
    """One generated video and what it was made from. Frames are float ``[T, H, W, 3]`` in 0..1.

    ``generated_poses`` is extracted on first use only (with the estimator that gave
    ``source_poses``), so a scorer set without pose scorers costs no extraction.
    """

    generated: torch.Tensor  # V_o: the new identity moving like the source
    source: torch.Tensor  # V_src: the clip whose motion V_o copies
    identity: torch.Tensor  # the new identity's picture, [H, W, 3] (or 4 with alpha)
    source_poses: PoseSequence  # the poses that drove V_o, at the source clip's size
    extract_poses: Callable[[torch.Tensor], PoseSequence]  # the same estimator, for V_o
    fps: float = 24.0
    source_name: str = ""  # e.g. "dance.mp4#frames0-48step1" (video and clip), for scorers that cache
    identity_name: str = ""  # the identity picture's name

    @cached_property
    def generated_poses(self) -> PoseSequence:
        return self.extract_poses(self.generated)


class Scorer(Protocol):
    """``(ScoringInputs) -> float`` on the 1-5 scale (higher is better)."""

    def __call__(self, inputs: ScoringInputs) -> float: ...


@dataclass(frozen=True)
class WeightedScorer:
    """A scorer as the filter uses it: the name it is reported under, and its weight in the mean."""

    name: str
    scorer: Scorer
    weight: float = 1.0


def from_unit(value: float) -> float:
    """A 0..1 measure (clamped) on the 1-5 scale: 0 -> 1, 1 -> 5."""
    return LOWEST + (HIGHEST - LOWEST) * min(max(float(value), 0.0), 1.0)


def _import(spec: str) -> Scorer:
    module_name, _, attribute = spec.partition(":")
    try:
        target = importlib.import_module(module_name)
    except ImportError as error:
        raise DreamActorError(f"scorer '{spec}': cannot import module '{module_name}' ({error})") from None
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise DreamActorError(f"scorer '{spec}': module '{module_name}' has no '{attribute}'")
    if not callable(target):
        raise DreamActorError(f"scorer '{spec}': '{attribute}' is not callable")
    return target


def resolve_scorer(spec: str, registry: Mapping[str, Scorer]) -> WeightedScorer:
    """``NAME[=WEIGHT]``: NAME is a key of ``registry`` or an import string ``module:function``."""
    name, equals, weight_text = spec.rpartition("=")
    if not equals:
        name, weight_text = spec, "1"
    try:
        weight = float(weight_text)
    except ValueError:
        raise DreamActorError(f"scorer '{spec}': expected NAME or NAME=WEIGHT with a number") from None
    if not math.isfinite(weight) or weight < 0:
        raise DreamActorError(f"scorer '{spec}': the weight must be a finite number >= 0")
    if name in registry:
        return WeightedScorer(name, registry[name], weight)
    if ":" in name:
        return WeightedScorer(name, _import(name), weight)
    raise DreamActorError(f"scorer '{name}': not one of {', '.join(registry)}, and not an import string "
                          "'module:function'")


def run_scorers(scorers: Sequence[WeightedScorer], inputs: ScoringInputs) -> tuple[float, dict[str, float]]:
    """Every scorer's score (checked to be on the 1-5 scale) and their weighted mean."""
    if not scorers or sum(s.weight for s in scorers) <= 0:
        raise DreamActorError("scorers: at least one scorer with a positive weight is needed")
    scores = {}
    for item in scorers:
        value = item.scorer(inputs)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise DreamActorError(f"scorer '{item.name}' returned {value!r}, expected a number") from None
        if not LOWEST <= value <= HIGHEST:  # also rejects NaN
            raise DreamActorError(f"scorer '{item.name}' returned {value}, expected a number on the "
                                  f"{LOWEST:g}-{HIGHEST:g} scale")
        scores[item.name] = value
    combined = sum(s.weight * scores[s.name] for s in scorers) / sum(s.weight for s in scorers)
    return combined, scores
