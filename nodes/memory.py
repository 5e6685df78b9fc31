"""The pack's models under ComfyUI's model management (the core's memory policy, ComfyUI's way).

Each loaded model (transformer, VAE, Qwen2.5-VL, ByT5, SigLIP) is wrapped in a ComfyUI
``ModelPatcher`` whose load device is ComfyUI's compute device for that role and whose offload
device is ComfyUI's offload device (``unet_offload_device``, ``vae_offload_device``,
``text_encoder_offload_device``: the CPU, or the GPU under --gpu-only/--highvram). Loaders leave the
weights on the offload device. When the engine computes (``dreamactor_core.models.memory.resident``)
the policy here asks ComfyUI for room and loads the model with ``load_models_gpu``, which evicts
other models first, the pack's and ComfyUI's alike: the text and image encoders leave the GPU when
the sampler needs their room. After the node the model stays loaded until ComfyUI needs the
memory (ComfyUI's "smart memory"), or ``/free`` unloads everything.

Block streaming: ComfyUI's partial (lowvram) loading casts weights per layer inside ``comfy.ops``
layers only; the pack's models are diffusers/transformers modules, so a partially loaded one would
compute with weights on two devices. The pack therefore always loads a model whole
(``force_full_load``) and never lets ComfyUI unload part of it (``partially_unload`` frees nothing,
so ComfyUI unloads it whole); when a model does not fit, or under --lowvram/--novram, or when Load
Model's ``offload`` is ``block``, it streams with diffusers' group offload instead: weights stay on
the offload device and one block at a time moves to the compute device. A model that does not fit
even streamed is refused with its size and the memory found, before any weight moves.

An interrupt or out-of-memory inside the computation unloads the model (weights back on the
offload device, streaming removed) and empties the cache, so the next run starts clean.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Any, Iterator

import torch

from ..dreamactor_core.models import memory
from ..dreamactor_core.models.memory import FULL, STREAMED

_PATCHER = "_dreamactor_patcher"

# Role -> (load device, offload device): names of ComfyUI's own choices for its models of that kind.
DEVICES: dict[str, tuple[str, str]] = {
    "transformer": ("get_torch_device", "unet_offload_device"),
    "vae": ("vae_device", "vae_offload_device"),
    "text_encoder": ("text_encoder_device", "text_encoder_offload_device"),
    "image_encoder": ("text_encoder_device", "text_encoder_offload_device"),  # as ComfyUI's CLIP vision
}


def _mm() -> Any:
    """comfy.model_management, imported on first use: importing it probes the devices, which must
    not happen while the pack is merely being loaded (ComfyUI has done it by then anyway)."""
    import comfy.model_management

    return comfy.model_management


def offload_device(role: str) -> torch.device:
    """Where a loader of ``role`` puts the weights: they wait there between node runs."""
    return getattr(_mm(), DEVICES[role][1])()


def load_device(role: str) -> torch.device:
    """Where a model of ``role`` computes (its precision follows this device, not the offload one)."""
    return getattr(_mm(), DEVICES[role][0])()


class _Holder(torch.nn.Module):
    """What the patcher wraps. ModelPatcher writes ``model.device``, a read-only property on
    diffusers' and transformers' models; on the holder it is a plain attribute."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.inner = module


@functools.cache
def patcher_class() -> type:
    """``PackModelPatcher``: a ModelPatcher for a diffusers/transformers module, loaded and unloaded
    whole, never in part (defined on first use, like ``_mm``)."""
    import comfy.model_patcher

    class PackModelPatcher(comfy.model_patcher.ModelPatcher):
        dreamactor_name = "model"
        dreamactor_stream = False  # stream blocks even when the model would fit (Load Model offload: block)
        dreamactor_placement = ""  # FULL or STREAMED: how it was last made resident

        def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False):
            return 0  # nothing freed in part: ComfyUI's LoadedModel.model_unload then detaches it whole

    return PackModelPatcher


