"""Model nodes: the backbone transformer, LoRAs on it, and the video VAE (load, encode the canvas,
decode a latent).
"""

from __future__ import annotations

import logging

from ..dreamactor_core.models.loading import load_transformer, load_vae
from ..dreamactor_core.models.lora import load_lora
from ..dreamactor_core.models.vae import decode_latent, encode_video
from . import comfy_bridge, memory
from .comfy_bridge import CATEGORY_ROOT, DIFFUSION_MODELS, LORAS, VAE, progress_hook

MODEL_TYPE = "DREAMACTOR_MODEL"


class LoadModel:
    DESCRIPTION = (
        "Loads the video diffusion transformer that animates the DreamActor canvas (HunyuanVideo 1.5 "
        "image-to-video). Accepts single .safetensors files with original or ComfyUI key names and "
        "diffusers model folders; the backbone is recognised from the file, and a file of another kind "
        "is refused with a message saying what it is."
    )
    CATEGORY = f"{CATEGORY_ROOT}/loaders"
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The loaded transformer, for LoRA loaders and the DreamActor sampler.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "model_name": (comfy_bridge.choices(DIFFUSION_MODELS), {
                    "tooltip": "A transformer file or diffusers folder in models/diffusion_models.",
                }),
                "precision": (list(comfy_bridge.PRECISIONS), {
                    "default": "auto",
                    "tooltip": "Compute precision. auto: bf16 on GPUs that support it, else fp16, else fp32.",
                }),
            },
            "optional": {
                "weight_storage": (["default", "fp8_e4m3fn"], {
                    "default": "default",
                    "tooltip": "default: as the file stores them (a ComfyUI fp8 'scaled' file stays fp8). "
                               "fp8_e4m3fn stores the weights in 8 bits with a scale per tensor and upcasts "
                               "each layer as it runs: half the memory of bf16, slightly different results.",
                }),
                "offload": (["none", "block"], {
                    "default": "none",
                    "tooltip": "none: ComfyUI's memory management decides: the model loads whole when it "
                               "fits, else (and under --lowvram/--novram) it streams one block at a time. "
                               "block: always stream: weights stay in CPU memory, one transformer block at a "
                               "time moves to the GPU; slower, but leaves the GPU to other models.",
                }),
            },
        }

    def load(self, model_name: str, precision: str = "auto", weight_storage: str = "default",
             offload: str = "none") -> tuple:
        _, dtype = comfy_bridge.device_and_dtype(precision)
        path = comfy_bridge.resolve(DIFFUSION_MODELS, model_name)
        model = load_transformer(path, dtype=dtype, device=memory.offload_device("transformer"),
                                 fp8_weights=True if weight_storage == "fp8_e4m3fn" else None)
        memory.manage(model.transformer, "transformer", model_name, stream=offload == "block")
        return (model,)


log = logging.getLogger(__name__)


class LoadLora:
    DESCRIPTION = (
        "Adds a LoRA (diffusers/peft, kohya/musubi-tuner or ComfyUI key layout) to the model at a "
        "strength; chain several to stack them. The base weights are never changed: the sampler applies "
        "the LoRAs for its run and removes them afterwards, so other branches using the same model "
        "are unaffected."
    )
    CATEGORY = f"{CATEGORY_ROOT}/loaders"
    RETURN_TYPES = (MODEL_TYPE, "STRING")
    RETURN_NAMES = ("model", "report")
    OUTPUT_TOOLTIPS = ("The model with this LoRA added.", "How many LoRA layers matched the model, and which did not.")
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "model": (MODEL_TYPE, {"tooltip": "A model from DreamActor-M2 Load Model (or another LoRA node)."}),
                "lora_name": (comfy_bridge.choices(LORAS), {"tooltip": "A LoRA .safetensors file in models/loras."}),
                "strength": ("FLOAT", {
                    "default": 1.0, "min": -10.0, "max": 10.0, "step": 0.05,
                    "tooltip": "How strongly the LoRA applies: 0 is off, negative inverts it, above 1 exaggerates.",
                }),
            }
        }

    def apply(self, model, lora_name: str, strength: float) -> tuple:
        weights = load_lora(comfy_bridge.resolve(LORAS, lora_name), model)
        report = weights.report()
        log.info(report)
        return (model.with_lora(weights, strength), report)


