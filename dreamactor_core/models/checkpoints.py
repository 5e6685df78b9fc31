"""Reading .safetensors checkpoints safely: header first, clear errors, never pickle.

The header alone (keys, dtypes, shapes) is enough to tell what a file is, so detection never loads
gigabytes; a truncated or corrupt file is reported by name instead of failing deep in a loader.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch

from ..errors import DreamActorError

_MAX_HEADER = 100 * 1024 * 1024


# safetensors dtype names -> torch dtypes (the ones checkpoints of these models use).
SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "I64": torch.int64, "I32": torch.int32,
    "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}


def _raw_header(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The checked JSON header (tensor name -> info) and the string metadata."""
    if path.suffix.lower() != ".safetensors":
        raise DreamActorError(f"'{path.name}' is not a .safetensors file: only safetensors are loaded (no pickle)")
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise DreamActorError(f"'{path.name}' is truncated or empty: {size} bytes, no safetensors header")
        (length,) = struct.unpack("<Q", head)
        if length > min(_MAX_HEADER, size - 8):
            raise DreamActorError(f"'{path.name}' is truncated or not a safetensors file: header length {length} "
                                  f"exceeds the file size {size}")
        try:
            header: dict[str, Any] = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DreamActorError(f"'{path.name}' has a corrupt safetensors header: {error}") from None
    metadata = header.pop("__metadata__", None) or {}
    data_size = size - 8 - length
    for key, info in header.items():
        end = info.get("data_offsets", [0, 0])[1] if isinstance(info, dict) else None
        if end is None or end > data_size:
            raise DreamActorError(f"'{path.name}' is truncated: tensor '{key}' ends at byte {end} of "
                                  f"{data_size} data bytes; download the file again")
    return header, metadata


def read_header(path: str | Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Key -> shape and the file's string metadata, checked against the file size."""
    header, metadata = _raw_header(Path(path))
    return {key: tuple(info["shape"]) for key, info in header.items()}, metadata


def tensor_specs(path: str | Path) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    """Key -> (torch dtype, shape) from the header alone: what a load will hold, before reading it."""
    path = Path(path)
    header, _ = _raw_header(path)
    specs = {}
    for key, info in header.items():
        dtype = SAFETENSORS_DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise DreamActorError(f"'{path.name}': tensor '{key}' has dtype {info.get('dtype')}, which the pack "
                                  f"does not load (expected one of {', '.join(SAFETENSORS_DTYPES)})")
        specs[key] = (dtype, tuple(info["shape"]))
    return specs


def load_state_dict(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of a checked safetensors file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    read_header(path)
    try:
        return load_file(str(path), device=str(device))
    except SafetensorError as error:
        raise DreamActorError(f"'{Path(path).name}' could not be read as safetensors: {error}") from None


# Marker keys (any prefix) of model families an artist may pick by mistake, for error messages.
_KNOWN_FAMILIES = (
    (("lora_A.weight", "lora_down.weight", "lora_B.weight", "lora_up.weight"), "a LoRA, not a base model"),
    (("double_blocks.0.img_attn_q.weight", "cond_type_embedding.weight"), "a HunyuanVideo 1.5 transformer"),
    (("txt_in.individual_token_refiner.blocks.0.norm1.weight",), "a HunyuanVideo (1.0) transformer"),
    (("single_blocks.0.linear1.weight",), "a Flux-family image model"),
    (("head.modulation", "blocks.0.self_attn.q.weight", "patch_embedding.weight"), "a Wan transformer"),
    (("encoder.norm_out.gamma",), "a HunyuanVideo 1.5 VAE"),
    (("encoder.conv1.weight", "decoder.head.0.gamma"), "a Wan VAE"),
    (("encoder.down_blocks.0.resnets.0.norm1.weight", "quant_conv.weight"), "an image/video VAE"),
    (("input_blocks.0.0.weight", "down_blocks.0.attentions.0.proj_in.weight"), "a Stable Diffusion UNet"),
    (("model.layers.0.self_attn.q_proj.weight", "encoder.block.0.layer.0.SelfAttention.q.weight",
      "text_model.encoder.layers.0.self_attn.q_proj.weight"), "a text encoder"),
)


def describe(keys: dict[str, tuple[int, ...]] | list[str]) -> str:
    """A short guess of what a checkpoint is, from its key names ('a Wan transformer')."""
    for markers, label in _KNOWN_FAMILIES:
        if any(key.endswith(marker) for key in keys for marker in markers):
            return label
    sample = ", ".join(list(keys)[:3])
    return f"an unknown model (keys like {sample})"
