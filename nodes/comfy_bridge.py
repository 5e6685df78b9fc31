"""The few places where the pack's nodes touch ComfyUI itself: node naming, model folders and file
choices, device and precision, progress bars and interruption.

Everything else in ``nodes/`` is plain type conversion and calls into ``dreamactor_core``.
"""

from __future__ import annotations

import os

import folder_paths
import torch

from ..dreamactor_core.errors import MissingModelFile
from ..dreamactor_core.models.precision import choose_dtype
from ..dreamactor_core.progress import ProgressHook

NODE_PREFIX = "DreamActorM2_"
CATEGORY_ROOT = "DreamActor-M2"
POSE_FOLDER = "dreamactor_pose"
DIFFUSION_MODELS = "diffusion_models"
VAE = "vae"
TEXT_ENCODERS = "text_encoders"
LORAS = "loras"
LLM = "LLM"


def register() -> None:
    """Register the pose folder under ComfyUI's models directory (idempotent)."""
    default = os.path.join(folder_paths.models_dir, POSE_FOLDER)
    folder_paths.add_model_folder_path(POSE_FOLDER, default)
    extensions = folder_paths.folder_names_and_paths[POSE_FOLDER][1]
    extensions.update({".onnx", ".pth", ".safetensors"})
    # models/LLM: the folder ComfyUI captioning packs keep multimodal LLMs in (the captioner's model).
    folder_paths.add_model_folder_path(LLM, os.path.join(folder_paths.models_dir, LLM))
    folder_paths.folder_names_and_paths[LLM][1].update({".safetensors"})


PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def _diffusers_folders(folder: str) -> list[str]:
    found = []
    for root in folder_paths.get_folder_paths(folder):
        if os.path.isdir(root):
            for entry in sorted(os.listdir(root)):
                if os.path.isfile(os.path.join(root, entry, "config.json")) or os.path.isfile(
                        os.path.join(root, entry, "transformer", "config.json")):
                    found.append(entry)
    return found


def choices(folder: str) -> list[str]:
    """Single .safetensors files and diffusers folders in a ComfyUI models folder, with forward
    slashes on every OS (ComfyUI lists subfolders with backslashes on Windows), so a workflow saved
    on one system validates on another."""
    folders = _diffusers_folders(folder)
    files = [name.replace("\\", "/") for name in folder_paths.get_filename_list(folder) if name.endswith(".safetensors")]
    files = [name for name in files if name.split("/")[0] not in folders]
    return sorted(set(files + folders))


def resolve(folder: str, name: str) -> str:
    """The full path of a choice from ``choices``; a clear error when it is gone."""
    path = folder_paths.get_full_path(folder, name)
    if path:
        return path
    for root in folder_paths.get_folder_paths(folder):
        candidate = os.path.join(root, name)
        if os.path.isdir(candidate):
            return candidate
    raise MissingModelFile(name, folder)


def device_and_dtype(precision: str) -> tuple[torch.device, torch.dtype]:
    """ComfyUI's compute device, and the dtype by the core's rule (``models.precision.choose_dtype``:
    'auto' is bf16 where supported, else fp16, else fp32) with ComfyUI's answers for this device
    (which know its --force-fp16/--force-fp32 flags)."""
    import comfy.model_management as mm

    device = mm.get_torch_device()
    return device, choose_dtype(precision, device, bf16_supported=mm.should_use_bf16(device),
                                fp16_supported=mm.should_use_fp16(device))


def progress_hook(total: int) -> ProgressHook:
    """A core progress hook that drives a ComfyUI progress bar and honours the Cancel button.

    ComfyUI's interrupt is an exception raised from the hook, so the engine unwinds through its
    own ``finally`` blocks and leaves every model as it found it.
    """
    import comfy.model_management
    import comfy.utils

    bar = comfy.utils.ProgressBar(total)

    def hook(done: int, hook_total: int) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, hook_total)

    return hook
