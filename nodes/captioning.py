"""Captioning nodes: a local Qwen2.5-VL-Instruct describes the driving motion and the reference,
fuses the two into the target-oriented prompt, and judges a finished result (Video-Bench style).
Each node shows the instruction it sends as an editable widget and outputs the exact text sent.
"""

from __future__ import annotations

import dataclasses
import json
import os

import folder_paths

from ..dreamactor_core.app.evaluation import Evaluators, measure_frames
from ..dreamactor_core.conditioning.captioner import (
    FUSE_INSTRUCTION,
    MOTION_INSTRUCTION,
    REFERENCE_INSTRUCTION,
    SKELETON_INSTRUCTION,
    Captioner,
    load_captioner,
)
from ..dreamactor_core.conditioning.captioner_files import FOLDER as LLM
from . import comfy_bridge
from .comfy_bridge import CATEGORY_ROOT, TEXT_ENCODERS
from .conditioning import IMAGE_ENCODER_TYPE, _comfy_tokenizer

CAPTIONER_TYPE = "DREAMACTOR_CAPTIONER"
CATEGORY = f"{CATEGORY_ROOT}/captioning"
_CAPTIONER_INPUT = (CAPTIONER_TYPE, {"tooltip": "From DreamActor-M2 Load Captioner."})
_SENT = "The exact text sent to the model (chat template, instruction, picture/video slots)."


def _choices() -> list[str]:
    """Model folders and .safetensors files in models/LLM, then single files in models/text_encoders
    (shown as 'text_encoders/NAME': only files with vision tower and LM head load)."""
    folders = []
    for root in folder_paths.get_folder_paths(LLM):
        if os.path.isdir(root):
            folders += [entry for entry in sorted(os.listdir(root))
                        if os.path.isfile(os.path.join(root, entry, "config.json"))]
    files = [name.replace("\\", "/") for name in folder_paths.get_filename_list(LLM)
             if name.endswith(".safetensors") and name.replace("\\", "/").split("/")[0] not in folders]
    encoders = [f"{TEXT_ENCODERS}/{name}" for name in comfy_bridge.choices(TEXT_ENCODERS) if name.endswith(".safetensors")]
    return sorted(set(folders + files)) + encoders


def _resolve(name: str) -> str:
    if name.startswith(TEXT_ENCODERS + "/"):
        return comfy_bridge.resolve(TEXT_ENCODERS, name[len(TEXT_ENCODERS) + 1:])
    return comfy_bridge.resolve(LLM, name)


def _with_decoding(captioner: Captioner, max_new_tokens: int, seed: int, temperature: float = 0.0) -> Captioner:
    settings = dataclasses.replace(captioner.settings, max_new_tokens=max_new_tokens, seed=seed, temperature=temperature)
    return Captioner(captioner.model, captioner.processor, captioner.identity, settings)


def _decoding_inputs() -> dict:
    return {
        "max_new_tokens": ("INT", {"default": 64, "min": 1, "max": 1024, "tooltip": "Longest answer, in tokens."}),
        "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF,
                         "tooltip": "Fixes sampling when temperature > 0 (greedy decoding ignores it)."}),
        "temperature": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 2.0, "step": 0.05,
                                  "tooltip": "0: greedy, the same answer every run."}),
    }


class LoadCaptioner:
    DESCRIPTION = (
        "Loads a local Qwen2.5-VL-Instruct for captioning and judging: a model folder in models/LLM "
        "(e.g. Qwen2.5-VL-7B-Instruct or -3B-Instruct), or a single .safetensors file that holds the vision "
        "tower and the LM head (fp8 'scaled' files are dequantised while loading). A text-encoder file "
        "without them is refused with the file that serves. Nothing is downloaded."
    )
    CATEGORY = f"{CATEGORY_ROOT}/loaders"
    RETURN_TYPES = (CAPTIONER_TYPE,)
    RETURN_NAMES = ("captioner",)
    OUTPUT_TOOLTIPS = ("The loaded multimodal model, for the captioning nodes.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "model_name": (_choices(), {"tooltip": "A Qwen2.5-VL-Instruct folder or file in models/LLM, or a "
                                                   "complete Qwen2.5-VL file in models/text_encoders."}),
            "precision": (list(comfy_bridge.PRECISIONS), {
                "default": "auto", "tooltip": "Compute precision. auto: bf16 on GPUs that support it, fp32 otherwise."}),
        }}

    def load(self, model_name: str, precision: str = "auto") -> tuple:
        import comfy.model_management as mm

        device, dtype = comfy_bridge.device_and_dtype(precision)
        mm.unload_all_models()  # ComfyUI's own models make room for a multi-GB captioner
        mm.soft_empty_cache()
        return (load_captioner(_resolve(model_name), tokenizer_dir=_comfy_tokenizer("qwen25_tokenizer"),
                               dtype=dtype, device=device),)


