"""LoRA files in the layouts artists have, applied without touching the base weights.

Layouts: diffusers/peft (``transformer.<name>.lora_A.weight``), kohya/musubi-tuner
(``lora_unet_<name_with_underscores>.lora_down.weight`` + ``.alpha``) and ComfyUI
(``diffusion_model.<name>.lora_down.weight``), with module names in diffusers, original or ComfyUI
naming; the adapter's own key tables translate them (diffusers' converters drop FFN-only LoRAs
for these backbones and lose stored alphas, backbone-notes gotchas 6-9).

A LoRA is applied as a forward hook, ``y = W x + b + strength * scale * B (A x)``: the base
weights are never written, so removing the hooks restores the model bit-for-bit, the extra memory
is the LoRA's own size, and any number of LoRAs stack. ``lora_patches`` applies a model's LoRAs
for one sampling run and always removes them, also on error or interrupt.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from ..errors import DreamActorError
from . import checkpoints
from .loading import DreamActorModel

_LORA_KEY = re.compile(
    r"^(?P<module>.+?)\.(?P<kind>lora_A|lora_B|lora_down|lora_up|alpha)(?:\.default)?(?:\.weight)?$"
)
_PREFIXES = ("base_model.model.", "model.diffusion_model.", "diffusion_model.", "transformer.",
             "lora_unet_", "lora_transformer_", "unet.")


@dataclass(frozen=True)
class LoraLayer:
    """One layer's low-rank pair; its delta is ``scale * up @ down``."""

    down: torch.Tensor  # A: [rank, in]
    up: torch.Tensor  # B: [out, rank]
    scale: float  # alpha / rank


@dataclass(frozen=True)
class LoraWeights:
    """A LoRA file matched to one model: layers by diffusers module name, and what did not match."""

    name: str
    layers: dict[str, LoraLayer]
    unmatched: list[str] = field(default_factory=list)

    def report(self) -> str:
        text = f"LoRA '{self.name}': {len(self.layers)} layers matched, {len(self.unmatched)} unmatched"
        return text + (f" ({', '.join(self.unmatched[:5])}{', ...' if len(self.unmatched) > 5 else ''})"
                       if self.unmatched else "")


def _strip(name: str) -> str:
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _alias_table(model: DreamActorModel) -> dict[str, str]:
    """Every accepted spelling of each linear layer -> its diffusers module name."""
    table: dict[str, str] = {}
    for name, module in model.transformer.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        for alias in (name, *model.adapter.foreign_module_names(name).values()):
            table[alias] = name
            table[alias.replace(".", "_")] = name
    return table


def _metadata_alpha(metadata: dict[str, str]) -> float | None:
    """A peft ``lora_alpha`` stored in safetensors metadata (diffusers' ``lora_adapter_metadata``)."""
    for value in metadata.values():
        try:
            parsed = json.loads(value)
        except (TypeError, json.JSONDecodeError):
            continue
        if isinstance(parsed, dict) and "lora_alpha" in parsed:
            return float(parsed["lora_alpha"])
    return None


def load_lora(path: str | Path, model: DreamActorModel) -> LoraWeights:
    """Read a LoRA file and match it to ``model``'s layers; a LoRA for another model is an error."""
    path = Path(path)
    keys, metadata = checkpoints.read_header(path)
    state = checkpoints.load_state_dict(path)
    groups: dict[str, dict[str, torch.Tensor]] = {}
    unmatched: list[str] = []
    for key, tensor in state.items():
        match = _LORA_KEY.match(key)
        if match is None:
            unmatched.append(key)
            continue
        kind = {"lora_A": "down", "lora_down": "down", "lora_B": "up", "lora_up": "up"}.get(match["kind"], "alpha")
        groups.setdefault(match["module"], {})[kind] = tensor
    aliases = _alias_table(model)
    metadata_alpha = _metadata_alpha(metadata)
    layers: dict[str, LoraLayer] = {}
    for raw_name, parts in groups.items():
        target = aliases.get(_strip(raw_name))
        if target is None or "down" not in parts or "up" not in parts:
            unmatched.append(raw_name)
            continue
        module = model.transformer.get_submodule(target)
        down, up = parts["down"], parts["up"]  # kept in the file's dtype; the hook casts per input
        if down.ndim != 2 or up.ndim != 2 or down.shape[1] != module.in_features or up.shape[0] != module.out_features:
            raise DreamActorError(
                f"LoRA '{path.name}': layer '{raw_name}' has shape {list(up.shape)} x {list(down.shape)}, but "
                f"this {model.adapter.display_name} layer is {module.out_features} x {module.in_features}: "
                "the LoRA was trained for a different model size or backbone"
            )
        rank = down.shape[0]
        alpha = float(parts["alpha"].float()) if "alpha" in parts else (metadata_alpha or rank)
        layers[target] = LoraLayer(down, up, alpha / rank)
    if not layers:
        raise DreamActorError(
            f"LoRA '{path.name}' matches none of the {model.adapter.display_name} layers: it is for another "
            f"model (keys like {', '.join(list(keys)[:3])})"
        )
    return LoraWeights(path.name, layers, sorted(unmatched))


def _hook(layer: LoraLayer, strength: float):
    """The forward hook adding one LoRA's delta; A and B follow the input's device and dtype (the
    weights may be stored in fp8 or offloaded, so the input is the reliable compute reference)."""
    factor = strength * layer.scale
    cast: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def add_delta(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        x = inputs[0]
        key = (x.device, x.dtype)
        if key not in cast:
            cast[key] = (layer.down.to(x.device, x.dtype), layer.up.to(x.device, x.dtype))
        down, up = cast[key]
        return output + factor * torch.nn.functional.linear(torch.nn.functional.linear(x, down), up)

    return add_delta


@contextmanager
def lora_patches(model: DreamActorModel) -> Iterator[None]:
    """Apply ``model.loras`` (stacked, each with its strength) for the duration of the block."""
    handles = []
    try:
        for weights, strength in model.loras:
            if strength == 0.0:
                continue
            for name, layer in weights.layers.items():
                module = model.transformer.get_submodule(name)
                handles.append(module.register_forward_hook(_hook(layer, strength)))
        yield
    finally:
        for handle in handles:
            handle.remove()
