"""Two-way renaming of checkpoint keys between an original/ComfyUI layout and diffusers names.

One table of templates serves loading (original -> diffusers), writing test checkpoints
(diffusers -> original) and LoRA key mapping, so the three can never disagree. A template such as
``double_blocks.{n}.img_mlp.fc1`` matches a key prefix at a dot boundary; the rest of the key
(``.weight``) is carried over unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

_PLACEHOLDER = re.compile(r"\\\{(\w+)\\\}")
QKV = ("q", "k", "v")


@dataclass(frozen=True)
class Rename:
    """``source`` (original layout) <-> ``target`` (diffusers); ``transform`` reshapes the tensor.

    transform "split_qkv": one fused [3*D, ...] tensor <-> three tensors; the target holds ``{qkv}``.
    transform "swap_halves": the two halves along dim 0 trade places (shift/scale order).
    """

    source: str
    target: str
    transform: str = ""


def _compile(template: str) -> re.Pattern:
    def group(match: re.Match) -> str:
        name = match.group(1)
        return f"(?P<{name}>[qkv])" if name == "qkv" else f"(?P<{name}>\\d+)"

    return re.compile("^" + _PLACEHOLDER.sub(group, re.escape(template)) + r"(?=\.|$)")


class ModuleName(str):
    """A module's name in the other layout, plus how that module's output rows relate to this one's.

    A plain ``str`` to every caller that only needs the name. ``transform`` is the ``Rename``'s:
    "swap_halves" (the two halves of the output rows trade places) or "split_qkv" (this module is
    output-row third ``part`` (0 q, 1 k, 2 v) of the fused module named). LoRA mapping needs both:
    a LoRA's up rows follow the weight's rows.
    """

    transform: str
    part: int

    def __new__(cls, name: str, transform: str = "", part: int = 0) -> "ModuleName":
        self = super().__new__(cls, name)
        self.transform, self.part = transform, part
        return self

    def renamed(self, name: str) -> "ModuleName":
        """The same relation under another spelling of the name (e.g. ComfyUI's)."""
        return ModuleName(name, self.transform, self.part)


class KeyMap:
    """Renames keys or module names with a table of ``Rename`` templates (first match wins)."""

    def __init__(self, renames: list[Rename]) -> None:
        self.renames = renames
        self._forward = [(_compile(r.source), r) for r in renames]
        self._reverse = [(_compile(r.target), r) for r in renames]

    def _match(self, key: str, reverse: bool) -> tuple[re.Match, Rename] | None:
        for pattern, rename in self._reverse if reverse else self._forward:
            match = pattern.match(key)
            if match:
                return match, rename
        return None

    def module_name(self, name: str, reverse: bool = False) -> ModuleName | None:
        """The renamed module name with its row relation (``ModuleName``), or None when no template
        matches or the name is a fused q/k/v module (it becomes three modules, not one name)."""
        found = self._match(name, reverse)
        if found is None:
            return None
        match, rename = found
        groups = match.groupdict()
        rest = name[match.end():]
        if rename.transform != "split_qkv":
            template = rename.source if reverse else rename.target
            return ModuleName(template.format(**groups) + rest, rename.transform)
        if not reverse:
            return None
        part = QKV.index(groups.pop("qkv"))
        return ModuleName(rename.source.format(**groups) + rest, "split_qkv", part)

    def convert(self, state_dict: dict[str, torch.Tensor], reverse: bool = False) -> dict[str, torch.Tensor]:
        """Rename every key; keys no template matches pass through unchanged."""
        out: dict[str, torch.Tensor] = {}
        fused: dict[str, dict[str, torch.Tensor]] = {}
        for key, tensor in state_dict.items():
            found = self._match(key, reverse)
            if found is None:
                out[key] = tensor
                continue
            match, rename = found
            groups = match.groupdict()
            rest = key[match.end():]
            if rename.transform == "split_qkv" and not reverse:
                for part, chunk in zip(QKV, tensor.chunk(3, dim=0)):
                    out[rename.target.format(**groups, qkv=part) + rest] = chunk.contiguous()
            elif rename.transform == "split_qkv":
                part = groups.pop("qkv")
                fused.setdefault(rename.source.format(**groups) + rest, {})[part] = tensor
            else:
                new_key = (rename.source if reverse else rename.target).format(**groups) + rest
                out[new_key] = _swap_halves(tensor) if rename.transform == "swap_halves" else tensor
        for key, parts in fused.items():
            out[key] = torch.cat([parts[p] for p in QKV], dim=0)
        return out


def _swap_halves(tensor: torch.Tensor) -> torch.Tensor:
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


# Wrappers ComfyUI, checkpoint savers and trainers put around the same key names.
PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.", "transformer.", "vae.", "first_stage_model.")


def strip_common_prefix(keys: list[str], prefixes: tuple[str, ...] = PREFIXES) -> str:
    """The first of ``prefixes`` that every key starts with ('' if none)."""
    for prefix in prefixes:
        if keys and all(key.startswith(prefix) for key in keys):
            return prefix
    return ""


def unprefixed(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state_dict`` without the wrapper prefix all its keys share."""
    prefix = strip_common_prefix(list(state_dict))
    return {key[len(prefix):]: value for key, value in state_dict.items()}


def count_indexed(keys, pattern: str) -> int:
    """How many numbered blocks ``pattern`` (one ``(\\d+)`` group) finds among ``keys``."""
    indices = {int(m.group(1)) for key in keys if (m := re.match(pattern, key))}
    return max(indices) + 1 if indices else 0


class SubstringRenames:
    """Single-pass substring renames between two naming dialects (e.g. ComfyUI <-> original).

    One regex alternation replaces each occurrence once, so a rule's output is never rewritten
    by another rule.
    """

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._forward = dict(pairs)
        self._reverse = {b: a for a, b in pairs}
        self._forward_re = self._alternation(self._forward)
        self._reverse_re = self._alternation(self._reverse)

    @staticmethod
    def _alternation(table: dict[str, str]) -> re.Pattern:
        return re.compile("|".join(re.escape(s) for s in sorted(table, key=len, reverse=True)))

    def apply(self, key: str, reverse: bool = False) -> str:
        table, pattern = (self._reverse, self._reverse_re) if reverse else (self._forward, self._forward_re)
        return pattern.sub(lambda m: table[m.group(0)], key)
