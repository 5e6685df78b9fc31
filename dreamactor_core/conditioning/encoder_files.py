"""Shared loading steps for the transformers encoders (text and image), offline.

A single ``.safetensors`` file becomes a transformers model with a config found beside it
(``<file stem>.json``, any size of model) or shipped in the pack (the released model), its keys
taken from under whatever wrapper prefix the file uses. Folders load with ``local_files_only``.
Never fetched, never remote code.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from ..errors import DreamActorError, MissingModelFile
from ..models import checkpoints, fp8, streaming

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


@contextmanager
def file_submodel(path: Path, anchor: str, what: str) -> Iterator[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    """(state, fp8 scales) of the submodel at ``anchor`` in a single file, as deferred tensors: nothing
    is read until ``build`` fills the model, and keys the model does not take are never read (a
    Qwen2.5-VL file's vision tower and LM head). Valid inside the ``with`` block."""
    _, metadata = checkpoints.read_header(path)
    with streaming.deferred_file(path) as state:
        scales = fp8.take_scales(state, metadata, path.name)
        yield submodel(state, anchor, path, what), scales


def build(class_name: str, config_class: str, config: dict, state_dict: dict[str, torch.Tensor], path: Path,
          device: str | torch.device, dtype: torch.dtype = torch.float32,
          scales: dict[str, torch.Tensor] | None = None) -> torch.nn.Module:
    """A transformers model from ``config`` with exactly the weights of ``state_dict`` (no random init),
    built on the meta device and filled one tensor at a time (``models.streaming.fill``): floating
    weights in ``dtype``, except fp8 linear weights of a scaled file, which stay fp8 with their
    scales (``models.fp8``)."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = transformers_class(class_name)(transformers_class(config_class)(**config))
    state_dict = dict(state_dict)
    keep = fp8.plan_storage(model, state_dict, fp8.scales_for(state_dict, scales or {}, path.name), "keep")
    streaming.fill(model, state_dict, dtype=dtype, device=device, keep=keep, source=path.name,
                   what=f"the configured {class_name} (put a '{path.stem}.json' config beside it for other sizes)",
                   strict=False)
    return model.eval().requires_grad_(False)
