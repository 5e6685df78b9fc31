"""The DreamActor sampler node and its progress with latent previews (ComfyUI's previewer fed
with the engine's x0 estimates).
"""

from __future__ import annotations

import torch

from ..dreamactor_core.models.attention import ATTENTION_CHOICES, configured
from ..dreamactor_core.sampling import EMPTY_REGIONS, SOLVERS, sample
from .comfy_bridge import CATEGORY_ROOT
from .conditioning import CONDITIONING_TYPE
from .models import MODEL_TYPE


def packed_mask(model, mask: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    """The pixel canvas MASK [T, H, 2W] packed to the latent grid in the backbone's layout."""
    from ..dreamactor_core.canvas.masks import pack_latent_mask

    adapter = model.adapter
    packed = pack_latent_mask(mask, adapter.spatial_compression, adapter.temporal_compression, adapter.mask_layout)
    return packed.unsqueeze(0).expand(latent.shape[0], *packed.shape)


# The guidance and speed widgets of every node that samples (the Sampler, Animate Long Video): one
# definition, so their names, ranges and meanings stay the same.
GUIDANCE_WIDGETS = {
    "steps": ("INT", {"default": 0, "min": 0, "max": 200, "tooltip": "Denoising steps; 0 = the model "
                      "file's (30; 8 for a step_distilled HunyuanVideo 1.5 file)."}),
    "cfg": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 20.0, "step": 0.1,
                      "tooltip": "Text guidance scale; 1 turns guidance off (and needs no negative); 0 = "
                                 "the model file's (6; 1 for cfg_distilled and step_distilled files)."}),
    "shift": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 20.0, "step": 0.1,
                        "tooltip": "Timestep shift: higher spends more steps at high noise; 0 = the "
                                   "model file's (5 for 480p, 7 for 720p and step_distilled)."}),
    "solver": (list(SOLVERS), {"default": "euler", "tooltip": "euler: one forward a step; heun: "
                               "two, more accurate; dpmpp_2m: second order at one forward a step."}),
}
SPEED_WIDGETS = {
    "attention": (list(ATTENTION_CHOICES), {"default": "auto", "tooltip": "Attention kernel: auto "
                  "picks FlashAttention when installed on a GPU, else PyTorch SDPA; sage (SageAttention) "
                  "is faster but approximate."}),
    "compile": ("BOOLEAN", {"default": False, "tooltip": "torch.compile each transformer block: "
                "minutes on the first run, faster steps after (kept while the model stays loaded)."}),
    "cache_threshold": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                        "Step cache: skip most of a forward when its first block changed less than this "
                        "(relative) since the last full one; 0 = off. Higher is faster, further from "
                        "the uncached video."}),
}


