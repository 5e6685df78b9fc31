"""The ComfyUI model folders the pack reads.

Diffusion models, VAEs, text encoders and LoRAs live in ComfyUI's standard folders, so artists use
the files they already have. Pose-estimator weights get a folder of their own, registered here:
``models/dreamactor_pose/`` (DWPose ONNX files, also accepted in comfyui_controlnet_aux's
``yzd-v/DWPose/`` sub-layout, and OpenPose annotator weights).
"""

from __future__ import annotations

import os

import folder_paths

POSE_FOLDER = "dreamactor_pose"
DIFFUSION_MODELS = "diffusion_models"
VAE = "vae"
TEXT_ENCODERS = "text_encoders"
LORAS = "loras"


def register() -> None:
    """Register the pose folder under ComfyUI's models directory (idempotent)."""
    default = os.path.join(folder_paths.models_dir, POSE_FOLDER)
    folder_paths.add_model_folder_path(POSE_FOLDER, default)
    extensions = folder_paths.folder_names_and_paths[POSE_FOLDER][1]
    extensions.update({".onnx", ".pth", ".safetensors"})
