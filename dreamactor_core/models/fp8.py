"""ComfyUI's fp8 "scaled" checkpoints and fp8 weight storage: 8-bit weights, one scale per tensor.

ComfyUI's convention (comfy/ops.py ``scaled_fp8_ops``, comfy/model_detection.py): linear weights
in float8_e4m3fn, beside each a float32 ``<layer>.scale_weight`` (the weight is ``fp8 * scale``),
sometimes a ``<layer>.scale_input`` (used only by fp8 matrix multiplication, which scales the
input; dequantised compute ignores it) and one ``scaled_fp8`` marker key. Newer ComfyUI files say
the same per layer with ``<layer>.weight_scale``/``<layer>.input_scale`` and a format named in the
file metadata (``_quantization_metadata``) or in ``<layer>.comfy_quant`` tensors; only the
per-tensor ``float8_e4m3fn`` format is loaded, others are refused by name.

Weights stay fp8 in memory and each ``ScaledFP8Linear`` dequantises its own weight to the compute
dtype as it runs (ComfyUI's manual cast: ``weight.to(dtype) * scale``), so an fp8 file needs
half the memory of bf16 and is never dequantised whole.
"""

from __future__ import annotations

import json
from typing import Mapping

import torch

from ..errors import DreamActorError
from .streaming import Deferred, real

FP8 = torch.float8_e4m3fn
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
_FP8_MAX = torch.finfo(FP8).max  # 448
SCALE_SUFFIXES = (".scale_weight", ".weight_scale")
_IGNORED_SUFFIXES = (".scale_input", ".input_scale", ".comfy_quant")
MARKER = "scaled_fp8"
_SUPPORTED_FORMATS = ("float8_e4m3fn",)


class ScaledFP8Linear(torch.nn.Linear):
    """A Linear whose weight is stored in fp8 with a per-tensor ``scale_weight`` buffer.

    Made by ``make_scaled`` from a plain Linear (its class is switched, so ``isinstance(m,
    nn.Linear)`` and forward hooks, LoRA's included, still hold). The weight is dequantised to
    the input's dtype for each call and dropped after it.
    """

    scale_weight: torch.Tensor

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        weight = self.weight.to(input.dtype) * self.scale_weight.to(input.dtype)
        bias = None if self.bias is None else self.bias.to(input.dtype)
        return torch.nn.functional.linear(input, weight, bias)


def make_scaled(module: torch.nn.Linear) -> None:
    """Turn ``module`` (on any device, meta included) into a ``ScaledFP8Linear`` with an empty scale."""
    module.__class__ = ScaledFP8Linear
    module.register_buffer("scale_weight", torch.empty((), dtype=torch.float32, device=module.weight.device))


def is_fp8(tensor: torch.Tensor) -> bool:
    return tensor.dtype in FP8_DTYPES


def take_scales(state: dict[str, torch.Tensor], metadata: Mapping[str, str], filename: str) -> dict[str, torch.Tensor]:
    """Remove the scaled-fp8 bookkeeping keys from ``state``; return weight key -> its scale tensor.

    Unsupported quantisation formats (block-wise scales, 4-bit) are refused with the layer's name.
    """
    _check_formats(state, metadata, filename)
    scales: dict[str, torch.Tensor] = {}
    for key in list(state):
        if key == MARKER or key.endswith("." + MARKER) or key.endswith(_IGNORED_SUFFIXES):
            del state[key]
        elif key.endswith(SCALE_SUFFIXES):
            scale = state.pop(key)
            if scale.numel() != 1:
                raise DreamActorError(f"'{filename}': '{key}' holds {scale.numel()} scales; only one scale per "
                                      "tensor (ComfyUI's float8_e4m3fn scaled format) is supported")
            scales[key.rsplit(".", 1)[0] + ".weight"] = scale.reshape(()).float()
    unscaled = [key for key in scales if key not in state]
    if unscaled:
        raise DreamActorError(f"'{filename}': scales without weights: {unscaled[:3]}")
    return scales


