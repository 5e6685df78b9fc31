"""Shared loading steps for the transformers encoders (text and image), offline.

A single ``.safetensors`` file becomes a transformers model with a config found beside it
(``<file stem>.json``, any size of model) or shipped in the pack (the released model), its keys
taken from under whatever wrapper prefix the file uses. Folders load with ``local_files_only``.
Never fetched, never remote code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import DreamActorError, MissingModelFile
from ..models import checkpoints

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def must_exist(path: Path, folder: str) -> None:
    if not path.exists():
        raise MissingModelFile(path.name, folder, hint=f"looked for {path}")


def file_identity(path: Path) -> str:
    """Path, size and modification time: a replaced file is a new encoder for the caches."""
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def transformers_class(name: str) -> Any:
    import transformers

    return getattr(transformers, name)


def from_pretrained(class_name: str, folder: Path, dtype: torch.dtype, device: str | torch.device,
                    models_folder: str) -> torch.nn.Module:
    """A transformers model folder (config.json + weights), local files only."""
    if not (folder / "config.json").is_file():
        raise MissingModelFile("config.json", models_folder, hint=f"'{folder}' is not a transformers model folder")
    model = transformers_class(class_name).from_pretrained(str(folder), dtype=dtype, local_files_only=True)
    return model.to(device).eval().requires_grad_(False)


def config_for(path: Path, shipped: str) -> dict:
    """``<stem>.json`` beside the file, else the pack's config of the released model."""
    beside = path.with_suffix(".json")
    config = json.loads((beside if beside.is_file() else CONFIG_DIR / shipped).read_text())
    return {key: value for key, value in config.items() if not key.startswith("_")}


def submodel(state_dict: dict[str, torch.Tensor], anchor: str, path: Path, what: str) -> dict[str, torch.Tensor]:
    """The keys under the prefix that ``anchor`` sits at, that prefix removed (so a full Qwen2.5-VL
    file gives its language model, whatever wrapper names the file uses)."""
    prefix = next((key[: -len(anchor)] for key in state_dict if key.endswith(anchor)), None)
    if prefix is None:
        raise DreamActorError(f"'{path.name}' is {checkpoints.describe(list(state_dict))}, not {what}")
    return {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}


def build(class_name: str, config_class: str, config: dict, state_dict: dict[str, torch.Tensor], path: Path,
          device: str | torch.device) -> torch.nn.Module:
    """A transformers model from ``config`` with exactly the weights of ``state_dict`` (no random init)."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = transformers_class(class_name)(transformers_class(config_class)(**config))
    try:
        result = model.load_state_dict(state_dict, strict=False, assign=True)
    except RuntimeError as error:
        raise DreamActorError(f"'{path.name}' does not fit the configured {class_name} (put a '{path.stem}.json' "
                              f"config beside it for other sizes): {str(error)[:300]}") from None
    if result.missing_keys:
        raise DreamActorError(f"'{path.name}' lacks {class_name} weights: {result.missing_keys[:5]}")
    return model.to(device).eval().requires_grad_(False)