class DescribeMotion:
    DESCRIPTION = (
        "Describes the motion of the driving video with a generic subject ('a person is waving both hands'), "
        "from frames sampled evenly over the clip. Connect the rendered skeletons and turn on 'skeleton' in "
        "pose mode. Deterministic by default."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("motion", "prompt_sent")
    OUTPUT_TOOLTIPS = ("The motion description, for Fuse Prompt (LLM).", _SENT)
    FUNCTION = "describe"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "captioner": _CAPTIONER_INPUT,
            "frames": ("IMAGE", {"tooltip": "The driving video's frames (or its rendered skeletons)."}),
            "fps": ("FLOAT", {"default": 24.0, "min": 0.1, "max": 240.0, "tooltip": "The frames' rate."}),
            "sample_frames": ("INT", {"default": 8, "min": 2, "max": 64, "step": 2,
                                      "tooltip": "Frames shown to the model, spread over the clip."}),
            "skeleton": ("BOOLEAN", {"default": False, "tooltip": "The frames are rendered pose skeletons."}),
            "instruction": ("STRING", {"multiline": True, "default": MOTION_INSTRUCTION,
                                       "tooltip": "What the model is asked. Empty: the built-in one for "
                                                  f"video or skeletons (skeletons: '{SKELETON_INSTRUCTION[:60]}...')."}),
            **_decoding_inputs(),
        }}

    def describe(self, captioner, frames, fps: float, sample_frames: int, skeleton: bool, instruction: str,
                 max_new_tokens: int = 64, seed: int = 0, temperature: float = 0.0) -> tuple:
        if skeleton and instruction.strip() == MOTION_INSTRUCTION:
            instruction = SKELETON_INSTRUCTION
        reply = _with_decoding(captioner, max_new_tokens, seed, temperature).describe_motion(
            frames, fps=fps, count=sample_frames, skeleton=skeleton, instruction=instruction.strip() or None)
        return reply.text, reply.prompt


class DescribeReference:
    DESCRIPTION = ("Describes the reference image's subject and look as a short phrase "
                   "('a gray bird with colorful feathers'). Deterministic by default.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("appearance", "prompt_sent")
    OUTPUT_TOOLTIPS = ("The appearance description, for Fuse Prompt (LLM).", _SENT)
    FUNCTION = "describe"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "captioner": _CAPTIONER_INPUT,
            "reference": ("IMAGE", {"tooltip": "The reference image (its first frame is used)."}),
            "instruction": ("STRING", {"multiline": True, "default": REFERENCE_INSTRUCTION,
                                       "tooltip": "What the model is asked. Empty: the built-in one."}),
            **_decoding_inputs(),
        }}

    def describe(self, captioner, reference, instruction: str, max_new_tokens: int = 64, seed: int = 0,
                 temperature: float = 0.0) -> tuple:
        reply = _with_decoding(captioner, max_new_tokens, seed, temperature).describe_reference(
            reference, instruction=instruction.strip() or None)
        return reply.text, reply.prompt


