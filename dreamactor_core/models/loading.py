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
from . import checkpoints, fp8, streaming
from .backbones import ADAPTERS, BackboneAdapter, detect
from .precision import guard_fp16


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


_FP8_MODES = {None: "keep", True: "all", False: "none"}


@dataclass
class LoadPlan:
    """What a single-file load will build, known from the header alone: the model (on the meta
    device, fp8 layers already switched), its converted state (deferred tensors) and the bytes it
    will hold. Valid while the file's ``deferred_file`` context is open."""

    model: torch.nn.Module
    adapter: BackboneAdapter
    state: dict[str, torch.Tensor]
    keep: set[str]
    dtype: torch.dtype

    @property
    def bytes(self) -> int:
        return streaming.stored_bytes(self.state, self.dtype, self.keep)


def plan_single_file(state: dict[str, torch.Tensor], metadata: dict[str, str], kind: str, filename: str,
                     dtype: torch.dtype, fp8_weights: bool | None = None) -> LoadPlan:
    """Detect the backbone, convert the names (deferred: nothing read) and build the model on meta."""
    from accelerate import init_empty_weights

    scales = fp8.take_scales(state, metadata, filename)
    adapter = detect({key: tuple(value.shape) for key, value in state.items()}, kind, filename)
    try:
        if kind == "transformer":
            converted, config = adapter.transformer_to_diffusers(state)
            cls = adapter.transformer_cls()
        else:
            converted, config = adapter.vae_to_diffusers(state)
            cls = adapter.vae_cls()
    except RuntimeError as error:  # a tensor of the wrong rank where the conversion splits it
        raise DreamActorError(f"'{filename}' cannot be converted to a {adapter.display_name} {kind}: {error}") from None
    with init_empty_weights():
        model = cls.from_config(config)
    keep = fp8.plan_storage(model, converted, fp8.scales_for(converted, scales, filename),
                            _FP8_MODES[fp8_weights] if kind == "transformer" else "none")
    return LoadPlan(model, adapter, converted, keep, dtype)


def load_bytes(path: str | Path, kind: str = "transformer", dtype: torch.dtype = torch.bfloat16,
               fp8_weights: bool | None = None) -> int:
    """Bytes a single-file load of ``path`` will hold on its device, from the header alone (memory
    policies ask this before loading; a folder is its weights' file size at ``dtype``)."""
    path = Path(path)
    if path.is_dir():
        folder, _ = _folder_model(path, kind)
        return sum(streaming.stored_bytes(specs, dtype) for specs in _folder_specs(folder))
    with streaming.deferred_file(path) as state:
        _, metadata = checkpoints.read_header(path)
        return plan_single_file(state, metadata, kind, path.name, dtype, fp8_weights).bytes


def _folder_specs(folder: Path) -> list[dict[str, torch.Tensor]]:
    return [{key: torch.empty(shape, dtype=dt, device="meta") for key, (dt, shape) in checkpoints.tensor_specs(f).items()}
            for f in sorted(folder.glob("*.safetensors"))]


def _check_budget(needed: int, max_bytes: int | None, filename: str, kind: str, device: torch.device) -> None:
    if max_bytes is not None and needed > max_bytes:
        raise DreamActorError(f"'{filename}': the {kind} needs {needed / 2**30:.2f} GiB on {device} but "
                              f"{max_bytes / 2**30:.2f} GiB is available; choose fp8 weight storage, block "
                              "offload or a smaller file")


def _load(path: str | Path, kind: str, dtype: torch.dtype, device: str | torch.device,
          fp8_weights: bool | None = None, max_bytes: int | None = None) -> tuple[torch.nn.Module, BackboneAdapter]:
    path = Path(path)
    device = torch.device(device)
    if not path.exists():
        raise MissingModelFile(path.name, "diffusion_models" if kind == "transformer" else "vae")
    if path.is_dir():
        folder, config = _folder_model(path, kind)
        adapter = _adapter_for_class(config.get("_class_name", "?"), kind, path)
        _check_budget(load_bytes(path, kind, dtype), max_bytes, path.name, kind, device)
        cls = adapter.transformer_cls() if kind == "transformer" else adapter.vae_cls()
        model = cls.from_pretrained(str(folder), torch_dtype=dtype, local_files_only=True, low_cpu_mem_usage=True)
        if fp8_weights:
            fp8.quantize_linears(model)  # per layer on the CPU, before the move
        return model.to(device=device).eval(), adapter

    _, metadata = checkpoints.read_header(path)
    with streaming.deferred_file(path) as state:
        plan = plan_single_file(state, metadata, kind, path.name, dtype, fp8_weights)
        _check_budget(plan.bytes, max_bytes, path.name, kind, device)
        model = streaming.fill(plan.model, plan.state, dtype=dtype, device=device, keep=plan.keep,
                               source=path.name, what=f"{plan.adapter.display_name} {kind}")
    return model.eval(), plan.adapter


def load_transformer(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                     fp8_weights: bool | None = None, block_offload: bool = False, *,
                     max_bytes: int | None = None) -> DreamActorModel:
    """Load a diffusion transformer (folder or single file); the backbone is detected.

    A single file is read one tensor at a time into a model built on the meta device: the load
    never holds more than the model plus one tensor (host and device). ``fp8_weights``: None keeps
    the file's own storage (a ComfyUI fp8 "scaled" file stays fp8, each layer dequantised as it
    runs), True stores every linear weight in float8_e4m3fn with a per-tensor scale (quantised
    while loading: half the memory of bf16, slightly different results), False dequantises
    everything to ``dtype``. block_offload keeps the weights in CPU memory and moves one
    transformer block at a time to ``device`` (diffusers' group offloading). ``max_bytes``: refuse,
    before reading any weight, a model that needs more (see ``load_bytes``). In fp16 the blocks'
    outputs are kept finite as ComfyUI's fp16 HunyuanVideo does (``precision.guard_fp16``).
    """
    model, adapter = _load(path, "transformer", dtype, "cpu" if block_offload else device, fp8_weights, max_bytes)
    model.requires_grad_(False)
    if dtype == torch.float16:
        guard_fp16(model)
    if block_offload:
        model.enable_group_offload(onload_device=torch.device(device), offload_device=torch.device("cpu"),
                                   offload_type="block_level", num_blocks_per_group=1)
    return DreamActorModel(model, adapter, str(path))


def load_vae(path: str | Path, dtype: torch.dtype = torch.float32,
             device: str | torch.device = "cpu", *, max_bytes: int | None = None) -> DreamActorVAE:
    """Load a video VAE (folder or single file, read one tensor at a time); the backbone is detected."""
    model, adapter = _load(path, "vae", dtype, device, max_bytes=max_bytes)
    model.requires_grad_(False)
    return DreamActorVAE(model, adapter, str(path))
