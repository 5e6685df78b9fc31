"""Sampler progress with latent previews: ComfyUI's previewer fed with the engine's x0 estimates.

The engine reports progress per transformer forward (through ``comfy_bridge.progress_hook``, which
also honours Cancel) and calls ``on_step(step, x0)`` after each step; the preview image goes to the
same node progress at the same count. The engine's normalised latent is ComfyUI's model-space
latent for these backbones, so ComfyUI's own latent formats colour it.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..dreamactor_core.progress import ProgressHook
from .comfy_bridge import progress_hook

# Adapter name -> ComfyUI latent format class (comfy/latent_formats.py).
LATENT_FORMATS = {"hunyuan_video_15": "HunyuanVideo15", "hunyuan_video_i2v": "HunyuanVideo", "wan_i2v": "Wan21"}


def sampler_progress(adapter_name: str, steps: int) -> tuple[ProgressHook, Callable[[int, torch.Tensor], None]]:
    """(progress hook, on_step) for one sampler run: bar and Cancel per forward, preview per step."""
    import comfy.latent_formats
    import comfy.model_management
    import comfy.utils
    import latent_preview

    hook = progress_hook(steps)
    last = [0, steps]

    def progress(done: int, total: int) -> None:
        last[:] = [done, total]
        hook(done, total)

    latent_format = getattr(comfy.latent_formats, LATENT_FORMATS.get(adapter_name, ""), None)
    previewer = None
    if latent_format is not None:
        previewer = latent_preview.get_previewer(comfy.model_management.get_torch_device(), latent_format())
    bar = comfy.utils.ProgressBar(steps)

    def on_step(step: int, x0: torch.Tensor) -> None:
        if previewer is not None:
            bar.update_absolute(last[0], last[1], previewer.decode_latent_to_preview_image("JPEG", x0))

    return progress, on_step
