"""Nodes: load the backbone's video VAE, encode the canvas to a LATENT, decode a LATENT to frames."""

from __future__ import annotations

from ..dreamactor_core.model_loading import load_vae
from ..dreamactor_core.vae import decode_latent, encode_video
from . import model_files
from .comfy_bridge import progress_hook
from .model_folders import VAE
from .registry import CATEGORY_ROOT

VAE_TYPE = "DREAMACTOR_VAE"

_TILING = {
    "tile_frames": ("INT", {
        "default": 16, "min": 4, "max": 256, "step": 4,
        "tooltip": "Pixel frames per temporal tile (a multiple of 4). Smaller uses less memory.",
    }),
    "tile_overlap_frames": ("INT", {
        "default": 4, "min": 0, "max": 128, "step": 4,
        "tooltip": "Pixel frames shared by neighbouring temporal tiles, cross-faded (a multiple of 4).",
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
                "vae_name": (model_files.choices(VAE), {"tooltip": "A VAE file or diffusers folder in models/vae."}),
                "precision": (list(model_files.PRECISIONS), {
                    "default": "auto", "tooltip": "Compute precision. auto: bf16 where supported, else fp32.",
                }),
            }
        }

    def load(self, vae_name: str, precision: str = "auto") -> tuple:
        device, dtype = model_files.device_and_dtype(precision)
        return (load_vae(model_files.resolve(VAE, vae_name), dtype=dtype, device=device),)


class EncodeCanvas:
    DESCRIPTION = ("Encodes the DreamActor canvas (reference | driving frames, 4k+1 frames) into the latent "
                   "the sampler is conditioned on, in temporal and spatial tiles.")
    CATEGORY = f"{CATEGORY_ROOT}/latent"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("canvas_latent",)
    OUTPUT_TOOLTIPS = ("The canvas latent: the sampler's condition.",)
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
        return ({"samples": latent},)


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
                "samples": ("LATENT", {"tooltip": "A latent from the DreamActor sampler."}),
                **_TILING,
            }
        }

    def decode(self, vae, samples, tile_frames=16, tile_overlap_frames=4, tile_size=256) -> tuple:
        frames = decode_latent(vae, samples["samples"], tile_frames=tile_frames,
                               tile_overlap_frames=tile_overlap_frames, tile_size=tile_size, progress=progress_hook(1))
        return (frames,)


NODE_CLASS_MAPPINGS = {
    "DreamActorM2_LoadVAE": LoadVAE,
    "DreamActorM2_EncodeCanvas": EncodeCanvas,
    "DreamActorM2_DecodeLatent": DecodeLatent,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "DreamActorM2_LoadVAE": "DreamActor-M2 Load VAE",
    "DreamActorM2_EncodeCanvas": "DreamActor-M2 Encode Canvas",
    "DreamActorM2_DecodeLatent": "DreamActor-M2 Decode Latent",
}
