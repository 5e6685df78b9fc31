"""Node: add a LoRA to a DreamActor model (chainable; applied only while sampling)."""

from __future__ import annotations

import logging

from ..dreamactor_core.lora import load_lora
from . import model_files
from .model import MODEL_TYPE
from .model_folders import LORAS
from .registry import CATEGORY_ROOT

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
                "lora_name": (model_files.choices(LORAS), {"tooltip": "A LoRA .safetensors file in models/loras."}),
                "strength": ("FLOAT", {
                    "default": 1.0, "min": -10.0, "max": 10.0, "step": 0.05,
                    "tooltip": "How strongly the LoRA applies: 0 is off, negative inverts it, above 1 exaggerates.",
                }),
            }
        }

    def apply(self, model, lora_name: str, strength: float) -> tuple:
        weights = load_lora(model_files.resolve(LORAS, lora_name), model)
        report = weights.report()
        log.info(report)
        return (model.with_lora(weights, strength), report)


NODE_CLASS_MAPPINGS = {"DreamActorM2_LoadLora": LoadLora}
NODE_DISPLAY_NAME_MAPPINGS = {"DreamActorM2_LoadLora": "DreamActor-M2 Load LoRA"}