def _check_formats(state: Mapping[str, torch.Tensor], metadata: Mapping[str, str], filename: str) -> None:
    formats: dict[str, str] = {}
    if "_quantization_metadata" in metadata:
        try:
            layers = json.loads(metadata["_quantization_metadata"])["layers"]
            formats = {name: str(info.get("format")) for name, info in layers.items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise DreamActorError(f"'{filename}': unreadable _quantization_metadata in the file metadata") from None
    for key, tensor in state.items():
        if key.endswith(".comfy_quant"):
            try:
                formats[key[: -len(".comfy_quant")]] = str(json.loads(bytes(real(tensor).tolist()))["format"])
            except (ValueError, KeyError, TypeError):
                raise DreamActorError(f"'{filename}': unreadable quantisation entry '{key}'") from None
    bad = {name: fmt for name, fmt in formats.items() if fmt not in _SUPPORTED_FORMATS}
    if bad:
        name, fmt = next(iter(bad.items()))
        raise DreamActorError(f"'{filename}': layer '{name}' is quantised as '{fmt}' ({len(bad)} such layers); "
                              f"the pack loads {', '.join(_SUPPORTED_FORMATS)} with per-tensor scales only")


def quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp8 weight, float32 scale) with ``fp8 * scale ~= weight``: the largest magnitude maps to fp8's
    maximum (448), scaled in the weight's own dtype and clamped, as ComfyUI's ``TensorCoreFP8Layout``
    quantises (so the transient memory is about one more copy of the tensor in its dtype, not fp32
    ones). Works on deferred tensors too."""
    scale = (weight.abs().amax().float() / _FP8_MAX).clamp_min(torch.finfo(torch.float32).tiny)
    scaled = weight * (1.0 / scale).to(weight.dtype)
    return scaled.clamp(-_FP8_MAX, _FP8_MAX).to(FP8), scale


def scales_for(converted: Mapping[str, torch.Tensor], scales: Mapping[str, torch.Tensor],
               filename: str) -> dict[str, torch.Tensor]:
    """Converted (e.g. diffusers) weight key -> the scale of the file weight it was made from; a split
    part of a fused q/k/v weight shares the fused weight's scale."""
    out = {}
    for key, tensor in converted.items():
        sources = tensor.sources & scales.keys() if isinstance(tensor, Deferred) else set()
        if len(sources) > 1:
            raise DreamActorError(f"'{filename}': '{key}' is made from several fp8 tensors with their own scales "
                                  f"({sorted(sources)[:3]}); such a file cannot be converted")
        if sources:
            out[key] = scales[next(iter(sources))]
    return out


def plan_storage(model: torch.nn.Module, state: dict[str, torch.Tensor], scales: Mapping[str, torch.Tensor],
                 mode: str) -> set[str]:
    """Decide, per linear weight, fp8 or compute dtype; edit ``state`` and ``model`` (on meta) to match.

    mode "keep": the file's fp8 linear weights stay fp8 (scaled at compute time), the rest is cast
    to the compute dtype; "all": every linear weight is fp8 except the layers diffusers keeps in
    full precision (``_skip_layerwise_casting_patterns``: embedders, norms, modulation), quantised
    per tensor while loading when the file is not fp8; "none": every fp8 weight is dequantised
    while loading. Returns the state keys whose dtype the fill keeps (fp8 weights and scales).
    """
    if mode not in ("keep", "all", "none"):
        raise DreamActorError(f"fp8 storage: expected 'keep', 'all' or 'none', got {mode!r}")
    linears, eligible = _linears(model)
    keep: set[str] = set()
    for key in [k for k in state if k.endswith(".weight")]:
        name, tensor, scale = key[: -len(".weight")], state[key], scales.get(key)
        stored = is_fp8(tensor)
        wanted = name in linears and (stored if mode == "keep" else mode == "all" and (stored or name in eligible))
        if wanted:
            if not stored:
                tensor, scale = quantize(tensor)
            make_scaled(linears[name])
            state[key], state[name + ".scale_weight"] = tensor, (scale if scale is not None else torch.ones(()))
            keep |= {key, name + ".scale_weight"}
        elif stored:
            state[key] = tensor.float() * scale.float() if scale is not None else tensor.float()
    return keep


def _linears(model: torch.nn.Module) -> tuple[dict[str, torch.nn.Linear], set[str]]:
    """All linear layers, and the names of those fp8 storage may take: not the layers diffusers keeps in
    full precision (its ``_skip_layerwise_casting_patterns``: embedders, norms, modulation)."""
    import re

    skip = [re.compile(p) for p in getattr(model, "_skip_layerwise_casting_patterns", None) or ()]
    linears = {name: module for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    return linears, {name for name in linears if not any(p.search(name) for p in skip)}


def quantize_linears(model: torch.nn.Module) -> None:
    """fp8 storage for a model already in memory (a diffusers folder): each eligible linear weight is
    quantised and replaced in turn, so the extra memory is one layer's."""
    linears, eligible = _linears(model)
    for name in sorted(eligible):
        module = linears[name]
        if is_fp8(module.weight):
            continue
        weight, scale = quantize(module.weight.detach())
        make_scaled(module)
        module.weight = torch.nn.Parameter(weight, requires_grad=False)
        module.scale_weight = scale
