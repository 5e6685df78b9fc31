"""Tiny random-weight models of the real diffusers classes, written as real checkpoint files.

Tests, the README's demo command and the shipped-workflow tests need every loading path (diffusers
folder, original single file, ComfyUI single file, LoRA files) without multi-gigabyte downloads.
The weights are seeded, so the same call always writes the same bytes. HunyuanVideo 1.5 is slow
per token, so the tiny canvas (9 frames x 64 x 128) gives 3 x 4 x 8 = 96 transformer tokens on
both backbones (16x VAE and patch 1, or 8x VAE and patch 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..models.backbones import get_adapter

TINY_TRANSFORMER_CONFIGS: dict[str, dict[str, Any]] = {
    "hunyuan_video_15": dict(
        in_channels=65, out_channels=32, num_attention_heads=2, attention_head_dim=16, num_layers=2,
        num_refiner_layers=1, mlp_ratio=2.0, text_embed_dim=32, text_embed_2_dim=16, image_embed_dim=16,
        rope_axes_dim=(4, 6, 6),
    ),
    "hunyuan_video_i2v": dict(
        in_channels=33, out_channels=16, num_attention_heads=2, attention_head_dim=16, num_layers=1,
        num_single_layers=1, num_refiner_layers=1, mlp_ratio=2.0, patch_size=2, text_embed_dim=32,
        pooled_projection_dim=16, rope_axes_dim=(4, 6, 6), image_condition_type="latent_concat", guidance_embeds=False,
    ),
    "wan_i2v": dict(
        patch_size=(1, 2, 2), num_attention_heads=1, attention_head_dim=128, in_channels=36, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=64, num_layers=2,
    ),
}
TINY_VAE_CONFIGS: dict[str, dict[str, Any]] = {
    "hunyuan_video_15": dict(latent_channels=32, block_out_channels=(8, 8, 16, 32, 64), layers_per_block=1),
    "hunyuan_video_i2v": dict(latent_channels=16, block_out_channels=(32, 32, 32, 32), layers_per_block=1,
                              down_block_types=("HunyuanVideoDownBlock3D",) * 4, up_block_types=("HunyuanVideoUpBlock3D",) * 4),
    "wan_i2v": dict(base_dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2),
}
# Text-encoder outputs per backbone: name -> shape without batch (masks are ones, the rest random).
TINY_TEXT_SHAPES: dict[str, dict[str, tuple[int, ...]]] = {
    "hunyuan_video_15": {"encoder_hidden_states": (8, 32), "encoder_attention_mask": (8,),
                         "encoder_hidden_states_2": (4, 16), "encoder_attention_mask_2": (4,)},
    "hunyuan_video_i2v": {"encoder_hidden_states": (8, 32), "encoder_attention_mask": (8,), "pooled_projections": (16,)},
    "wan_i2v": {"encoder_hidden_states": (8, 32)},
}
TINY_CANVAS = (9, 64, 128)  # frames, height, width (two 64 x 64 panels)


def _seeded(seed: int, build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def build_tiny_transformer(backbone: str = "hunyuan_video_15", seed: int = 0) -> torch.nn.Module:
    """A seeded random-weight transformer of the backbone's real diffusers class."""
    cls = get_adapter(backbone).transformer_cls()
    return _seeded(seed, lambda: cls(**TINY_TRANSFORMER_CONFIGS[backbone])).eval()


def build_tiny_vae(backbone: str = "hunyuan_video_15", seed: int = 0) -> torch.nn.Module:
    """A seeded random-weight VAE of the backbone's real diffusers class."""
    cls = get_adapter(backbone).vae_cls()
    return _seeded(seed + 1, lambda: cls(**TINY_VAE_CONFIGS[backbone])).eval()


def tiny_text_conditioning(backbone: str = "hunyuan_video_15", seed: int = 0) -> dict[str, torch.Tensor]:
    """Random text-encoder outputs shaped for the tiny transformer's forward kwargs."""
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.ones(1, *shape) if "mask" in name else torch.randn(1, *shape, generator=generator)
        for name, shape in TINY_TEXT_SHAPES[backbone].items()
    }