class FusePromptLLM:
    DESCRIPTION = (
        "Fuses the motion and the appearance descriptions into the target-oriented prompt with the model as "
        "an LLM, the paper's way ('a person is waving both hands' + 'a gray bird with colorful feathers' -> "
        "'a gray bird with colorful feathers is waving its wings'), with few-shot examples. Without a model, "
        "use DreamActor-M2 Target-Oriented Prompt (template fusion)."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("prompt", "prompt_sent")
    OUTPUT_TOOLTIPS = ("The target-oriented prompt, for DreamActor-M2 Text Encode.", _SENT)
    FUNCTION = "fuse"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "captioner": _CAPTIONER_INPUT,
            "motion": ("STRING", {"multiline": True, "default": "a person is dancing",
                                  "tooltip": "The motion with a generic subject (from Describe Motion)."}),
            "appearance": ("STRING", {"multiline": True, "default": "",
                                      "tooltip": "The reference's subject and look (from Describe Reference)."}),
            "instruction": ("STRING", {"multiline": True, "default": FUSE_INSTRUCTION,
                                       "tooltip": "The system message. Empty: the built-in one."}),
            **_decoding_inputs(),
        }}

    def fuse(self, captioner, motion: str, appearance: str, instruction: str, max_new_tokens: int = 64,
             seed: int = 0, temperature: float = 0.0) -> tuple:
        reply = _with_decoding(captioner, max_new_tokens, seed, temperature).fuse(
            motion, appearance, instruction=instruction.strip() or None)
        return reply.text, reply.prompt


class ScoreResult:
    DESCRIPTION = (
        "Scores one finished animation: temporal flicker and motion smoothness always; SigLIP similarity of "
        "each frame to the reference with an image encoder; the four Video-Bench qualities 1-5 (imaging "
        "quality, motion smoothness, temporal consistency, appearance consistency) with a captioner as judge. "
        "An unreadable judge answer is asked again once, then reported, never guessed."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING", "FLOAT")
    RETURN_NAMES = ("report", "judge_mean")
    OUTPUT_TOOLTIPS = ("Every measure, skipped measure and judge answer, as JSON.",
                       "The mean of the four judge scores (1-5); -1 when there is no judge or an answer was unreadable.")
    FUNCTION = "score"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "reference": ("IMAGE", {"tooltip": "The reference image."}),
            "result": ("IMAGE", {"tooltip": "The animation's frames."}),
            "fps": ("FLOAT", {"default": 24.0, "min": 0.1, "max": 240.0, "tooltip": "The animation's frame rate."}),
        }, "optional": {
            "captioner": (CAPTIONER_TYPE, {"tooltip": "A Qwen2.5-VL-Instruct as judge (Load Captioner)."}),
            "image_encoder": (IMAGE_ENCODER_TYPE, {"tooltip": "SigLIP, for the appearance similarity."}),
        }}

    def score(self, reference, result, fps: float, captioner=None, image_encoder=None) -> tuple:
        evaluators = Evaluators(image_encoder=image_encoder, judge=captioner)
        if captioner is None:
            evaluators.skipped["judge"] = "no captioner connected"
        if image_encoder is None:
            evaluators.skipped["siglip_similarity"] = "no image encoder connected"
        evaluators.skipped["pose_agreement"] = "use the evaluate command (needs the driving clip's poses)"
        entry = measure_frames(reference[0], None, result, fps, evaluators)
        return json.dumps(entry, indent=2), float(entry["measures"].get("judge_mean", -1.0))


NODE_CLASS_MAPPINGS = {
    "DreamActorM2_LoadCaptioner": LoadCaptioner,
    "DreamActorM2_DescribeMotion": DescribeMotion,
    "DreamActorM2_DescribeReference": DescribeReference,
    "DreamActorM2_FusePromptLLM": FusePromptLLM,
    "DreamActorM2_ScoreResult": ScoreResult,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "DreamActorM2_LoadCaptioner": "DreamActor-M2 Load Captioner",
    "DreamActorM2_DescribeMotion": "DreamActor-M2 Describe Motion",
    "DreamActorM2_DescribeReference": "DreamActor-M2 Describe Reference",
    "DreamActorM2_FusePromptLLM": "DreamActor-M2 Fuse Prompt (LLM)",
    "DreamActorM2_ScoreResult": "DreamActor-M2 Score Result",
}
