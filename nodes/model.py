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
            }
        }

    def load(self, model_name: str, precision: str = "auto") -> tuple:
        device, dtype = model_files.device_and_dtype(precision)
        return (load_transformer(model_files.resolve(DIFFUSION_MODELS, model_name), dtype=dtype, device=device),)


NODE_CLASS_MAPPINGS = {"DreamActorM2_LoadModel": LoadModel}
NODE_DISPLAY_NAME_MAPPINGS = {"DreamActorM2_LoadModel": "DreamActor-M2 Load Model"}
