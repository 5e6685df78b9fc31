"""Pickle-free serialisation of node values for the probe pack: tensors go to a safetensors file,
everything around them (dicts, lists, dataclasses, numbers, strings) to a JSON skeleton that names
them. Shared by the probe nodes (inside ComfyUI) and the harness (in pytest)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

TENSOR = "__tensor__"
DATACLASS = "__dataclass__"


def _flatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous()
        return {TENSOR: key}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _flatten(getattr(value, f.name), tensors) for f in dataclasses.fields(value)}
        return {DATACLASS: type(value).__name__, "fields": fields}
    if isinstance(value, dict):
        return {str(k): _flatten(v, tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_flatten(v, tensors) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"__repr__": repr(value)}


def _restore(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if TENSOR in value:
            return tensors[value[TENSOR]]
        return {k: _restore(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v, tensors) for v in value]
    return value


def save_value(value: Any, stem: Path) -> None:
    """Write ``value`` as ``stem.json`` (+ ``stem.safetensors`` when it holds tensors)."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(value, tensors)
    stem.parent.mkdir(parents=True, exist_ok=True)
    if tensors:
        save_file(tensors, str(stem.with_suffix(".safetensors")))
    stem.with_suffix(".json").write_text(json.dumps(skeleton))


def load_value(stem: Path) -> Any:
    """Read back what ``save_value`` wrote; dataclasses come back as {"__dataclass__", "fields"}."""
    tensor_file = stem.with_suffix(".safetensors")
    tensors = load_file(str(tensor_file)) if tensor_file.is_file() else {}
    return _restore(json.loads(stem.with_suffix(".json").read_text()), tensors)
