"""Loading a backbone's transformer and VAE, offline, from a diffusers folder or one .safetensors file.

Artists keep single files in ComfyUI's ``diffusion_models/`` and ``vae/`` folders with original or
ComfyUI key names; developers keep diffusers folders. Both load into diffusers' own classes with a
config that is shipped in the pack (single files) or sits in the folder, so nothing is fetched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..errors import DreamActorError, MissingModelFile
from . import checkpoints
from .backbones import ADAPTERS, BackboneAdapter, detect


@dataclass(frozen=True)
class DreamActorModel:
    """A loaded transformer plus the LoRAs to apply while sampling (applied lazily, never stored).

    ComfyUI caches node outputs and hands the same object to every branch, so a LoRA node returns
    a new ``DreamActorModel`` sharing the transformer and the sampler patches and unpatches around
    its own run: no other branch ever sees patched weights.
    """

    transformer: torch.nn.Module
    adapter: BackboneAdapter
    source: str
    loras: tuple = field(default=())  # tuple[tuple[lora.LoraWeights, float], ...]

    def with_lora(self, weights: Any, strength: float) -> "DreamActorModel":
        return replace(self, loras=self.loras + ((weights, float(strength)),))


@dataclass(frozen=True)
class DreamActorVAE:
    """A loaded video VAE and the adapter that knows its latent scaling."""

    vae: torch.nn.Module
    adapter: BackboneAdapter
    source: str


def _folder_model(folder: Path, subfolder: str) -> tuple[Path, dict]:
    for candidate in (folder, folder / subfolder):
        config = candidate / "config.json"
        if config.is_file():
            return candidate, json.loads(config.read_text())
    raise DreamActorError(f"'{folder}' is a folder without config.json: expected a diffusers model folder")


def _adapter_for_class(class_name: str, kind: str, source: Path) -> BackboneAdapter:
    for adapter in ADAPTERS.values():
        if class_name == (adapter.transformer_class if kind == "transformer" else adapter.vae_class):
            return adapter
    raise DreamActorError(f"'{source.name}' holds a {class_name}, not a {kind} the pack supports")


def _load(path: str | Path, kind: str, dtype: torch.dtype, device: str | torch.device) -> tuple[torch.nn.Module, BackboneAdapter]:
    path = Path(path)
    if not path.exists():
        raise MissingModelFile(path.name, "diffusion_models" if kind == "transformer" else "vae")
    if path.is_dir():
        folder, config = _folder_model(path, kind)
        adapter = _adapter_for_class(config.get("_class_name", "?"), kind, path)
        cls = adapter.transformer_cls() if kind == "transformer" else adapter.vae_cls()
        model = cls.from_pretrained(str(folder), torch_dtype=dtype, local_files_only=True)
        return model.to(device=device).eval(), adapter

    keys, _ = checkpoints.read_header(path)
    adapter = detect(keys, kind, path.name)
    state_dict = {key: value.to(dtype) if value.is_floating_point() else value
                  for key, value in checkpoints.load_state_dict(path, device).items()}
    if kind == "transformer":
        converted, config = adapter.transformer_to_diffusers(state_dict)
        cls = adapter.transformer_cls()
    else:
        converted, config = adapter.vae_to_diffusers(state_dict)
        cls = adapter.vae_cls()
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = cls.from_config(config)
    result = model.load_state_dict(converted, strict=False, assign=True)
    if result.missing_keys or result.unexpected_keys:
        raise DreamActorError(
            f"'{path.name}' does not fit {adapter.display_name} {kind}: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    return model.eval(), adapter


def load_transformer(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                     fp8_weights: bool = False, block_offload: bool = False) -> DreamActorModel:
    """Load a diffusion transformer (folder or single file); the backbone is detected.

    fp8_weights stores linear/conv weights as float8_e4m3fn and upcasts each layer to ``dtype`` as
    it runs (half the weight memory of bf16); block_offload keeps the weights in CPU memory and
    moves one transformer block at a time to ``device`` (diffusers' group offloading), so a 480p
    canvas fits a 24 GB GPU. Both use diffusers' own hooks and combine.
    """
    model, adapter = _load(path, "transformer", dtype, "cpu" if block_offload else device)
    model.requires_grad_(False)
    if fp8_weights:
        model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
    if block_offload:
        model.enable_group_offload(onload_device=torch.device(device), offload_device=torch.device("cpu"),
                                   offload_type="block_level", num_blocks_per_group=1)
    return DreamActorModel(model, adapter, str(path))


def load_vae(path: str | Path, dtype: torch.dtype = torch.float32,
             device: str | torch.device = "cpu") -> DreamActorVAE:
    """Load a video VAE (folder or single file); the backbone is detected."""
    model, adapter = _load(path, "vae", dtype, device)
    model.requires_grad_(False)
    return DreamActorVAE(model, adapter, str(path))
