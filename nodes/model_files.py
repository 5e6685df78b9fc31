"""Model file lists and device/precision choice for the engine's loader nodes.

Lists the .safetensors files ComfyUI knows in a models folder plus diffusers model folders (a
subfolder with config.json) found there, and resolves a choice back to a path. Device and dtype
come from ComfyUI's model management so the pack follows the user's launch flags.
"""

from __future__ import annotations

import os

import folder_paths
import torch

from ..dreamactor_core.errors import MissingModelFile

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


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
    """ComfyUI's compute device, and the dtype: 'auto' is bf16 where the device supports it, else fp32."""
    import comfy.model_management as mm

    device = mm.get_torch_device()
    if precision != "auto":
        return device, _DTYPES[precision]
    return device, torch.bfloat16 if mm.should_use_bf16(device) else torch.float32
