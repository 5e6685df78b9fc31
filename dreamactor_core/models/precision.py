"""Which dtype a model computes in: one rule for the nodes, the command line and training.

'auto' is bf16 where the device supports it (same range as fp32, so nothing overflows), else fp16
(half the memory of fp32; the transformer gets ComfyUI's fp16 guard, ``guard_fp16``), else fp32.
The CPU computes in fp32: bf16/fp16 matrix products on a CPU are many times slower (SigLIP in bf16
measured 16x slower than fp32), so encoders that run on the CPU use fp32 whatever the GPU uses.
"""

from __future__ import annotations

import torch

from ..errors import DreamActorError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
PRECISIONS = ("auto", *DTYPES)


def choose_dtype(precision: str, device: str | torch.device, *, bf16_supported: bool | None = None,
                 fp16_supported: bool | None = None) -> torch.dtype:
    """The compute dtype for ``precision`` ('auto', 'bf16', 'fp16', 'fp32') on ``device``.

    ``bf16_supported``/``fp16_supported``: the host application's answer (ComfyUI's
    ``should_use_bf16``/``should_use_fp16``, which know its command-line flags); None asks torch.
    """
    if precision in DTYPES:
        return DTYPES[precision]
    if precision != "auto":
        raise DreamActorError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if device.type == "cpu":
        return torch.float32
    if bf16_supported is None:
        bf16_supported = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if fp16_supported is None:
        fp16_supported = device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 6
    return torch.bfloat16 if bf16_supported else torch.float16 if fp16_supported else torch.float32


def encoder_dtype(dtype: torch.dtype, device: str | torch.device) -> torch.dtype:
    """``dtype`` on an accelerator; on the CPU a half precision (bf16/fp16) becomes fp32, an encoder
    placed on the CPU never computes in the slow half-precision kernels."""
    half = dtype in (torch.bfloat16, torch.float16)
    return torch.float32 if half and torch.device(device).type == "cpu" else dtype


def guard_fp16(model: torch.nn.Module) -> None:
    """Keep an fp16 transformer's residual stream finite, as ComfyUI's own HunyuanVideo does in fp16
    (``nan_to_num`` to +-65504 after each block): a forward hook on every repeated block
    (diffusers' ``_no_split_modules``). Models in bf16/fp32 are left alone."""
    blocks = set(getattr(model, "_no_split_modules", None) or ())
    for module in model.modules():
        if type(module).__name__ in blocks:
            module.register_forward_hook(_clamp_fp16)


def _clamp_fp16(module: torch.nn.Module, inputs: tuple, output):
    if isinstance(output, torch.Tensor):
        return _finite(output)
    if isinstance(output, tuple):
        return tuple(_finite(item) if isinstance(item, torch.Tensor) else item for item in output)
    return output


def _finite(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.dtype != torch.float16:
        return tensor
    return torch.nan_to_num(tensor, nan=0.0, posinf=65504.0, neginf=-65504.0)
