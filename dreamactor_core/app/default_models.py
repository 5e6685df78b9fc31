"""The model files the shipped workflows and the command line name by default.

The released HunyuanVideo 1.5 files as Comfy-Org repackages them for ComfyUI (the names ComfyUI's
own HunyuanVideo 1.5 templates use, so artists who run those already have them), plus the
DreamActor LoRAs, which nobody publishes: train them with ``python -m dreamactor_core train``.
Names are relative to the ComfyUI models folder, with forward slashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_REPACKAGED = "https://huggingface.co/Comfy-Org/HunyuanVideo_1.5_repackaged/resolve/main/split_files"


@dataclass(frozen=True)
class DefaultModel:
    folder: str  # the ComfyUI models folder
    name: str  # path inside it, forward slashes
    url: str | None  # where to download it; None for files you train yourself

    def path(self, models_dir: str | Path) -> Path:
        return Path(models_dir) / self.folder / self.name


DEFAULT_MODELS: dict[str, DefaultModel] = {
    "transformer": DefaultModel("diffusion_models", "hunyuanvideo1.5_480p_i2v_fp16.safetensors",
                                f"{_REPACKAGED}/diffusion_models/hunyuanvideo1.5_480p_i2v_fp16.safetensors"),
    "vae": DefaultModel("vae", "hunyuanvideo15_vae_fp16.safetensors",
                        f"{_REPACKAGED}/vae/hunyuanvideo15_vae_fp16.safetensors"),
    "text_encoder": DefaultModel("text_encoders", "qwen_2.5_vl_7b_fp8_scaled.safetensors",
                                 f"{_REPACKAGED}/text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors"),
    "glyph_encoder": DefaultModel("text_encoders", "byt5_small_glyphxl_fp16.safetensors",
                                  f"{_REPACKAGED}/text_encoders/byt5_small_glyphxl_fp16.safetensors"),
    "image_encoder": DefaultModel("clip_vision", "sigclip_vision_patch14_384.safetensors",
                                  "https://huggingface.co/Comfy-Org/sigclip_vision_384/resolve/main/"
                                  "sigclip_vision_patch14_384.safetensors"),
    "pose_lora": DefaultModel("loras", "dreamactor_m2/hunyuanvideo15_pose_lora.safetensors", None),
    "rgb_lora": DefaultModel("loras", "dreamactor_m2/hunyuanvideo15_rgb_lora.safetensors", None),
}


def missing_models(models_dir: str | Path, roles: tuple[str, ...] = tuple(DEFAULT_MODELS)) -> list[DefaultModel]:
    """The default model files (of ``roles``) not present under ``models_dir``."""
    return [DEFAULT_MODELS[role] for role in roles if not DEFAULT_MODELS[role].path(models_dir).exists()]
