"""Node: load a DreamActor backbone transformer from ComfyUI's diffusion_models folder."""

from __future__ import annotations

from ..dreamactor_core.model_loading import load_transformer
from . import model_files
from .model_folders import DIFFUSION_MODELS
from .registry import CATEGORY_ROOT

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
                "model_name": (model_files.choices(DIFFUSION_MODELS), {
                    "tooltip": "A transformer file or diffusers folder in models/diffusion_models.",
                }),
                "precision": (list(model_files.PRECISIONS), {
                    "default": "auto",
                    "tooltip": "Compute precision. auto: bf16 on GPUs that support it, fp32 otherwise.",
                }),
            },
            "optional": {
                "weight_storage": (["default", "fp8_e4m3fn"], {
                    "default": "default",
                    "tooltip": "fp8_e4m3fn stores the weights in 8 bits and upcasts each layer as it runs: "
                               "half the memory of bf16, slightly different results.",
                }),
                "offload": (["none", "block"], {
                    "default": "none",
                    "tooltip": "block keeps the weights in CPU memory and moves one transformer block at a "
                               "time to the GPU: slower, but a 480p canvas fits a 24 GB GPU.",
                }),
            },
        }

    def load(self, model_name: str, precision: str = "auto", weight_storage: str = "default",
             offload: str = "none") -> tuple:
        device, dtype = model_files.device_and_dtype(precision)
        path = model_files.resolve(DIFFUSION_MODELS, model_name)
        return (load_transformer(path, dtype=dtype, device=device, fp8_weights=weight_storage == "fp8_e4m3fn",
                                 block_offload=offload == "block"),)


NODE_CLASS_MAPPINGS = {"DreamActorM2_LoadModel": LoadModel}
NODE_DISPLAY_NAME_MAPPINGS = {"DreamActorM2_LoadModel": "DreamActor-M2 Load Model"}
