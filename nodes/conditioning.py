"""Conditioning nodes: the target-oriented prompt, the text encoders, the SigLIP reference-image
encoder and the converter from ComfyUI's own CONDITIONING.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..dreamactor_core.conditioning.from_comfy import from_comfy_conditioning
from ..dreamactor_core.conditioning.image_encoder import load_image_encoder, with_reference_embedding
from ..dreamactor_core.conditioning.prompt import DEFAULT_TEMPLATE, fuse_prompt
from ..dreamactor_core.conditioning.text_encoder import load_text_encoder
from . import comfy_bridge, memory
from .comfy_bridge import CATEGORY_ROOT, TEXT_ENCODERS

CONDITIONING_TYPE = "DREAMACTOR_CONDITIONING"
TEXT_ENCODER_TYPE = "DREAMACTOR_TEXT_ENCODER"
IMAGE_ENCODER_TYPE = "DREAMACTOR_IMAGE_ENCODER"
CLIP_VISION = "clip_vision"
NONE = "none"


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
                    "tooltip": "How to join the parts: {appearance} and {action} (the motion without "
                               "its subject) or {motion} (the motion as written); a template missing "
                               "either description is refused.",
                }),
            },
        }

    def fuse(self, motion: str, appearance: str, template: str = DEFAULT_TEMPLATE) -> tuple[str]:
        return (fuse_prompt(motion, appearance, template),)




def _pipeline_folders() -> list[str]:
    """Diffusers HunyuanVideo 1.5 pipeline folders (with text_encoder/) in text_encoders/."""
    import folder_paths

    return sorted({entry for root in folder_paths.get_folder_paths(TEXT_ENCODERS) if os.path.isdir(root)
                   for entry in os.listdir(root) if os.path.isdir(os.path.join(root, entry, "text_encoder"))})


def _single_files_and_model_folders() -> list[str]:
    """text_encoders/ choices, without the files inside pipeline folders."""
    pipelines = set(_pipeline_folders())
    return [name for name in comfy_bridge.choices(TEXT_ENCODERS)
            if name.replace("\\", "/").split("/")[0] not in pipelines]


def _comfy_tokenizer(name: str) -> Path:
    """A tokenizer folder ComfyUI itself ships (``comfy/text_encoders/<name>``): the fallback for
    single files without one beside them."""
    import comfy.text_encoders

    return Path(list(comfy.text_encoders.__path__)[0]).resolve() / name


class LoadTextEncoder:
    DESCRIPTION = (
        "Loads HunyuanVideo 1.5's text encoders: Qwen2.5-VL (e.g. qwen_2.5_vl_7b_fp8_scaled.safetensors) "
        "and, for text drawn in the video, the ByT5 glyph encoder (byt5_small_glyphxl_fp16.safetensors), "
        "both from models/text_encoders. A diffusers pipeline folder there brings both. Tokenizers come "
        "from a 'tokenizer' folder beside the file or from ComfyUI's own copy; nothing is downloaded."
    )
    CATEGORY = f"{CATEGORY_ROOT}/loaders"
    RETURN_TYPES = (TEXT_ENCODER_TYPE,)
    RETURN_NAMES = ("text_encoder",)
    OUTPUT_TOOLTIPS = ("The loaded text encoders, for DreamActor-M2 Text Encode.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "text_encoder_name": (sorted(_pipeline_folders() + _single_files_and_model_folders()), {
                    "tooltip": "The Qwen2.5-VL file, or a diffusers HunyuanVideo 1.5 folder, in models/text_encoders.",
                }),
                "glyph_encoder_name": ([NONE] + _single_files_and_model_folders(), {
                    "default": NONE,
                    "tooltip": "The ByT5 glyph encoder file; needed only for quoted text to render in the video. "
                               "none: a diffusers folder uses its own, a single file encodes no glyphs.",
                }),
                "precision": (list(comfy_bridge.PRECISIONS), {
                    "default": "auto",
                    "tooltip": "Compute precision. auto: bf16 on GPUs that support it, else fp16, else fp32; on the CPU fp32.",
                }),
            },
        }

    def load(self, text_encoder_name: str, glyph_encoder_name: str = NONE, precision: str = "auto") -> tuple:
        _, dtype = comfy_bridge.device_and_dtype(precision)
        glyph = None if glyph_encoder_name == NONE else comfy_bridge.resolve(TEXT_ENCODERS, glyph_encoder_name)
        encoder = load_text_encoder(comfy_bridge.resolve(TEXT_ENCODERS, text_encoder_name), glyph,
                                    tokenizer_dir=_comfy_tokenizer("qwen25_tokenizer"),
                                    glyph_tokenizer_dir=_comfy_tokenizer("byt5_tokenizer"),
                                    dtype=dtype, device=memory.offload_device("text_encoder"),
                                    compute_device=memory.load_device("text_encoder"))
        memory.manage(encoder.mllm, "text_encoder", text_encoder_name)
        if encoder.glyph is not None:
            memory.manage(encoder.glyph, "text_encoder", glyph_encoder_name if glyph else f"{text_encoder_name} (glyph)")
        return (encoder,)


class TextEncode:
    DESCRIPTION = (
        "Encodes the target-oriented prompt (and a negative prompt for guidance) into HunyuanVideo 1.5 "
        "text conditioning, exactly as diffusers' image-to-video pipeline does. Quoted text "
        "('a sign that says \"OPEN\"') goes to the glyph encoder. Results are cached per prompt."
    )
    CATEGORY = f"{CATEGORY_ROOT}/text"
    RETURN_TYPES = (CONDITIONING_TYPE, CONDITIONING_TYPE)
    RETURN_NAMES = ("positive", "negative")
    OUTPUT_TOOLTIPS = ("The encoded prompt, for the DreamActor sampler.",
                       "The encoded negative prompt (empty: the unconditional branch), for cfg > 1.")
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "text_encoder": (TEXT_ENCODER_TYPE, {"tooltip": "From DreamActor-M2 Load Text Encoder."}),
                "prompt": ("STRING", {"multiline": True, "default": "",
                                      "tooltip": "The target-oriented prompt (e.g. from DreamActor-M2 Target-Oriented "
                                                 "Prompt): what the reference subject does."}),
            },
            "optional": {
                "negative_prompt": ("STRING", {"multiline": True, "default": "",
                                               "tooltip": "What to steer away from; empty is the pipeline's default."}),
            },
        }

    def encode(self, text_encoder, prompt: str, negative_prompt: str = "") -> tuple:
        return text_encoder.encode_pair(prompt, negative_prompt)


class LoadImageEncoder:
    DESCRIPTION = (
        "Loads the SigLIP vision encoder HunyuanVideo 1.5 image-to-video uses for the reference image "
        "(e.g. sigclip_vision_patch14_384.safetensors in models/clip_vision, or a diffusers folder)."
    )
    CATEGORY = f"{CATEGORY_ROOT}/loaders"
    RETURN_TYPES = (IMAGE_ENCODER_TYPE,)
    RETURN_NAMES = ("image_encoder",)
    OUTPUT_TOOLTIPS = ("The loaded image encoder, for DreamActor-M2 Reference Image Embed.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image_encoder_name": (comfy_bridge.choices(CLIP_VISION), {
                    "tooltip": "A SigLIP file or folder in models/clip_vision.",
                }),
                "precision": (list(comfy_bridge.PRECISIONS), {
                    "default": "auto",
                    "tooltip": "Compute precision. auto: bf16 on GPUs that support it, else fp16, else fp32; on the CPU fp32.",
                }),
            },
        }

    def load(self, image_encoder_name: str, precision: str = "auto") -> tuple:
        _, dtype = comfy_bridge.device_and_dtype(precision)
        encoder = load_image_encoder(comfy_bridge.resolve(CLIP_VISION, image_encoder_name), dtype=dtype,
                                     device=memory.offload_device("image_encoder"),
                                     compute_device=memory.load_device("image_encoder"))
        memory.manage(encoder.model, "image_encoder", image_encoder_name)
        return (encoder,)


class ReferenceImageEmbed:
    DESCRIPTION = (
        "Adds the reference image's SigLIP embedding to both conditionings, as diffusers' image-to-video "
        "pipeline gives it to the conditional and the unconditional branch alike."
    )
    CATEGORY = f"{CATEGORY_ROOT}/text"
    RETURN_TYPES = (CONDITIONING_TYPE, CONDITIONING_TYPE)
    RETURN_NAMES = ("positive", "negative")
    OUTPUT_TOOLTIPS = ("The positive conditioning with the reference embedding.",
                       "The negative conditioning with the same reference embedding.")
    FUNCTION = "embed"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "positive": (CONDITIONING_TYPE, {"tooltip": "From DreamActor-M2 Text Encode."}),
                "negative": (CONDITIONING_TYPE, {"tooltip": "From DreamActor-M2 Text Encode."}),
                "image_encoder": (IMAGE_ENCODER_TYPE, {"tooltip": "From DreamActor-M2 Load Image Encoder."}),
                "reference": ("IMAGE", {"tooltip": "The reference image (its first frame is used)."}),
            },
        }

    def embed(self, positive, negative, image_encoder, reference) -> tuple:
        return with_reference_embedding(image_encoder, reference, positive, negative)


class FromComfyConditioning:
    DESCRIPTION = (
        "Converts ComfyUI's own HunyuanVideo 1.5 text encoding (CLIP Text Encode with a hunyuan_video_15 "
        "text encoder) into DreamActor conditioning, optionally with a CLIP Vision Encode output of the "
        "reference (SigLIP). ComfyUI's template words its system message slightly differently from "
        "diffusers', so values are close to, not identical with, DreamActor-M2 Text Encode."
    )
    CATEGORY = f"{CATEGORY_ROOT}/text"
    RETURN_TYPES = (CONDITIONING_TYPE, CONDITIONING_TYPE)
    RETURN_NAMES = ("positive", "negative")
    OUTPUT_TOOLTIPS = ("The converted positive conditioning.",
                       "The converted negative conditioning (with the positive's reference embedding).")
    FUNCTION = "convert"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "positive": ("CONDITIONING", {"tooltip": "ComfyUI CONDITIONING from a HunyuanVideo 1.5 text encoder."}),
                "negative": ("CONDITIONING", {"tooltip": "ComfyUI CONDITIONING of the negative (or empty) prompt."}),
            },
            "optional": {
                "clip_vision_output": ("CLIP_VISION_OUTPUT", {
                    "tooltip": "CLIP Vision Encode of the reference with a SigLIP model (crop: none keeps the "
                               "whole image, as diffusers does)."}),
            },
        }

    def convert(self, positive, negative, clip_vision_output=None) -> tuple:
        converted = from_comfy_conditioning(positive)
        if clip_vision_output is not None:
            converted = converted.with_image_embeds(clip_vision_output.last_hidden_state)
        return converted, converted.unconditional_like(from_comfy_conditioning(negative))


NODE_CLASS_MAPPINGS = {
    "DreamActorM2_TargetOrientedPrompt": TargetOrientedPrompt,
    "DreamActorM2_LoadTextEncoder": LoadTextEncoder,
    "DreamActorM2_TextEncode": TextEncode,
    "DreamActorM2_LoadImageEncoder": LoadImageEncoder,
    "DreamActorM2_ReferenceImageEmbed": ReferenceImageEmbed,
    "DreamActorM2_FromComfyConditioning": FromComfyConditioning,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "DreamActorM2_TargetOrientedPrompt": "DreamActor-M2 Target-Oriented Prompt",
    "DreamActorM2_LoadTextEncoder": "DreamActor-M2 Load Text Encoder",
    "DreamActorM2_TextEncode": "DreamActor-M2 Text Encode",
    "DreamActorM2_LoadImageEncoder": "DreamActor-M2 Load Image Encoder",
    "DreamActorM2_ReferenceImageEmbed": "DreamActor-M2 Reference Image Embed",
    "DreamActorM2_FromComfyConditioning": "DreamActor-M2 From ComfyUI Conditioning",
}