def manage(module: torch.nn.Module, role: str, label: str, stream: bool = False) -> torch.nn.Module:
    """Put ``module`` under ComfyUI's model management as a ``role`` model named ``label`` (for
    messages and the loaded-models list); ``stream`` asks for block streaming always."""
    holder = type(type(module).__name__, (_Holder,), {})(module)  # ComfyUI logs "Requested to load <class>"
    patcher = patcher_class()(holder, load_device=load_device(role), offload_device=offload_device(role),
                              size=memory.model_bytes(module))
    patcher.dreamactor_name, patcher.dreamactor_stream = label, stream
    module.__dict__[_PATCHER] = patcher  # a plain attribute, not a submodule
    return module


def patcher_of(module: torch.nn.Module) -> Any:
    return module.__dict__.get(_PATCHER)


def _loaded_entry(patcher: Any):
    return next((entry for entry in _mm().current_loaded_models if entry.model is patcher), None)


def _unload(patcher: Any) -> None:
    entry = _loaded_entry(patcher)
    if entry is not None:
        entry.model_unload()
        _mm().current_loaded_models.remove(entry)


def _stream_mode() -> str:
    """always / never / auto from ComfyUI's VRAM state: --lowvram and --novram (LOW_VRAM, NO_VRAM)
    stream, --highvram and --gpu-only (HIGH_VRAM) and --cpu (DISABLED) load whole without a budget
    check, as ComfyUI does for its own models; otherwise whole when it fits, else streamed."""
    mm = _mm()
    state = mm.vram_state
    if state in (mm.VRAMState.LOW_VRAM, mm.VRAMState.NO_VRAM):
        return "always"
    return "never" if state in (mm.VRAMState.HIGH_VRAM, mm.VRAMState.DISABLED) else "auto"


def _place(patcher: Any, name: str) -> str:
    """Make the model usable on its load device: load it whole or stream it. Decides (and refuses)
    before anything moves."""
    mm = _mm()
    module, device = patcher.model.inner, patcher.load_device
    stream = "always" if patcher.dreamactor_stream else _stream_mode()
    own = _loaded_entry(patcher)
    own_loaded = own.model_loaded_memory() if own is not None else 0
    reserve = mm.minimum_inference_memory()
    streamed = memory.streamed_bytes(module)
    available = mm.get_free_memory(device) + own_loaded + sum(
        entry.model_loaded_memory() for entry in mm.current_loaded_models if entry.device == device and entry is not own)
    placement = memory.choose_placement(f"{name} '{patcher.dreamactor_name}'", size=patcher.model_size(),
                                        streamed=streamed, available=available, reserve=reserve, stream=stream,
                                        device=device)
    if placement == FULL:
        mm.free_memory(patcher.model_size() - own_loaded + reserve, device, keep_loaded=[own] if own else [])
        mm.load_models_gpu([patcher], force_full_load=True)
    else:
        _unload(patcher)
        mm.free_memory(streamed + reserve, device)
        memory.stream_blocks(module, device, patcher.offload_device)
    patcher.dreamactor_placement = placement
    return placement


class ComfyPolicy(memory.MemoryPolicy):
    """The core's memory policy inside ComfyUI; models that are not managed behave as in the core."""

    def compute_device(self, module: torch.nn.Module) -> torch.device:
        patcher = patcher_of(module)
        return patcher.load_device if patcher is not None else super().compute_device(module)

    @contextmanager
    def resident(self, module: torch.nn.Module, name: str) -> Iterator[torch.device]:
        patcher = patcher_of(module)
        if patcher is None:
            with super().resident(module, name) as device:
                yield device
            return
        placement = _place(patcher, name)
        failed = True
        try:
            yield patcher.load_device
            failed = False
        finally:
            if placement == STREAMED:
                memory.stop_streaming(module, patcher.offload_device)
            if failed:  # interrupt, out of memory, any error: nothing stays loaded, the cache is emptied
                _unload(patcher)
                _mm().soft_empty_cache()


memory.set_policy(ComfyPolicy())
