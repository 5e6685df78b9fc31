"""Where a model's weights are while the engine computes with it: the memory policy.

The engine never moves a model itself. Before it computes with one it asks the current policy
where the inputs go (``compute_device``) and holds the model for the computation
(``with resident(module, name):``); leaving the block tells the policy the model may leave the
compute device. Two policies:

- ``MemoryPolicy`` itself, the plain one (command line, training): nothing moves; a model is
  where its loader put it, or streams block by block where the loader enabled diffusers' group
  offload (``load_transformer(block_offload=True)``).
- ComfyUI's (``nodes/memory.py``): weights wait on ComfyUI's offload device, the block loads the
  model through ``comfy.model_management`` (which evicts other models first), streams its blocks
  when it does not fit, and refuses with a clear error when even streaming does not fit.

The core stays free of ComfyUI: the pack installs its policy with ``set_policy``. The helpers
below (sizes, the placement decision, block streaming) are plain torch/diffusers so both policies
and the tests share them.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from ..errors import DreamActorError

GIB = 1024 ** 3
FULL, STREAMED = "full", "streamed"
_GROUP_OFFLOADING = "group_offloading"  # diffusers' hook name (diffusers.hooks.group_offloading)


class MemoryPolicy:
    """The plain policy: the model stays where it is; nothing is loaded, evicted or streamed here."""

    def compute_device(self, module: torch.nn.Module) -> torch.device:
        """The device the module computes on, where its inputs must go."""
        return streaming_device(module) or _first_device(module)

    @contextmanager
    def resident(self, module: torch.nn.Module, name: str) -> Iterator[torch.device]:
        """Hold ``module`` on its compute device for the block; yields that device."""
        yield self.compute_device(module)


_policy: MemoryPolicy = MemoryPolicy()


def set_policy(policy: MemoryPolicy) -> MemoryPolicy:
    """Install ``policy`` for every later computation; returns the previous one (to restore)."""
    global _policy
    previous, _policy = _policy, policy
    return previous


def current_policy() -> MemoryPolicy:
    return _policy


def compute_device(module: torch.nn.Module) -> torch.device:
    """The device ``module``'s inputs go to under the current policy."""
    return _policy.compute_device(module)


def resident(module: torch.nn.Module, name: str):
    """``with resident(model, "transformer") as device:``: the model is usable on ``device`` inside
    the block (loaded or streaming); after it, the policy may move it away. ``name`` appears in
    error messages."""
    return _policy.resident(module, name)


def _first_device(module: torch.nn.Module) -> torch.device:
    tensor = next(module.parameters(), None)
    if tensor is None:
        tensor = next(module.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def model_bytes(module: torch.nn.Module) -> int:
    """Bytes of the module's parameters and buffers, a tied weight counted once (ComfyUI's
    ``module_size`` reads the state dict, which lists a tied weight under each of its names)."""
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def _blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The blocks diffusers' block-level group offload streams: items of top-level lists."""
    return [block for child in module.children() if isinstance(child, (torch.nn.ModuleList, torch.nn.Sequential))
            for block in child]


def streamed_bytes(module: torch.nn.Module) -> int:
    """Weights on the compute device at once while streaming block by block: everything outside
    the block lists (embedders, norms, heads stay on for the whole forward) plus the largest block.
    A model without block lists (a VAE) streams as one piece: its whole size."""
    sizes = [model_bytes(block) for block in _blocks(module)]
    return model_bytes(module) - sum(sizes) + max(sizes, default=0)


def choose_placement(name: str, *, size: int, streamed: int, available: int, reserve: int, stream: str,
                     device: torch.device | str) -> str:
    """FULL or STREAMED for a model of ``size`` bytes (``streamed`` at once when streamed block by
    block; ``streamed == size`` for a model without blocks, which then always loads whole), given
    ``available`` bytes on ``device`` once every other model is evicted and ``reserve`` bytes the
    computation itself needs. ``stream``: "always", "never" (no check: a device without a budget
    to respect) or "auto" (whole when it fits, else streamed).

    Raises DreamActorError naming the model, what it needs and what was found when it does not
    fit even streamed, so the caller refuses before any weight moves.
    """
    if stream == "never":
        return FULL
    streamable = streamed < size
    needed = (streamed if streamable else size) + reserve
    if needed > available:
        how = "even streamed block by block" if streamable else "(it has no blocks to stream)"
        raise DreamActorError(
            f"{name}: does not fit on {device} {how}: it needs {_gib(needed)} ({_gib(needed - reserve)} of "
            f"weights at once + {_gib(reserve)} to compute; {_gib(size)} of weights in all), found "
            f"{_gib(available)} with every other model unloaded. Free memory on the device, store the "
            f"weights in fp8 or use a smaller canvas")
    if not streamable or (stream == "auto" and size + reserve <= available):
        return FULL
    return STREAMED


def _gib(count: int) -> str:
    return f"{count / GIB:.2f} GiB"


# --- block streaming (diffusers' group offload, which works on any torch module) ------------------

def stream_blocks(module: torch.nn.Module, onload: torch.device, offload: torch.device) -> None:
    """Keep ``module``'s weights on ``offload`` and move one block at a time to ``onload`` as it runs."""
    from diffusers.hooks import apply_group_offloading

    apply_group_offloading(module, onload_device=torch.device(onload), offload_device=torch.device(offload),
                           offload_type="block_level", num_blocks_per_group=1)


def stop_streaming(module: torch.nn.Module, offload: torch.device) -> None:
    """Remove block streaming and put every weight on ``offload`` (also after an error mid-block,
    when a block may still be on the compute device)."""
    from diffusers.hooks import HookRegistry

    registry = HookRegistry.check_if_exists_or_initialize(module)
    registry.remove_hook(_GROUP_OFFLOADING, recurse=True)
    getattr(registry, "invalidate_child_registries_cache", lambda: None)()
    torch.nn.Module.to(module, offload)  # plain move: diffusers' own .to refuses on offloaded models


def streaming_device(module: torch.nn.Module) -> torch.device | None:
    """The device blocks stream to when group offload is on, else None."""
    for submodule in module.modules():
        registry = getattr(submodule, "_diffusers_hook", None)
        hook = registry.get_hook(_GROUP_OFFLOADING) if registry is not None else None
        if hook is not None:
            return hook.config.onload_device
    return None
