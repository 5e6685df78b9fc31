"""The native path: the DreamActor canvas as CONDITIONING for ComfyUI's own image-to-video models, so
core loaders, samplers, LoRA loader, caches and memory management do the rest (the pattern of core's
``HunyuanVideo15ImageToVideo`` and ``WanImageToVideo``). The rules live in
``dreamactor_core.canvas.native``; this node reads ComfyUI's VAE and model and sets the values.
"""

from __future__ import annotations

from ..dreamactor_core.canvas import native
from .canvas import CANVAS_TYPE
from .comfy_bridge import CATEGORY_ROOT


def _vae_family(vae) -> native.NativeFamily:
    """The family of a core VAE, from its latent channels and compression ratios."""
    ratio = getattr(vae, "downscale_ratio", None)
    if isinstance(ratio, (tuple, list)) and callable(ratio[0]):
        spatial, temporal = int(ratio[-1]), round(8192 / max(1, ratio[0](8192)))
    else:  # an image VAE: one int, no time axis
        spatial, temporal = int(ratio or 0), None
    architecture = type(getattr(vae, "first_stage_model", vae)).__name__
    return native.family_for_vae(int(getattr(vae, "latent_channels", 0)), spatial, temporal, architecture)


def _check_model(model, family: native.NativeFamily) -> None:
    base = model.model
    diffusion = getattr(base, "diffusion_model", None)
    weight = getattr(getattr(diffusion, "img_in", None), "proj", None) or getattr(diffusion, "patch_embedding", None)
    channels = None if weight is None else int(weight.weight.shape[1])
    native.check_model(family, type(base).__name__, channels)


class CanvasToVideo:
    DESCRIPTION = (
        "Puts the DreamActor canvas into the conditioning of ComfyUI's own image-to-video model, for core "
        "KSampler / SamplerCustomAdvanced: the canvas encoded by the VAE (its black halves encoded, as in the "
        "paper) over all frames, and the canvas mask (reference half given on frame 0, motion half on every "
        "frame). Returns an empty latent of the canvas's size. Works with HunyuanVideo 1.5 image-to-video "
        "and Wan 2.1 / 2.2 14B image-to-video (their concat_cond takes a canvas over all frames and a mask); "
        "not with Wan 2.2 5B or HunyuanVideo 1.0, which take no such channels. Decode the sampled latent with "
        "VAE Decode and take the animation out with DreamActor-M2 Extract Result."
    )
    CATEGORY = f"{CATEGORY_ROOT}/conditioning"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    OUTPUT_TOOLTIPS = (
        "The positive conditioning with the canvas and its mask (and the reference's CLIP vision output).",
        "The negative conditioning with the same canvas and mask.",
        "An empty latent of the canvas's latent size, for the sampler.",
    )
    FUNCTION = "condition"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "positive": ("CONDITIONING", {"tooltip": "The encoded target-oriented prompt."}),
                "negative": ("CONDITIONING", {"tooltip": "The encoded negative prompt."}),
                "vae": ("VAE", {"tooltip": "The video VAE of the diffusion model (HunyuanVideo 1.5 or Wan 2.1)."}),
                "canvas": ("IMAGE", {"tooltip": "The canvas from DreamActor-M2 Build Canvas."}),
                "canvas_info": (CANVAS_TYPE, {"tooltip": "The canvas description from the same Build Canvas."}),
            },
            "optional": {
                "clip_vision_output": ("CLIP_VISION_OUTPUT", {
                    "tooltip": "The reference picture encoded by CLIP Vision Encode (SigLIP for HunyuanVideo 1.5)."}),
                "model": ("MODEL", {"tooltip": "Optional: the diffusion model, only checked (same family as the "
                                               "VAE, image-to-video), so a mismatch is named here, not deep in "
                                               "the sampler."}),
            },
        }

    def condition(self, positive, negative, vae, canvas, canvas_info, clip_vision_output=None, model=None) -> tuple:
        import comfy.model_management
        import node_helpers
        import torch

        family = _vae_family(vae)
        if model is not None:
            _check_model(model, family)
        native.check_canvas(canvas, canvas_info, family)
        device = comfy.model_management.intermediate_device()
        values = {"concat_latent_image": vae.encode(canvas[:, :, :, :3]).to(device),
                  "concat_mask": native.concat_mask(canvas_info, family).to(device)}
        if clip_vision_output is not None:
            values["clip_vision_output"] = clip_vision_output
        positive = node_helpers.conditioning_set_values(positive, values)
        negative = node_helpers.conditioning_set_values(negative, values)
        latent = torch.zeros(native.latent_shape(canvas_info, family), device=device)
        return (positive, negative, {"samples": latent})


NODE_CLASS_MAPPINGS = {"DreamActorM2_CanvasToVideo": CanvasToVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"DreamActorM2_CanvasToVideo": "DreamActor-M2 Canvas To Video"}
