"""Narrow HunyuanVideo 1.5 stand-ins for the native path (ComfyUI's own HV1.5 nodes), shared by
tests/test_native_comfy.py and tests/test_workflows_comfy.py.

ComfyUI 0.3.75 builds HunyuanVideo 1.5 from a file with fixed widths (head 128, MLP x4, SigLIP 1152,
ByT5 1472), so the transformer here is "narrow": one head of 128, one block, 10 M parameters, the real
input widths; core UNETLoader loads it. The VAE (1.26 B parameters) and SigLIP-384 ComfyUI builds at
their full sizes whatever the file holds: their narrow files go through the test-only loaders in
tests/comfy_probe (ComfyUI's own classes at the file's widths).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from dreamactor_core.models.backbones import get_adapter
from dreamactor_core.testing.tiny_models import build_tiny_vae
from dreamactor_core.train.lora_peft import lora_metadata, save_lora

NARROW = dict(in_channels=65, out_channels=32, num_attention_heads=1, attention_head_dim=128, num_layers=1,
              num_refiner_layers=2, mlp_ratio=4.0, text_embed_dim=32, text_embed_2_dim=1472, image_embed_dim=1152,
              rope_axes_dim=(16, 56, 56))
TEXT_WIDTH = NARROW["text_embed_dim"]  # the conditioning width the narrow transformer reads
# SigLIP-384's patch grid and width (ComfyUI's HV1.5 vision_in takes 1152) with two narrow layers
# (ComfyUI's encode_image also reads the penultimate layer).
NARROW_SIGLIP = dict(hidden_size=1152, intermediate_size=32, num_hidden_layers=2, num_attention_heads=16,
                     image_size=384, patch_size=14)


def _seeded(seed: int, build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def write_narrow_transformer(path: Path):
    """The narrow HV1.5 image-to-video transformer (diffusers class) saved in ComfyUI's single-file
    names; returns the diffusers model and the backbone adapter."""
    import diffusers

    transformer = _seeded(0, lambda: diffusers.HunyuanVideo15Transformer3DModel(**NARROW).eval())
    adapter = get_adapter("hunyuan_video_15")
    original = adapter.to_original_names(transformer.state_dict())
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({f"model.diffusion_model.{k}": v.contiguous() for k, v in adapter.to_comfy_names(original).items()},
              str(path))
    return transformer, adapter


def write_trained_lora(transformer, adapter, path: Path) -> int:
    """A LoRA written by the trainer's own save path (random, so it changes the result visibly);
    returns the number of layers it adapts."""
    targets = adapter.visual_ffn_modules(transformer)
    generator = torch.Generator().manual_seed(5)
    tensors = {}
    for name in targets:
        module = transformer.get_submodule(name)
        tensors[f"{name}.lora_A"] = torch.randn(4, module.in_features, generator=generator) / module.in_features**0.5
        tensors[f"{name}.lora_B"] = torch.randn(module.out_features, 4, generator=generator) * 0.5
    path.parent.mkdir(parents=True, exist_ok=True)
    save_lora(path, tensors, lora_metadata("hunyuan_video_15", 4, 8.0, "pose", 1, targets, "none"))
    return len(targets)


def write_narrow_vae(path: Path) -> None:
    """The pack's tiny HV1.5 VAE (widths 8..64, one block a stage) in the original names, which are
    ComfyUI's HV1.5 VAE names (every key of ComfyUI's vae_refiner modules, none left over)."""
    state = get_adapter("hunyuan_video_15").vae_to_original_names(build_tiny_vae().state_dict())
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def write_narrow_siglip(path: Path) -> None:
    """A two-layer SigLIP of the released 384 / patch-14 geometry and 1152 width, in the released
    (transformers) key names that ComfyUI's clip-vision model reads."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    model = _seeded(2, lambda: SiglipVisionModel(SiglipVisionConfig(**NARROW_SIGLIP)).eval())
    path.parent.mkdir(parents=True, exist_ok=True)
    # transformers 5 drops the "vision_model." prefix the released files (and ComfyUI) use
    state = {k if k.startswith("vision_model.") else f"vision_model.{k}": v for k, v in model.state_dict().items()}
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
