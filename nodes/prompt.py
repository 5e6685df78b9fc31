"""Node: target-oriented prompt fusion (motion description + appearance description)."""

from __future__ import annotations

from ..dreamactor_core.prompt import DEFAULT_TEMPLATE, fuse_prompt
from .registry import CATEGORY_ROOT


class TargetOrientedPrompt:
    DESCRIPTION = (
        "Fuses a description of the driving motion ('a person is waving both hands') with a "
        "description of the reference ('a gray bird with colorful feathers') into one "
        "target-oriented prompt ('a gray bird with colorful feathers is waving both hands'), "
        "as DreamActor-M2 does with an LLM."
    )
    CATEGORY = f"{CATEGORY_ROOT}/text"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("prompt",)
    OUTPUT_TOOLTIPS = ("The fused prompt, ready for the text encoder.",)
    FUNCTION = "fuse"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "motion": ("STRING", {
                    "multiline": True, "default": "a person is dancing",
                    "tooltip": "What the driving video shows happening, with a generic subject "
                               "('a person is waving both hands').",
                }),
                "appearance": ("STRING", {
                    "multiline": True, "default": "",
                    "tooltip": "What the reference image shows ('a gray bird with colorful feathers').",
                }),
            },
            "optional": {
                "template": ("STRING", {
                    "default": DEFAULT_TEMPLATE,
                    "tooltip": "How to join the parts: {appearance}, {action} (the motion without "
                               "its subject) and {motion} (the motion as written).",
                }),
            },
        }

    def fuse(self, motion: str, appearance: str, template: str = DEFAULT_TEMPLATE) -> tuple[str]:
        return (fuse_prompt(motion, appearance, template),)


NODE_CLASS_MAPPINGS = {"DreamActorM2_TargetOrientedPrompt": TargetOrientedPrompt}
NODE_DISPLAY_NAME_MAPPINGS = {"DreamActorM2_TargetOrientedPrompt": "DreamActor-M2 Target-Oriented Prompt"}
