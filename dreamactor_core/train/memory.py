"""Memory modes of training, for 24 GB and 48 GB cards (``bench/train_memory.py`` estimates each).

- Gradient checkpointing (``gradient_checkpointing``): each transformer block keeps only its input
  for the backward pass and recomputes the rest (diffusers' own switch).
- Activation offload (``offload_activations``): the tensors autograd saves (with checkpointing:
  the blocks' inputs) go to CPU memory during the forward and come back for the backward
  (``torch.autograd.graph.save_on_cpu``, pinned on GPUs).
- 8-bit AdamW (``optimizer = "adamw8bit"``): bitsandbytes' block-wise quantised moments, 2 bytes
  per trainable parameter instead of 8 (optional dependency: ``pip install bitsandbytes``).
- fp8 base weights (``fp8_weights``): the frozen linears stored in float8 with a per-tensor scale by
  the loader (``models.fp8``); the LoRA, its gradients and the optimizer stay in float32.
- Block swap (``block_swap``): the frozen weights of the transformer's blocks live in CPU memory and
  each block's are copied to the GPU only while it runs (in the forward and in the checkpointed
  recompute), as musubi-tuner's ``blocks_to_swap`` does. The LoRA stays on the GPU, so the
  optimizer never sees a moving parameter; diffusers' group offloading is not used here because it
  moves every parameter of a block, the trainable ones too. Needs gradient checkpointing (without
  it autograd keeps every block's weights alive until the backward).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Iterable

import torch
import torch.utils.checkpoint

from ..errors import DreamActorError
from .config import TrainConfig


def activation_context(config: TrainConfig, device: torch.device) -> AbstractContextManager:
    """Where saved activations live during one forward and backward (see the module doc)."""
    if not config.offload_activations:
        return nullcontext()
    return torch.autograd.graph.save_on_cpu(pin_memory=device.type == "cuda")


def make_optimizer(parameters: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (torch) or 8-bit AdamW (bitsandbytes) with the config's learning rate and decay."""
    parameters = list(parameters)
    if config.optimizer == "adamw8bit":
        try:
            import bitsandbytes
        except ImportError:
            raise DreamActorError("optimizer 'adamw8bit' needs bitsandbytes: pip install bitsandbytes "
                                  "(or use optimizer 'adamw')") from None
        return bitsandbytes.optim.AdamW8bit(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    return torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)


def transformer_blocks(transformer: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks: every module of the transformer's top-level ModuleLists (the unit
    diffusers' block-level offloading uses too)."""
    return [block for child in transformer.children() if isinstance(child, torch.nn.ModuleList) for block in child]


class FrozenBlockSwap:
    """Keeps the frozen tensors of the blocks in CPU memory and puts them on ``device`` only while
    their block runs; everything else (the LoRA, embedders, final layer) is moved to ``device`` once.

    Forward hooks swap in and out; gradient checkpointing runs through ``checkpoint``, which also
    swaps out when PyTorch stops a recompute early (non-reentrant checkpointing ends the recompute
    as soon as the tensors it needs exist, so the block's forward hook never runs there)."""

    def __init__(self, transformer: torch.nn.Module, device: torch.device) -> None:
        self.device = device
        self.blocks = transformer_blocks(transformer)
        if not self.blocks:
            raise DreamActorError("block_swap: this transformer has no block list to swap")
        pin = device.type == "cuda"
        self.frozen: dict[torch.nn.Module, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        swapped: set[int] = set()
        for block in self.blocks:
            tensors = [t for t in (*block.parameters(), *block.buffers()) if not t.requires_grad]
            self.frozen[block] = [(t, t.data.cpu().pin_memory() if pin else t.data.cpu()) for t in tensors]
            for tensor, host in self.frozen[block]:
                tensor.data = host
                swapped.add(id(tensor))
            block.register_forward_pre_hook(self._bring)
            block.register_forward_hook(self._return)
        for tensor in (*transformer.parameters(), *transformer.buffers()):
            if id(tensor) not in swapped:
                tensor.data = tensor.data.to(device)
        transformer.enable_gradient_checkpointing(self.checkpoint)

    def checkpoint(self, block: torch.nn.Module, *args):
        """diffusers' gradient-checkpointing function, swapping out however the recompute ends."""
        def run(*inputs):
            try:
                return block(*inputs)
            finally:
                if block in self.frozen:
                    self._return(block, inputs, None)

        return torch.utils.checkpoint.checkpoint(run, *args, use_reentrant=False)

    def _bring(self, block: torch.nn.Module, args) -> None:
        for tensor, host in self.frozen[block]:
            tensor.data = host.to(self.device, non_blocking=True, copy=True)  # copy: a CPU run swaps too

    def _return(self, block: torch.nn.Module, args, output) -> None:
        # The device copy is dropped here unless autograd still holds it (then the backward frees it).
        for tensor, host in self.frozen[block]:
            tensor.data = host

    def frozen_names(self, transformer: torch.nn.Module) -> list[str]:
        """Names of the swapped tensors (DDP must not broadcast or bucket them: they sit on the CPU)."""
        ids = {id(tensor) for pairs in self.frozen.values() for tensor, _ in pairs}
        return [name for name, tensor in (*transformer.named_parameters(), *transformer.named_buffers())
                if id(tensor) in ids]
