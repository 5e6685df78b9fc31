"""Context (sequence) parallel attention: several processes share one video's tokens.

diffusers' context parallelism (``diffusers.hooks.context_parallel`` with the dispatcher's
Ulysses attention) splits the video and text tokens of every block across the processes and, in
each attention, exchanges heads for tokens with one all-to-all, so every process attends over the
whole sequence for its share of the heads. The weights are not split: each process holds the whole
model and computes a fraction of the tokens, so the time of a step falls with the process count,
and the activation memory with it (the weights do not).

diffusers 0.42 ships no ``_cp_plan`` for ``HunyuanVideo15Transformer3DModel``; ``CP_PLANS`` gives
it one, in diffusers' own plan format: split RoPE's output and the first block's video tokens,
text tokens and every block's text mask along the sequence; gather the video tokens after ``proj_out``.

Why Ulysses and not ring attention: diffusers' ring attention needs each kernel's log-sum-exp,
which its ``native`` (SDPA) forward refuses (``_native_attention_forward_op``: "Native attention
does not support return_lse=True"), and the kernels that return it (FlashAttention, cuDNN, flash
SDPA, Sage) are CUDA-only in fp16/bf16; ring attention also hands each key chunk the whole key
mask. Ulysses runs with any kernel, all-gathers the pack's key-padding mask itself, and needs only
all-to-all and all-gather, which gloo has on the CPU. ``ulysses_anything`` lets token and head
counts be any number (uneven shares), at the cost of the backward pass (sampling needs none).

diffusers' ``ModelMixin.enable_parallelism`` is not used: it derives the device as
``rank % torch.accelerator.device_count()``, a division by zero on a CPU-only machine, and it
cannot be undone. ``context_parallel`` does the same three things (set up the config on a device
mesh, give the attention processors the config, hook the plan) and undoes them on exit, so the
loaded model is unchanged afterwards.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch

from ..errors import DreamActorError


def _plans() -> dict[str, dict]:
    """diffusers context-parallel plans (the splits) of the models diffusers ships without one; the
    output is gathered by ``_gather_tokens`` on the module ``GATHER_AFTER`` names."""
    from diffusers.models._modeling_parallel import ContextParallelInput as Split

    rope = Split(split_dim=0, expected_dims=2, split_output=True)  # (video tokens, head_dim / 2)
    return {
        "HunyuanVideo15Transformer3DModel": {
            "rope": {0: rope, 1: rope},
            "transformer_blocks.0": {
                "hidden_states": Split(split_dim=1, expected_dims=3),
                "encoder_hidden_states": Split(split_dim=1, expected_dims=3),
            },
            # The forward hands every block the whole text mask, not the previous block's output.
            "transformer_blocks.*": {"attention_mask": Split(split_dim=1, expected_dims=2)},
        },
    }


# The layer after which each process holds its share of the video tokens' output [B, share, C].
GATHER_AFTER = {"HunyuanVideo15Transformer3DModel": "proj_out"}


def _gather_tokens(group, output: torch.Tensor) -> torch.Tensor:
    """Every process's share of ``output`` [B, share, C], concatenated along the tokens in process
    order. Shares may differ by one token; gloo's all-gather needs equal sizes (diffusers' own
    uneven gather, ``_all_gather_anything``, works on NCCL only), so each share is padded to the
    largest and trimmed back."""
    import torch.distributed as dist
    from diffusers.models._modeling_parallel import gather_size_by_comm

    sizes = gather_size_by_comm(output.shape[1], group)
    padded = torch.nn.functional.pad(output, (0, 0, 0, max(sizes) - output.shape[1])).contiguous()
    shares = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(shares, padded, group=group)
    return torch.cat([share[:, :size] for share, size in zip(shares, sizes)], dim=1)


def plan_for(transformer: torch.nn.Module) -> tuple[dict, str]:
    """The pack's context-parallel plan for the model and the layer its output is gathered after.
    (Models with diffusers' own ``_cp_plan`` gather with diffusers' uneven all-gather, which gloo
    lacks, so only the pack's plans are used.)"""
    name = type(transformer).__name__
    plan = _plans().get(name)
    if plan is None:
        raise DreamActorError(f"--context-parallel: no context-parallel plan for {name} "
                              f"(supported: {', '.join(GATHER_AFTER)})")
    return plan, GATHER_AFTER[name]


@contextlib.contextmanager
def torchrun_group(device: str) -> Iterator[str]:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` in the
    environment) for the ``with`` block; yields this process's device: ``cuda:LOCAL_RANK`` for a
    CUDA ``device``. The group is destroyed on the way out.

    The backend is ``cpu:gloo`` (plus ``cuda:nccl`` on GPUs): diffusers' uneven-share Ulysses
    exchanges token counts on the CPU when the backend's name says it has one.
    """
    import torch.distributed as dist

    if "WORLD_SIZE" not in os.environ:
        raise DreamActorError("--context-parallel: start the command with torchrun, e.g. "
                              "torchrun --nproc_per_node 2 -m dreamactor_core animate --context-parallel ...")
    cuda = torch.device(device).type == "cuda"
    if cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "cpu:gloo")
    try:
        yield device
    finally:
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True outside a process group and on its rank 0 (the one that writes files)."""
    import torch.distributed as dist

    return not dist.is_initialized() or dist.get_rank() == 0


def _processors(transformer: torch.nn.Module) -> list:
    """The distinct attention processors that take diffusers' parallel config."""
    seen: dict[int, object] = {}
    for module in transformer.modules():
        processor = getattr(module, "processor", None)
        if processor is not None and hasattr(processor, "_parallel_config"):
            seen.setdefault(id(processor), processor)
    return list(seen.values())


def _check_backends(processors: list) -> None:
    from diffusers.models.attention_dispatch import AttentionBackendName, _AttentionBackendRegistry

    for processor in processors:
        backend = processor._attention_backend or _AttentionBackendRegistry.get_active_backend()[0]
        if not _AttentionBackendRegistry._is_context_parallel_available(AttentionBackendName(backend)):
            supported = ", ".join(sorted(_AttentionBackendRegistry._supports_context_parallel))
            raise DreamActorError(f"--context-parallel: the attention kernel '{AttentionBackendName(backend).value}' "
                                  f"cannot split the sequence; diffusers can with: {supported}")


@contextlib.contextmanager
def context_parallel(transformer: torch.nn.Module) -> Iterator[int]:
    """Inside the ``with`` block, every process of the (initialised) default process group
    computes its share of ``transformer``'s tokens, and each forward returns the whole output on
    every process. Yields the process count. The hooks and processor configs are removed on the way
    out, also on error or interrupt. Use inside ``attention.configured`` (which picks the kernel)."""
    import torch.distributed as dist
    from diffusers.hooks.context_parallel import apply_context_parallel, remove_context_parallel
    from diffusers.models._modeling_parallel import ContextParallelConfig, ParallelConfig
    from torch.distributed.device_mesh import init_device_mesh

    from .attention import install

    if not dist.is_initialized() or dist.get_world_size() < 2:
        raise DreamActorError("--context-parallel: needs at least 2 processes (start with torchrun --nproc_per_node N)")
    world = dist.get_world_size()
    device = next(transformer.parameters()).device
    if device.type == "cpu" and "cpu" not in str(dist.get_backend()):
        raise DreamActorError(f"--context-parallel on the CPU: the process group's backend must name the CPU "
                              f"('cpu:gloo'), got '{dist.get_backend()}'")
    plan, gather_after = plan_for(transformer)
    if type(transformer).__name__ == "HunyuanVideo15Transformer3DModel":
        install(transformer)
    processors = _processors(transformer)
    _check_backends(processors)
    mesh = init_device_mesh(device.type, (1, world), mesh_dim_names=("ring", "ulysses"))
    config = ParallelConfig(context_parallel_config=ContextParallelConfig(ulysses_degree=world, ulysses_anything=True))
    config.setup(dist.get_rank(), world, device, mesh=mesh)
    previous = [processor._parallel_config for processor in processors]
    group = config.context_parallel_config._flattened_mesh.get_group()
    gather = transformer.get_submodule(gather_after).register_forward_hook(
        lambda module, args, output: _gather_tokens(group, output))
    try:
        for processor in processors:
            processor._parallel_config = config
        apply_context_parallel(transformer, config.context_parallel_config, plan)
        yield world
    finally:
        gather.remove()
        remove_context_parallel(transformer, plan)  # removes only the hooks it finds
        for processor, before in zip(processors, previous):
            processor._parallel_config = before
