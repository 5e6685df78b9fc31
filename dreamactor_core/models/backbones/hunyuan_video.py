"""HunyuanVideo-I2V, latent-concat variant (33 input channels = 16 noise + 16 condition + 1 mask).

An MMDiT with 20 dual-stream blocks (visual ``ff`` apart from text ``ff_context``: the DreamActor
LoRA targets) and 40 single-stream blocks whose MLP is shared by both streams and stays untouched.
Original and ComfyUI files use the Tencent names; diffusers' single-file converter assumes the
full 3072 width when splitting single blocks' fused ``linear1`` (backbone gotcha 1), so the split
here reads the width from the tensor. The VAE's keys already are diffusers names (gotcha 4).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch

from ...errors import DreamActorError
from .base import BackboneAdapter, KeyShapes
from .hunyuan_video_15 import TOKEN_REFINER_RENAMES, rope_axes_for
from .keymap import KeyMap, Rename, count_indexed, strip_common_prefix, unprefixed

_D, _O = "transformer_blocks.{n}.", "double_blocks.{n}."
_S_D, _S_O = "single_transformer_blocks.{n}.", "single_blocks.{n}."

TRANSFORMER_KEYS = KeyMap([
    Rename("time_in.mlp.0", "time_text_embed.timestep_embedder.linear_1"),
    Rename("time_in.mlp.2", "time_text_embed.timestep_embedder.linear_2"),
    Rename("vector_in.in_layer", "time_text_embed.text_embedder.linear_1"),
    Rename("vector_in.out_layer", "time_text_embed.text_embedder.linear_2"),
    Rename("guidance_in.mlp.0", "time_text_embed.guidance_embedder.linear_1"),
    Rename("guidance_in.mlp.2", "time_text_embed.guidance_embedder.linear_2"),
    *TOKEN_REFINER_RENAMES,
    Rename("img_in.proj", "x_embedder.proj"),
    Rename(_O + "img_mod.linear", _D + "norm1.linear"),
    Rename(_O + "txt_mod.linear", _D + "norm1_context.linear"),
    Rename(_O + "img_attn_qkv", _D + "attn.to_{qkv}", "split_qkv"),
    Rename(_O + "img_attn_q_norm", _D + "attn.norm_q"),
    Rename(_O + "img_attn_k_norm", _D + "attn.norm_k"),
    Rename(_O + "img_attn_proj", _D + "attn.to_out.0"),
    Rename(_O + "txt_attn_qkv", _D + "attn.add_{qkv}_proj", "split_qkv"),
    Rename(_O + "txt_attn_q_norm", _D + "attn.norm_added_q"),
    Rename(_O + "txt_attn_k_norm", _D + "attn.norm_added_k"),
    Rename(_O + "txt_attn_proj", _D + "attn.to_add_out"),
    Rename(_O + "img_mlp.fc1", _D + "ff.net.0.proj"),
    Rename(_O + "img_mlp.fc2", _D + "ff.net.2"),
    Rename(_O + "txt_mlp.fc1", _D + "ff_context.net.0.proj"),
    Rename(_O + "txt_mlp.fc2", _D + "ff_context.net.2"),
    Rename(_S_O + "linear1_q", _S_D + "attn.to_q"),  # linear1_* are the split parts of linear1
    Rename(_S_O + "linear1_k", _S_D + "attn.to_k"),
    Rename(_S_O + "linear1_v", _S_D + "attn.to_v"),
    Rename(_S_O + "linear1_mlp", _S_D + "proj_mlp"),
    Rename(_S_O + "linear2", _S_D + "proj_out"),
    Rename(_S_O + "q_norm", _S_D + "attn.norm_q"),
    Rename(_S_O + "k_norm", _S_D + "attn.norm_k"),
    Rename(_S_O + "modulation.linear", _S_D + "norm.linear"),
    Rename("final_layer.adaLN_modulation.1", "norm_out.linear", "swap_halves"),
    Rename("final_layer.linear", "proj_out"),
])

_LINEAR1 = re.compile(r"^(single_blocks\.\d+)\.linear1\.(weight|bias)$")
_LINEAR1_PARTS = ("q", "k", "v", "mlp")


def split_linear1(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Single blocks' fused linear1 [3 D + mlp, D] -> q, k, v, mlp parts; D read from the weight."""
    out = {}
    for key, tensor in sd.items():
        match = _LINEAR1.match(key)
        if match is None:
            out[key] = tensor
            continue
        width = sd[f"{match[1]}.linear1.weight"].shape[1]
        sizes = [width, width, width, tensor.shape[0] - 3 * width]
        for part, chunk in zip(_LINEAR1_PARTS, tensor.split(sizes, dim=0)):
            out[f"{match[1]}.linear1_{part}.{match[2]}"] = chunk.contiguous()
    return out


