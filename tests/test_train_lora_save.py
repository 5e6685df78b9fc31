"""The trainer's LoRA file in ComfyUI's key names: plain layers map one to one; layers that ComfyUI's
model stores fused (q/k/v) or half-swapped (final modulation) are refused by name, never written as a
pair that core LoraLoaderModelOnly would apply to the wrong rows."""

from __future__ import annotations

import pytest
import torch

from dreamactor_core.errors import DreamActorError
from dreamactor_core.train.lora_peft import comfy_lora_keys


def _pair(module: str) -> dict[str, torch.Tensor]:
    return {f"{module}.lora_A": torch.ones(2, 8), f"{module}.lora_B": torch.full((8, 2), 0.5)}


def test_visual_ffn_layers_get_comfyui_names_with_their_alpha():
    keys = comfy_lora_keys(_pair("transformer_blocks.3.ff.net.0.proj"), "hunyuan_video_15", alpha=4.0)
    base = "diffusion_model.double_blocks.3.img_mlp.0"
    assert set(keys) == {f"{base}.lora_down.weight", f"{base}.lora_up.weight", f"{base}.alpha"}
    assert torch.equal(keys[f"{base}.lora_down.weight"], torch.ones(2, 8))
    assert torch.equal(keys[f"{base}.lora_up.weight"], torch.full((8, 2), 0.5))
    assert keys[f"{base}.alpha"].item() == 4.0


@pytest.mark.parametrize(("module", "stored_as"), [
    ("transformer_blocks.0.attn.to_q", "split_qkv"),
    ("norm_out.linear", "swap_halves"),
])
def test_layers_comfyui_stores_fused_or_reordered_are_refused_by_name(module, stored_as):
    with pytest.raises(DreamActorError, match=rf"'{module}'.*{stored_as}"):
        comfy_lora_keys(_pair(module), "hunyuan_video_15", alpha=2.0)