VAE_TYPE = "DREAMACTOR_VAE"
_TILING = {
    "tile_frames": ("INT", {
        "default": 16, "min": 4, "max": 256, "step": 4,
        "tooltip": "Pixel frames per temporal chunk (a multiple of 4). Smaller uses less memory; for "
                   "HunyuanVideo 1.5 the chunks carry the VAE's causal state, so the result equals the whole clip.",
    }),
    "tile_overlap_frames": ("INT", {
        "default": 4, "min": 0, "max": 128, "step": 4,
        "tooltip": "Pixel frames shared by neighbouring temporal tiles, cross-faded (a multiple of 4). Only for "
                   "VAEs that restart per chunk (HunyuanVideo-I2V, Wan); HunyuanVideo 1.5 needs no overlap and ignores it.",
    }),
    "tile_size": ("INT", {
        "default": 256, "min": 0, "max": 4096, "step": 16,
        "tooltip": "Spatial tile size in pixels; 0 turns spatial tiling off.",
    }),
}


class LoadVAE:
    DESCRIPTION = ("Loads the video VAE of the backbone (HunyuanVideo 1.5) from models/vae: a single "
                   ".safetensors file (original names) or a diffusers folder.")
    CATEGORY = f"{CATEGORY_ROOT}/loaders"
    RETURN_TYPES = (VAE_TYPE,)
    RETURN_NAMES = ("vae",)
    OUTPUT_TOOLTIPS = ("The loaded video VAE.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "vae_name": (comfy_bridge.choices(VAE), {"tooltip": "A VAE file or diffusers folder in models/vae."}),
                "precision": (list(comfy_bridge.PRECISIONS), {
                    "default": "auto", "tooltip": "Compute precision. auto: bf16 where supported, else fp16, else fp32.",
                }),
            }
        }

    def load(self, vae_name: str, precision: str = "auto") -> tuple:
        _, dtype = comfy_bridge.device_and_dtype(precision)
        model = load_vae(comfy_bridge.resolve(VAE, vae_name), dtype=dtype, device=memory.offload_device("vae"))
        memory.manage(model.vae, "vae", vae_name)
        return (model,)


class EncodeCanvas:
    DESCRIPTION = ("Encodes the DreamActor canvas (reference | driving frames, 4k+1 frames) into the latent "
                   "the sampler is conditioned on, in temporal and spatial tiles.")
    CATEGORY = f"{CATEGORY_ROOT}/latent"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("canvas_latent",)
    OUTPUT_TOOLTIPS = ("The canvas latent (raw VAE latent, as core VAE Encode gives): the sampler's condition.",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "vae": (VAE_TYPE, {"tooltip": "The backbone's VAE."}),
                "canvas": ("IMAGE", {"tooltip": "The canvas frames (4k+1 frames, sizes divisible by 16)."}),
                **_TILING,
            }
        }

    def encode(self, vae, canvas, tile_frames=16, tile_overlap_frames=4, tile_size=256) -> tuple:
        latent = encode_video(vae, canvas, tile_frames=tile_frames, tile_overlap_frames=tile_overlap_frames,
                              tile_size=tile_size, progress=progress_hook(1))
        # ComfyUI's LATENT is the raw VAE latent (the model applies its latent format); the core
        # works in the normalised one, so convert here, at the boundary.
        return ({"samples": vae.adapter.denormalize_latent(vae.vae, latent)},)


class DecodeLatent:
    DESCRIPTION = "Decodes a sampled latent into video frames, in temporal and spatial tiles."
    CATEGORY = f"{CATEGORY_ROOT}/latent"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("The decoded frames (the full canvas; crop the generated half afterwards).",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "vae": (VAE_TYPE, {"tooltip": "The backbone's VAE."}),
                "samples": ("LATENT", {"tooltip": "A latent from the DreamActor sampler or any core sampler (raw VAE latent)."}),
                **_TILING,
            }
        }

    def decode(self, vae, samples, tile_frames=16, tile_overlap_frames=4, tile_size=256) -> tuple:
        normalised = vae.adapter.normalize_latent(vae.vae, samples["samples"].float())
        frames = decode_latent(vae, normalised, tile_frames=tile_frames,
                               tile_overlap_frames=tile_overlap_frames, tile_size=tile_size, progress=progress_hook(1))
        return (frames,)


NODE_CLASS_MAPPINGS = {
    "DreamActorM2_LoadModel": LoadModel,
    "DreamActorM2_LoadLora": LoadLora,
    "DreamActorM2_LoadVAE": LoadVAE,
    "DreamActorM2_EncodeCanvas": EncodeCanvas,
    "DreamActorM2_DecodeLatent": DecodeLatent,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "DreamActorM2_LoadModel": "DreamActor-M2 Load Model",
    "DreamActorM2_LoadLora": "DreamActor-M2 Load LoRA",
    "DreamActorM2_LoadVAE": "DreamActor-M2 Load VAE",
    "DreamActorM2_EncodeCanvas": "DreamActor-M2 Encode Canvas",
    "DreamActorM2_DecodeLatent": "DreamActor-M2 Decode Latent",
}