def ffn_lora_state_dict(transformer: torch.nn.Module, backbone: str = "hunyuan_video_15", rank: int = 4,
                        alpha: float = 2.0, layout: str = "diffusers", seed: int = 0) -> dict[str, torch.Tensor]:
    """A random LoRA on the visual FFN layers, keyed in one of the layouts artists meet.

    layout: "diffusers" (``transformer.<name>.lora_A.weight``), "kohya" (musubi-tuner:
    ``lora_unet_<original_name_with_underscores>.lora_down.weight`` + ``.alpha``) or "comfy"
    (``diffusion_model.<comfy name>.lora_down.weight`` + ``.alpha``). In the diffusers layout the
    alpha/rank scale is folded into B (diffusers drops a stored alpha, backbone gotcha 6).
    """
    adapter = get_adapter(backbone)
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name in adapter.visual_ffn_modules(transformer):
        module = transformer.get_submodule(name)
        down = torch.randn(rank, module.in_features, generator=generator) / module.in_features**0.5
        up = torch.randn(module.out_features, rank, generator=generator) / rank**0.5
        names = adapter.foreign_module_names(name)
        if layout == "diffusers":
            out[f"transformer.{name}.lora_A.weight"] = down
            out[f"transformer.{name}.lora_B.weight"] = up * (alpha / rank)
            continue
        base = f"lora_unet_{names['original'].replace('.', '_')}" if layout == "kohya" else f"diffusion_model.{names['comfy']}"
        out[f"{base}.lora_down.weight"] = down
        out[f"{base}.lora_up.weight"] = up
        out[f"{base}.alpha"] = torch.tensor(float(alpha))
    return out


def _save(state_dict: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path), metadata=metadata or {"format": "pt"})
    return path


def write_tiny_models(models_dir: str | Path, backbone: str = "hunyuan_video_15", seed: int = 0) -> dict[str, Path]:
    """Write tiny checkpoints into ComfyUI-style subfolders of ``models_dir``; return their paths.

    Keys of the result: transformer (original single file), transformer_comfy (ComfyUI names,
    ``model.diffusion_model.`` prefix), transformer_folder (diffusers), vae (original single file, or
    the folder where the pack has no inverse VAE table),
    vae_folder (diffusers), lora, lora_kohya, lora_comfy (visual-FFN LoRAs in three layouts).
    """
    models_dir = Path(models_dir)
    adapter = get_adapter(backbone)
    transformer = build_tiny_transformer(backbone, seed)
    vae = build_tiny_vae(backbone, seed)
    original = adapter.to_original_names(transformer.state_dict())
    name = f"tiny_{backbone}"
    paths = {
        "transformer": _save(original, models_dir / "diffusion_models" / f"{name}.safetensors"),
        "transformer_comfy": _save(
            {f"model.diffusion_model.{k}": v for k, v in adapter.to_comfy_names(original).items()},
            models_dir / "diffusion_models" / f"{name}_comfy.safetensors",
        ),
    }
    paths["transformer_folder"] = models_dir / "diffusion_models" / f"{name}_diffusers"
    transformer.save_pretrained(paths["transformer_folder"], safe_serialization=True)
    paths["vae_folder"] = models_dir / "vae" / f"{name}_vae_diffusers"
    vae.save_pretrained(paths["vae_folder"], safe_serialization=True)
    original_vae = adapter.vae_to_original_names(vae.state_dict())
    paths["vae"] = paths["vae_folder"] if original_vae is None else _save(
        original_vae, models_dir / "vae" / f"{name}_vae.safetensors")
    for layout, key in (("diffusers", "lora"), ("kohya", "lora_kohya"), ("comfy", "lora_comfy")):
        lora = ffn_lora_state_dict(transformer, backbone, layout=layout, seed=seed + 7)
        paths[key] = _save(lora, models_dir / "loras" / f"{name}_ffn_lora_{layout}.safetensors")
    return paths


def comfy_fp8_scaled(state_dict: dict[str, torch.Tensor], select, prefix: str = "",
                     scale_input: bool = False) -> dict[str, torch.Tensor]:
    """``state_dict`` in ComfyUI's fp8 "scaled" convention, as Comfy-Org's ``*_fp8_scaled`` files are:
    each weight ``select(key)`` picks becomes float8_e4m3fn with a float32 ``<layer>.scale_weight``
    beside it (weight ~= fp8 * scale; comfy/ops.py ``scaled_fp8_ops``), optionally a
    ``<layer>.scale_input`` (1.0, as files made for fp8 matrix multiplication carry), and the
    ``<prefix>scaled_fp8`` marker, an empty fp8 tensor (what comfy/model_base.py writes and
    comfy/model_detection.py looks for)."""
    from ..models.fp8 import FP8, quantize

    out: dict[str, torch.Tensor] = {f"{prefix}scaled_fp8": torch.zeros(0, dtype=FP8)}
    for key, value in state_dict.items():
        if not select(key, value):
            out[key] = value
            continue
        layer = key[: -len(".weight")]
        out[key], out[f"{layer}.scale_weight"] = quantize(value)
        if scale_input:
            out[f"{layer}.scale_input"] = torch.tensor(1.0)
    return out