class Sampler:
    DESCRIPTION = (
        "Generates the DreamActor canvas with flow matching: the transformer sees the noise latent, the "
        "canvas latent and the canvas mask, guided by the target-oriented prompt. Same seed, same video "
        "(noise is drawn on the CPU). Decode the result and crop the generated half."
    )
    CATEGORY = f"{CATEGORY_ROOT}/sampling"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("samples",)
    OUTPUT_TOOLTIPS = ("The generated canvas latent (raw VAE latent), for DreamActor-M2 Decode Latent or core "
                       "VAE Decode.",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "model": (MODEL_TYPE, {"tooltip": "The transformer (with any LoRAs)."}),
                "positive": (CONDITIONING_TYPE, {"tooltip": "The encoded target-oriented prompt."}),
                "canvas_latent": ("LATENT", {"tooltip": "The canvas from DreamActor-M2 Encode Canvas or core VAE Encode "
                                             "(raw VAE latent)."}),
                "mask": ("MASK", {"tooltip": "The canvas mask [frames, height, 2 x width] built with the canvas."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                                 "tooltip": "Noise seed; the same seed gives the same video."}),
                **GUIDANCE_WIDGETS,
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 1.0, "step": 0.01,
                                      "tooltip": "Below 1 refines the optional 'latent' input instead of pure noise."}),
            },
            "optional": {
                "negative": (CONDITIONING_TYPE, {"tooltip": "The encoded negative prompt, needed when cfg > 1."}),
                "latent": ("LATENT", {"tooltip": "A latent to refine when denoise < 1."}),
                "window_frames": ("INT", {"default": 0, "min": 0, "max": 64, "tooltip": "Latent frames per "
                                          "temporal window for long videos (each window also sees the reference "
                                          "frame); 0 samples all frames at once."}),
                "window_overlap": ("INT", {"default": 2, "min": 0, "max": 32,
                                           "tooltip": "Latent frames shared by neighbouring windows, blended."}),
                "empty_regions": (list(EMPTY_REGIONS), {"default": "encoded_black", "tooltip": "The canvas's empty "
                                  "reference half after frame 0: encoded_black keeps the VAE's encoding of black "
                                  "(the paper); zero_latent zeroes it in latent space (diffusers' I2V pipelines)."}),
                **SPEED_WIDGETS,
            },
        }

    def run(self, model, positive, canvas_latent, mask, seed, steps, cfg, shift, solver, denoise,
            negative=None, latent=None, window_frames=0, window_overlap=2, empty_regions="encoded_black",
            attention="auto", compile=False, cache_threshold=0.0) -> tuple:
        # LATENTs in and out are raw VAE latents (ComfyUI's convention); the core samples in the model's
        # normalised space, so the model's latent format converts at this boundary, as ComfyUI's models do.
        latent_format = comfy_latent_format(model.adapter.name)
        condition = latent_format.process_in(canvas_latent["samples"].float())
        steps, cfg, shift = (value or None for value in (steps, cfg, shift))  # 0: the model file's default
        progress = SamplerProgress(latent_format, steps or 1)  # its total is set at the first forward
        with configured(model.transformer, attention, compile):
            result = sample(
                model, positive, condition, packed_mask(model, mask, condition), negative=negative, seed=seed,
                steps=steps, cfg=cfg, shift=shift, solver=solver, denoise=denoise,
                init_latent=None if latent is None else latent_format.process_in(latent["samples"].float()),
                window_frames=window_frames, window_overlap=window_overlap, empty_regions=empty_regions,
                cache_threshold=cache_threshold, progress=progress, on_step=progress.on_step,
            )
        return ({"samples": latent_format.process_out(result.cpu())},)


# Adapter name -> ComfyUI latent format class (comfy/latent_formats.py).
LATENT_FORMATS = {"hunyuan_video_15": "HunyuanVideo15", "hunyuan_video_i2v": "HunyuanVideo", "wan_i2v": "Wan21"}


def comfy_latent_format(adapter_name: str):
    """ComfyUI's latent format of a backbone: raw VAE latent <-> the model's normalised space."""
    import comfy.latent_formats

    return getattr(comfy.latent_formats, LATENT_FORMATS[adapter_name])()


class SamplerProgress:
    """One progress bar for a sampler run: advanced (and Cancel honoured) after every transformer
    forward through ``__call__``, the core's progress hook; a latent preview attached after every step
    through ``on_step``, at the same count."""

    def __init__(self, latent_format, steps: int) -> None:
        import comfy.model_management
        import comfy.utils
        import latent_preview

        self.done, self.total = 0, steps
        self.bar = comfy.utils.ProgressBar(steps)
        self.previewer = latent_preview.get_previewer(comfy.model_management.get_torch_device(), latent_format)

    def __call__(self, done: int, total: int) -> None:
        import comfy.model_management

        comfy.model_management.throw_exception_if_processing_interrupted()
        self.done, self.total = done, total
        self.bar.update_absolute(done, total)

    def on_step(self, step: int, x0: torch.Tensor) -> None:
        if self.previewer is not None:
            self.bar.update_absolute(self.done, self.total, self.previewer.decode_latent_to_preview_image("JPEG", x0))


NODE_CLASS_MAPPINGS = {
    "DreamActorM2_Sampler": Sampler,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "DreamActorM2_Sampler": "DreamActor-M2 Sampler",
}
