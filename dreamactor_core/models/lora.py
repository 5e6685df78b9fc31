"""LoRA files in the layouts artists have, applied without touching the base weights.

Layouts: diffusers/peft (``transformer.<name>.lora_A.weight``), kohya/musubi-tuner
(``lora_unet_<name_with_underscores>.lora_down.weight`` + ``.alpha``) and ComfyUI
(``diffusion_model.<name>.lora_down.weight``), with module names in diffusers, original or ComfyUI
naming; the adapter's own key tables translate them (diffusers' converters drop FFN-only LoRAs
for these backbones and lose stored alphas, backbone-notes gotchas 6-9).

A LoRA's up rows follow its layer's weight rows, so a layer whose weight the key tables transform
is transformed the same way: a fused q/k/v layer (``img_attn.qkv``, the refiner's ``self_attn.qkv``)
gives its up rows in three to the q, k and v modules with the down matrix shared, and a layer whose
output halves trade places (the final layer's modulation) gets its up halves swapped.

A LoRA is applied as a forward hook, ``y = W x + b + strength * scale * B (A x)``: the base
weights are never written, so removing the hooks restores the model bit-for-bit, the extra memory
is the LoRA's own size, and any number of LoRAs stack. ``lora_patches`` applies a model's LoRAs
for one sampling run and always removes them, also on error or interrupt.

Anything in the file the pack cannot apply (an unknown layer, another LoRA kind's tensors, a
non-finite value, mismatched ranks) is an error naming the tensor, never a silent drop; only
text-encoder layers, which belong to another model loaded elsewhere, are listed and skipped.
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
_KIND = {"lora_A": "down", "lora_down": "down", "lora_B": "up", "lora_up": "up", "alpha": "alpha"}
_PREFIXES = ("base_model.model.", "model.diffusion_model.", "diffusion_model.", "transformer.",
             "lora_unet_", "lora_transformer_", "unet.")
# Text-encoder layers that LoRA files may carry next to the transformer's (kohya, diffusers).
_TEXT_ENCODER_PREFIXES = ("lora_te", "text_encoder", "text_model", "te.", "te1.", "te2.")
_CONV = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


@dataclass(frozen=True)
class LoraLayer:
    """One layer's low-rank pair; its delta is ``scale * up @ down``.

    Linear layers: down [rank, in]. Convolutions (the patch embedder): down [rank, in, *kernel],
    applied with the layer's own stride and padding, then up mixes channels (kohya's LoCon layout).
    """

    down: torch.Tensor  # A: [rank, in] or [rank, in, *kernel]
    up: torch.Tensor  # B: [out, rank]
    scale: float  # alpha / rank


@dataclass(frozen=True)
class LoraWeights:
    """A LoRA file matched to one model: layers by diffusers module name, and the text-encoder
    layers it also carried (not applied: they belong to the text encoder)."""

    name: str
    layers: dict[str, LoraLayer]
    unmatched: list[str] = field(default_factory=list)

    def report(self) -> str:
        text = f"LoRA '{self.name}': {len(self.layers)} layers matched, {len(self.unmatched)} unmatched"
        return text + (f" ({', '.join(self.unmatched[:5])}{', ...' if len(self.unmatched) > 5 else ''})"
                       if self.unmatched else "")


@dataclass
class _Target:
    """The model module(s) one LoRA layer name feeds: ``modules[part]`` gets up-row part ``part``."""

    transform: str
    modules: dict[int, str] = field(default_factory=dict)


def _strip(name: str) -> str:
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _alias_table(model: DreamActorModel) -> dict[str, _Target]:
    """Every accepted spelling of each linear (or patch-embedding) layer -> the modules it feeds."""
    table: dict[str, _Target] = {}
    for name, module in model.transformer.named_modules():
        if not isinstance(module, (torch.nn.Linear, *_CONV)):
            continue
        for alias in (name, *model.adapter.foreign_module_names(name).values()):
            transform, part = getattr(alias, "transform", ""), getattr(alias, "part", 0)
            for spelling in (str(alias), str(alias).replace(".", "_")):
                table.setdefault(spelling, _Target(transform)).modules[part] = name
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


def _group(path: Path, state: dict[str, torch.Tensor]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Keys by layer name and kind (down/up/alpha); text-encoder layers apart. Errors name the tensor."""
    groups: dict[str, dict[str, str]] = {}
    text_encoder: set[str] = set()
    for key, tensor in state.items():
        match = _LORA_KEY.match(key)
        if key.startswith(_TEXT_ENCODER_PREFIXES):
            text_encoder.add(match["module"] if match else key)
            continue
        if match is None:
            raise DreamActorError(f"LoRA '{path.name}': tensor '{key}' is not a LoRA down/up/alpha tensor "
                                  "(another adapter kind such as LoKr, DoRA or a full diff): the pack applies plain LoRAs only")
        if not torch.isfinite(tensor.float()).all():
            raise DreamActorError(f"LoRA '{path.name}': tensor '{key}' contains NaN or infinite values: the file is damaged")
        groups.setdefault(match["module"], {})[_KIND[match["kind"]]] = key
    return groups, sorted(text_encoder)


