"""Wan 2.x image-to-video (36 input channels): the second DreamActor backbone.

A cross-attention DiT, not an MMDiT: there is no separate text stream, so every block's ``ffn`` is a
visual-stream feed-forward layer and the DreamActor LoRA targets all of them. Input channels
36 = 16 noise latent + 4 mask + 16 condition latent (diffusers' ``WanImageToVideoPipeline`` order);
the mask folds the 4 pixel frames of each latent frame into channels ("folded_temporal").
Wan 2.1 I2V also takes a CLIP image embedding (``encoder_hidden_states_image``); Wan 2.2 A14B I2V
does not. The VAE normalises latents with per-channel mean and std.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch

from ...errors import DreamActorError
from .base import BackboneAdapter, KeyShapes
from .keymap import KeyMap, Rename, count_indexed, strip_common_prefix, unprefixed

_B = "blocks.{n}."

# Original Wan names (also ComfyUI's, under model.diffusion_model.) <-> diffusers names.
TRANSFORMER_KEYS = KeyMap([
    Rename("time_embedding.0", "condition_embedder.time_embedder.linear_1"),
    Rename("time_embedding.2", "condition_embedder.time_embedder.linear_2"),
    Rename("text_embedding.0", "condition_embedder.text_embedder.linear_1"),
    Rename("text_embedding.2", "condition_embedder.text_embedder.linear_2"),
    Rename("time_projection.1", "condition_embedder.time_proj"),
    Rename("img_emb.proj.0", "condition_embedder.image_embedder.norm1"),
    Rename("img_emb.proj.1", "condition_embedder.image_embedder.ff.net.0.proj"),
    Rename("img_emb.proj.3", "condition_embedder.image_embedder.ff.net.2"),
    Rename("img_emb.proj.4", "condition_embedder.image_embedder.norm2"),
    Rename("head.modulation", "scale_shift_table"),
    Rename("head.head", "proj_out"),
    *[Rename(f"{_B}{stream}.{o}", f"{_B}{d_stream}.{d}")
      for stream, d_stream in (("self_attn", "attn1"), ("cross_attn", "attn2"))
      for o, d in (("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("o", "to_out.0"), ("norm_q", "norm_q"),
                   ("norm_k", "norm_k"), ("k_img", "add_k_proj"), ("v_img", "add_v_proj"),
                   ("norm_k_img", "norm_added_k"))],
    Rename(_B + "norm3", _B + "norm2"),  # the cross-attention norm (original norm2 has no weights)
    Rename(_B + "modulation", _B + "scale_shift_table"),
    Rename(_B + "ffn.0", _B + "ffn.net.0.proj"),
    Rename(_B + "ffn.2", _B + "ffn.net.2"),
])

class WanI2V(BackboneAdapter):
    name = "wan_i2v"
    display_name = "Wan 2.x (image-to-video)"
    transformer_class = "WanTransformer3DModel"
    vae_class = "AutoencoderKLWan"
    transformer_config_file = "wan_i2v_transformer.json"
    vae_config_file = "wan_vae.json"
    latent_channels = 16
    spatial_compression = 8
    temporal_compression = 4
    mask_layout = "folded_temporal"
    default_shift = 5.0
    visual_ffn_pattern = re.compile(r"blocks\.\d+\.ffn\.net\.(0\.proj|2)")
    head_dim = 128  # every released Wan model; not recoverable from shapes (q/k norms span all heads)

    def to_original_names(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        state_dict = unprefixed(state_dict)
        if "scale_shift_table" in state_dict:  # diffusers names
            return TRANSFORMER_KEYS.convert(state_dict, reverse=True)
        return state_dict

    def foreign_module_names(self, diffusers_name: str) -> dict[str, str]:
        original = TRANSFORMER_KEYS.module_name(diffusers_name, reverse=True)
        return {} if original is None else {"original": original, "comfy": original}

    def is_transformer(self, keys: KeyShapes) -> bool:
        prefix = strip_common_prefix(list(keys))
        patch = keys.get(prefix + "patch_embedding.weight")
        wan = prefix + "head.modulation" in keys or prefix + "scale_shift_table" in keys
        return wan and patch is not None and patch[1] == 2 * self.latent_channels + self.temporal_compression

    def is_vae(self, keys: KeyShapes) -> bool:
        prefix = strip_common_prefix(list(keys))
        original = keys.get(prefix + "decoder.conv1.weight")
        diffusers = keys.get(prefix + "decoder.conv_in.weight")
        conv = original if original is not None else diffusers
        wan = prefix + "decoder.middle.0.residual.0.gamma" in keys or prefix + "decoder.mid_block.resnets.0.norm1.gamma" in keys
        return wan and conv is not None and conv[1] == self.latent_channels

    def transformer_to_diffusers(self, state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        original = self.to_original_names(state_dict)
        return TRANSFORMER_KEYS.convert(original), self._transformer_config(original)

    def _transformer_config(self, sd) -> dict[str, Any]:
        try:
            inner, in_channels, *patch = sd["patch_embedding.weight"].shape
            keys = list(sd)
            config = self.shipped_config(self.transformer_config_file)
            image = "img_emb.proj.0.weight" in sd
            config.update(
                patch_size=list(patch),
                num_attention_heads=inner // self.head_dim,
                attention_head_dim=self.head_dim,
                in_channels=in_channels,
                out_channels=sd["head.head.weight"].shape[0] // (patch[0] * patch[1] * patch[2]),
                text_dim=sd["text_embedding.0.weight"].shape[1],
                freq_dim=sd["time_embedding.0.weight"].shape[1],
                ffn_dim=sd["blocks.0.ffn.0.weight"].shape[0],
                num_layers=count_indexed(keys, r"blocks\.(\d+)\."),
                cross_attn_norm="blocks.0.norm3.weight" in sd,
                image_dim=sd["img_emb.proj.0.weight"].shape[0] if image else None,
                added_kv_proj_dim=inner if image else None,
            )
        except KeyError as missing:
            raise DreamActorError(f"Wan transformer file lacks the weight {missing}: incomplete file") from None
        return config

    def vae_to_diffusers(self, state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

        state_dict = unprefixed(state_dict)
        if "decoder.middle.0.residual.0.gamma" in state_dict:
            state_dict = convert_wan_vae_to_diffusers(state_dict)
        config = self.shipped_config(self.vae_config_file)
        config.update(base_dim=state_dict["encoder.conv_in.weight"].shape[0],
                      z_dim=state_dict["decoder.conv_in.weight"].shape[1])
        return state_dict, config

    def spatial_tiling_kwargs(self, tile_size: int) -> dict[str, int]:
        stride = tile_size * 3 // 4
        return {"tile_sample_min_height": tile_size, "tile_sample_min_width": tile_size,
                "tile_sample_stride_height": stride, "tile_sample_stride_width": stride}

    def pack_input(self, noisy: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.cat([noisy, mask, condition], dim=1)

    def prepare_conditioning(self, transformer: torch.nn.Module, conditioning: Mapping[str, torch.Tensor], batch: int,
                             device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        # Wan's forward takes no attention masks: its text is zero-padded instead.
        text = {key: value for key, value in conditioning.items() if "mask" not in key}
        kwargs = self.conditioning_on_device(text, batch, device, dtype)
        if transformer.config.image_dim is not None and "encoder_hidden_states_image" not in kwargs:
            raise DreamActorError("conditioning: this Wan 2.1 image-to-video model needs the reference's CLIP "
                                  "image embedding (encoder_hidden_states_image)")
        return kwargs

    def normalize_latent(self, vae: torch.nn.Module, latent: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(vae, latent)
        return (latent - mean) / std

    def denormalize_latent(self, vae: torch.nn.Module, latent: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(vae, latent)
        return latent * std + mean

    @staticmethod
    def _stats(vae, latent):
        shape = (1, -1, 1, 1, 1)
        mean = torch.tensor(vae.config.latents_mean, dtype=latent.dtype, device=latent.device).view(shape)
        std = torch.tensor(vae.config.latents_std, dtype=latent.dtype, device=latent.device).view(shape)
        return mean, std
