"""Exact temporal chunking of HunyuanVideo 1.5's causal VAE: the causal state is carried across chunks.

diffusers' ``AutoencoderKLHunyuanVideo15`` is causal in time everywhere: each 3D convolution pads
two frames in front (replicating frame 0), the temporal down/upsamplers treat frame 0 alone and
then whole pairs, and the mid-block attention lets a frame see itself and earlier frames only.
So a clip cut into chunks at whole-group boundaries gives the whole-clip result exactly when each
chunk continues the previous one's state instead of starting afresh:

- a causal convolution prepends the last two frames of its input from the previous chunk (the
  first chunk replicates frame 0, as the whole-clip pad does);
- a temporal down/upsampler treats frame 0 alone only in the first chunk;
- the mid-block attention keeps the keys and values of all earlier frames (at latent resolution,
  the smallest activations of the model) and runs each query frame against the frames up to it.

State is keyed by each module's call order within a chunk, so the VAE's own spatial tiling (one
encoder/decoder call per tile, the same tiles in every chunk) keeps one state per tile and its
overlap blending unchanged. The modules are patched per instance for the duration of one
``carry_causal_state`` block and restored afterwards, also on error or interrupt.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F


def supports_carry(vae: torch.nn.Module) -> bool:
    """True for the VAE class whose causal structure this module reproduces."""
    return type(vae).__name__ == "AutoencoderKLHunyuanVideo15"


class CausalCarry:
    """The state one chunk leaves for the next; ``next_chunk()`` is called between chunks."""

    def __init__(self) -> None:
        self.first = True
        self._calls: dict[int, int] = {}
        self._state: dict[tuple[int, int], Any] = {}

    def next_chunk(self) -> None:
        self.first = False
        self._calls.clear()

    def _slot(self, module: torch.nn.Module) -> tuple[int, int]:
        count = self._calls.get(id(module), 0)
        self._calls[id(module)] = count + 1
        return id(module), count

    # ----- the patched forwards -----
    def conv(self, module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """HunyuanVideo15CausalConv3d: time padding from the previous chunk's last input frames."""
        slot = self._slot(module)
        pad = module.time_causal_padding
        previous = self._state.get(slot)
        front = x[:, :, :1].expand(-1, -1, pad[4], -1, -1) if previous is None else previous
        x = torch.cat([front, x], dim=2)
        self._state[slot] = x[:, :, x.shape[2] - pad[4]:].clone()  # a copy: the chunk itself is freed
        return module.conv(F.pad(x, (*pad[:4], 0, 0), mode=module.pad_mode))

    def downsample(self, module: torch.nn.Module, x: torch.Tensor, original: Callable) -> torch.Tensor:
        """A later chunk of a temporal downsampler: every frame belongs to a whole pair."""
        if self.first or not module.add_temporal_downsample:
            return original(x)
        h = module._dcae_downsample_rearrange(module.conv(x), r1=2, r2=2, r3=2)
        shortcut = module._dcae_downsample_rearrange(x, r1=2, r2=2, r3=2)
        batch, _, frames, height, width = shortcut.shape
        return h + shortcut.view(batch, h.shape[1], module.group_size, frames, height, width).mean(dim=2)

    def upsample(self, module: torch.nn.Module, x: torch.Tensor, original: Callable) -> torch.Tensor:
        """A later chunk of a temporal upsampler: every frame becomes two."""
        if self.first or not module.add_temporal_upsample:
            return original(x)
        h = module._dcae_upsample_rearrange(module.conv(x), r1=2, r2=2, r3=2)
        shortcut = module._dcae_upsample_rearrange(x, r1=2, r2=2, r3=2)
        return h + shortcut.repeat_interleave(repeats=module.repeats, dim=1)

    def attention(self, module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """HunyuanVideo15AttnBlock, causal over frames, with the earlier chunks' keys and values."""
        identity = x
        x = module.norm(x)
        batch, channels, frames, height, width = x.shape
        tokens = height * width

        def sequence(projection: torch.nn.Module) -> torch.Tensor:
            return projection(x).reshape(batch, channels, frames * tokens).permute(0, 2, 1).unsqueeze(1)

        query, key, value = sequence(module.to_q), sequence(module.to_k), sequence(module.to_v)
        slot = self._slot(module)
        if slot in self._state:
            past_key, past_value = self._state[slot]
            key, value = torch.cat([past_key, key], dim=2), torch.cat([past_value, value], dim=2)
        self._state[slot] = (key, value)
        before = key.shape[2] - frames * tokens
        out = torch.cat([
            F.scaled_dot_product_attention(query[:, :, i * tokens:(i + 1) * tokens],
                                           key[:, :, :before + (i + 1) * tokens], value[:, :, :before + (i + 1) * tokens])
            for i in range(frames)
        ], dim=2)
        out = out.squeeze(1).reshape(batch, frames, height, width, channels).permute(0, 4, 1, 2, 3)
        return module.proj_out(out) + identity


@contextmanager
def carry_causal_state(vae: torch.nn.Module) -> Iterator[CausalCarry]:
    """Patch ``vae``'s causal modules to carry state between calls; yields the carry to advance."""
    carry = CausalCarry()
    patched = []
    try:
        for module in vae.modules():
            kind = type(module).__name__
            if kind == "HunyuanVideo15CausalConv3d":
                module.forward = lambda x, m=module: carry.conv(m, x)
            elif kind == "HunyuanVideo15Downsample":
                module.forward = lambda x, m=module, f=module.forward: carry.downsample(m, x, f)
            elif kind == "HunyuanVideo15Upsample":
                module.forward = lambda x, m=module, f=module.forward: carry.upsample(m, x, f)
            elif kind == "HunyuanVideo15AttnBlock":
                module.forward = lambda x, m=module: carry.attention(m, x)
            else:
                continue
            patched.append(module)
        yield carry
    finally:
        for module in patched:
            del module.forward