def _check_pair(path: Path, raw: str, keys: dict[str, str], state: dict[str, torch.Tensor]) -> None:
    missing = [kind for kind in ("down", "up") if kind not in keys]
    if missing:
        raise DreamActorError(f"LoRA '{path.name}': layer '{raw}' has no {' or '.join(missing)} tensor "
                              f"(found {', '.join(sorted(keys.values()))})")
    down, up = state[keys["down"]], state[keys["up"]]
    if down.ndim < 2 or up.ndim < 2 or any(size != 1 for size in up.shape[2:]):
        raise DreamActorError(f"LoRA '{path.name}': '{keys['down']}' {list(down.shape)} and '{keys['up']}' "
                              f"{list(up.shape)} are not a low-rank pair of matrices")
    if down.shape[0] != up.shape[1]:
        raise DreamActorError(
            f"LoRA '{path.name}': inner ranks differ: '{keys['down']}' has shape {list(down.shape)} (rank first) "
            f"and '{keys['up']}' has shape {list(up.shape)} (rank second): the file is damaged")


def _layers_for(path: Path, raw: str, target: _Target, down: torch.Tensor, up: torch.Tensor, scale: float,
                model: DreamActorModel) -> dict[str, LoraLayer]:
    """One file layer -> the model layers it patches, up rows split or half-swapped like the weight's."""
    parts = len(target.modules)
    if target.transform == "split_qkv" and parts != 3:
        raise DreamActorError(f"LoRA '{path.name}': layer '{raw}' is a fused q/k/v layer, but this "
                              f"{model.adapter.display_name} model has {parts} of its 3 parts")
    up = up.flatten(1)
    if target.transform == "swap_halves":
        first, second = up.chunk(2, dim=0)
        up = torch.cat([second, first], dim=0)
    pieces = up.chunk(parts, dim=0) if up.shape[0] % parts == 0 else ()
    layers = {}
    for part, name in sorted(target.modules.items()):
        module = model.transformer.get_submodule(name)
        expected_down = tuple(module.weight.shape[1:]) if isinstance(module, _CONV) else (module.in_features,)
        out = module.weight.shape[0]
        if len(pieces) != parts or tuple(down.shape[1:]) != expected_down or pieces[part].shape[0] != out:
            raise DreamActorError(
                f"LoRA '{path.name}': layer '{raw}' has shape {list(up.shape)} x {list(down.shape)}, but this "
                f"{model.adapter.display_name} layer is {parts} x {out} x {list(expected_down)}: the LoRA was trained "
                "for a different model size or backbone")
        layers[name] = LoraLayer(down, pieces[part], scale)
    return layers


def load_lora(path: str | Path, model: DreamActorModel) -> LoraWeights:
    """Read a LoRA file and match it to ``model``'s layers; any layer it cannot apply is an error."""
    path = Path(path)
    keys, metadata = checkpoints.read_header(path)
    if not keys:
        raise DreamActorError(f"LoRA '{path.name}' holds no tensors: an empty or unfinished file")
    state = checkpoints.load_state_dict(path)
    groups, text_encoder = _group(path, state)
    aliases = _alias_table(model)
    metadata_alpha = _metadata_alpha(metadata)
    layers: dict[str, LoraLayer] = {}
    sources: dict[str, str] = {}
    unknown: list[str] = []
    for raw_name, parts in groups.items():
        target = aliases.get(_strip(raw_name))
        if target is None:
            unknown.append(raw_name)
            continue
        _check_pair(path, raw_name, parts, state)
        down, up = state[parts["down"]], state[parts["up"]]  # kept in the file's dtype; the hook casts per input
        rank = down.shape[0]
        alpha = float(state[parts["alpha"]].float()) if "alpha" in parts else (metadata_alpha or rank)
        for name, layer in _layers_for(path, raw_name, target, down, up, alpha / rank, model).items():
            if name in layers:
                raise DreamActorError(f"LoRA '{path.name}': layers '{sources[name]}' and '{raw_name}' both patch "
                                      f"'{name}': a file must give each layer once")
            layers[name], sources[name] = layer, raw_name
    if not layers and not text_encoder:
        raise DreamActorError(
            f"LoRA '{path.name}' matches none of the {model.adapter.display_name} layers: it is for another "
            f"model (keys like {', '.join(list(keys)[:3])})")
    if unknown:
        raise DreamActorError(
            f"LoRA '{path.name}': {len(unknown)} layers are not layers of this {model.adapter.display_name} model "
            f"and cannot be applied: {', '.join(sorted(unknown)[:8])}{', ...' if len(unknown) > 8 else ''}")
    if not layers:
        raise DreamActorError(f"LoRA '{path.name}' holds only text-encoder layers ({', '.join(text_encoder[:3])}): "
                              "nothing for the transformer")
    return LoraWeights(path.name, layers, text_encoder)


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
        if isinstance(module, _CONV):  # down is a convolution like the layer's, up mixes channels
            hidden = module._conv_forward(x, down, None)
            return output + factor * torch.nn.functional.linear(hidden.movedim(1, -1), up).movedim(-1, 1)
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