def fuse_linear1(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of ``split_linear1``."""
    out = {key: value for key, value in sd.items() if ".linear1_" not in key}
    for key in sd:
        if ".linear1_q." in key:
            stem, param = key.split(".linear1_q.")
            out[f"{stem}.linear1.{param}"] = torch.cat([sd[f"{stem}.linear1_{p}.{param}"] for p in _LINEAR1_PARTS])
    return out


class HunyuanVideoI2V(BackboneAdapter):
    name = "hunyuan_video_i2v"
    display_name = "HunyuanVideo-I2V (latent concat)"
    transformer_class = "HunyuanVideoTransformer3DModel"
    vae_class = "AutoencoderKLHunyuanVideo"
    transformer_config_file = "hunyuan_video_i2v_transformer.json"
    vae_config_file = "hunyuan_video_vae.json"
    latent_channels = 16
    spatial_compression = 8
    temporal_compression = 4
    mask_layout = "per_latent_frame"
    default_shift = 7.0
    visual_ffn_pattern = re.compile(r"transformer_blocks\.\d+\.ff\.net\.(0\.proj|2)")
    embedded_guidance = 6.0  # for checkpoints with a guidance embedder (guidance-distilled)

    def to_original_names(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        state_dict = unprefixed(state_dict)
        if "x_embedder.proj.weight" in state_dict:  # diffusers names
            return fuse_linear1(TRANSFORMER_KEYS.convert(state_dict, reverse=True))
        return state_dict

    def foreign_module_names(self, diffusers_name: str) -> dict[str, str]:
        original = TRANSFORMER_KEYS.module_name(diffusers_name, reverse=True)
        if original is None or ".linear1_" in original:
            return {}
        return {"original": original, "comfy": original}

    def is_transformer(self, keys: KeyShapes) -> bool:
        prefix = strip_common_prefix(list(keys))
        for patch_key, marker in (("img_in.proj.weight", "single_blocks.0.linear2.weight"),
                                  ("x_embedder.proj.weight", "single_transformer_blocks.0.proj_out.weight")):
            shape = keys.get(prefix + patch_key)
            if prefix + marker in keys and shape is not None and len(shape) == 5:
                return shape[1] == 2 * self.latent_channels + 1
        return False

    def is_vae(self, keys: KeyShapes) -> bool:
        prefix = strip_common_prefix(list(keys))
        conv_in = keys.get(prefix + "decoder.conv_in.conv.weight")
        group_norms = prefix + "encoder.conv_norm_out.weight" in keys
        return group_norms and conv_in is not None and conv_in[1] == self.latent_channels

    def transformer_to_diffusers(self, state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        original = self.to_original_names(state_dict)
        return TRANSFORMER_KEYS.convert(split_linear1(original)), self._transformer_config(original)

    def _transformer_config(self, sd) -> dict[str, Any]:
        try:
            inner, in_channels, patch_t, patch_h, _ = sd["img_in.proj.weight"].shape
            head_dim = sd["double_blocks.0.img_attn_q_norm.weight"].shape[0]
            keys = list(sd)
            config = self.shipped_config(self.transformer_config_file)
            config.update(
                in_channels=in_channels,
                out_channels=sd["final_layer.linear.weight"].shape[0] // (patch_t * patch_h * patch_h),
                num_attention_heads=inner // head_dim,
                attention_head_dim=head_dim,
                num_layers=count_indexed(keys, r"double_blocks\.(\d+)\."),
                num_single_layers=count_indexed(keys, r"single_blocks\.(\d+)\."),
                num_refiner_layers=count_indexed(keys, r"txt_in\.individual_token_refiner\.blocks\.(\d+)\."),
                mlp_ratio=sd["double_blocks.0.img_mlp.fc1.weight"].shape[0] / inner,
                patch_size=patch_h,
                patch_size_t=patch_t,
                guidance_embeds="guidance_in.mlp.0.weight" in sd,
                text_embed_dim=sd["txt_in.input_embedder.weight"].shape[1],
                pooled_projection_dim=sd["vector_in.in_layer.weight"].shape[1],
                rope_axes_dim=rope_axes_for(head_dim),
            )
        except KeyError as missing:
            raise DreamActorError(f"HunyuanVideo transformer file lacks the weight {missing}: incomplete file") from None
        return config

    def vae_to_diffusers(self, state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        state_dict = unprefixed(state_dict)
        blocks = sorted({int(m.group(1)) for k in state_dict if (m := re.match(r"encoder\.down_blocks\.(\d+)\.", k))})
        config = self.shipped_config(self.vae_config_file)
        config.update(
            latent_channels=state_dict["decoder.conv_in.conv.weight"].shape[1],
            block_out_channels=[state_dict[f"encoder.down_blocks.{i}.resnets.0.conv2.conv.weight"].shape[0]
                                for i in blocks],
            layers_per_block=count_indexed(list(state_dict), r"encoder\.down_blocks\.0\.resnets\.(\d+)\."),
            down_block_types=["HunyuanVideoDownBlock3D"] * len(blocks),
            up_block_types=["HunyuanVideoUpBlock3D"] * len(blocks),
        )
        return state_dict, config

    def vae_to_original_names(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return dict(state_dict)

    def spatial_tiling_kwargs(self, tile_size: int) -> dict[str, int]:
        stride = tile_size * 3 // 4
        # The pack tiles time itself; diffusers' own temporal tiling is pushed out of reach.
        return {"tile_sample_min_height": tile_size, "tile_sample_min_width": tile_size,
                "tile_sample_stride_height": stride, "tile_sample_stride_width": stride,
                "tile_sample_min_num_frames": 1 << 20}

    def prepare_conditioning(self, transformer: torch.nn.Module, conditioning: Mapping[str, torch.Tensor], batch: int,
                             device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        kwargs = self.conditioning_on_device(conditioning, batch, device, dtype)
        if "pooled_projections" not in kwargs:
            raise DreamActorError("conditioning: HunyuanVideo needs the CLIP pooled text embedding (pooled_projections)")
        if transformer.config.guidance_embeds:
            kwargs.setdefault("guidance", torch.full((batch,), self.embedded_guidance * 1000.0, device=device, dtype=dtype))
        return kwargs
