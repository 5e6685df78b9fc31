"""HunyuanVideo 1.5 image-to-video: the first DreamActor backbone.

An MMDiT (54 dual-stream blocks) whose blocks keep separate visual (``ff``) and text
(``ff_context``) feed-forward layers, so the paper's "LoRA on the visual FFN only" maps exactly.
Input channels 65 = 32 noise latent + 32 condition latent + 1 mask, the layout diffusers'
``HunyuanVideo15ImageToVideoPipeline`` uses; DreamActor puts the whole canvas latent in the
condition and the canvas mask in the mask channel.

diffusers has no single-file loader for this model or its VAE, so the key conversion from the
original Tencent layout (and ComfyUI's names for it) lives here, width-aware (sizes come from the
checkpoint's shapes, not from hard-coded full-size dimensions).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch

from ...errors import DreamActorError
from ..attention import install as install_attention
from ..variants import check_hunyuan_video_15
from .base import BackboneAdapter, KeyShapes
from .keymap import KeyMap, ModuleName, Rename, SubstringRenames, count_indexed, strip_common_prefix, unprefixed

_D = "transformer_blocks.{n}."
_O = "double_blocks.{n}."
_R_D = "context_embedder.token_refiner.refiner_blocks.{n}."
_R_O = "txt_in.individual_token_refiner.blocks.{n}."

# The text token refiner, named alike in HunyuanVideo and HunyuanVideo 1.5 (both adapters use it).
TOKEN_REFINER_RENAMES = [
    Rename("txt_in.t_embedder.mlp.0", "context_embedder.time_text_embed.timestep_embedder.linear_1"),
    Rename("txt_in.t_embedder.mlp.2", "context_embedder.time_text_embed.timestep_embedder.linear_2"),
    Rename("txt_in.c_embedder.linear_1", "context_embedder.time_text_embed.text_embedder.linear_1"),
    Rename("txt_in.c_embedder.linear_2", "context_embedder.time_text_embed.text_embedder.linear_2"),
    Rename("txt_in.input_embedder", "context_embedder.proj_in"),
    Rename(_R_O + "norm1", _R_D + "norm1"),
    Rename(_R_O + "norm2", _R_D + "norm2"),
    Rename(_R_O + "self_attn_qkv", _R_D + "attn.to_{qkv}", "split_qkv"),
    Rename(_R_O + "self_attn_proj", _R_D + "attn.to_out.0"),
    Rename(_R_O + "mlp.fc1", _R_D + "ff.net.0.proj"),
    Rename(_R_O + "mlp.fc2", _R_D + "ff.net.2"),
    Rename(_R_O + "adaLN_modulation.1", _R_D + "norm_out.linear"),
]

# Original Tencent names -> diffusers names (the table of diffusers' conversion script).
TRANSFORMER_KEYS = KeyMap([
    Rename("time_in.mlp.0", "time_embed.timestep_embedder.linear_1"),
    Rename("time_in.mlp.2", "time_embed.timestep_embedder.linear_2"),
    Rename("time_r_in.mlp.0", "time_embed.timestep_embedder_r.linear_1"),
    Rename("time_r_in.mlp.2", "time_embed.timestep_embedder_r.linear_2"),
    *TOKEN_REFINER_RENAMES,
    Rename("byt5_in.layernorm", "context_embedder_2.norm"),
    Rename("byt5_in.fc1", "context_embedder_2.linear_1"),
    Rename("byt5_in.fc2", "context_embedder_2.linear_2"),
    Rename("byt5_in.fc3", "context_embedder_2.linear_3"),
    Rename("vision_in.proj.0", "image_embedder.norm_in"),
    Rename("vision_in.proj.1", "image_embedder.linear_1"),
    Rename("vision_in.proj.3", "image_embedder.linear_2"),
    Rename("vision_in.proj.4", "image_embedder.norm_out"),
    Rename("img_in.proj", "x_embedder.proj"),
    Rename("cond_type_embedding", "cond_type_embed"),
    Rename(_O + "img_mod.linear", _D + "norm1.linear"),
    Rename(_O + "txt_mod.linear", _D + "norm1_context.linear"),
    Rename(_O + "img_attn_q", _D + "attn.to_q"),
    Rename(_O + "img_attn_k", _D + "attn.to_k"),
    Rename(_O + "img_attn_v", _D + "attn.to_v"),
    Rename(_O + "img_attn_q_norm", _D + "attn.norm_q"),
    Rename(_O + "img_attn_k_norm", _D + "attn.norm_k"),
    Rename(_O + "img_attn_proj", _D + "attn.to_out.0"),
    Rename(_O + "txt_attn_q", _D + "attn.add_q_proj"),
    Rename(_O + "txt_attn_k", _D + "attn.add_k_proj"),
    Rename(_O + "txt_attn_v", _D + "attn.add_v_proj"),
    Rename(_O + "txt_attn_q_norm", _D + "attn.norm_added_q"),
    Rename(_O + "txt_attn_k_norm", _D + "attn.norm_added_k"),
    Rename(_O + "txt_attn_proj", _D + "attn.to_add_out"),
    Rename(_O + "img_mlp.fc1", _D + "ff.net.0.proj"),
    Rename(_O + "img_mlp.fc2", _D + "ff.net.2"),
    Rename(_O + "txt_mlp.fc1", _D + "ff_context.net.0.proj"),
    Rename(_O + "txt_mlp.fc2", _D + "ff_context.net.2"),
    Rename("final_layer.adaLN_modulation.1", "norm_out.linear", "swap_halves"),
    Rename("final_layer.linear", "proj_out"),
])

# Fused double-block attention (ComfyUI, HunyuanVideo 1.0 style) <-> separate q/k/v (1.5 original).
FUSED_ATTENTION = KeyMap([
    Rename(_O + "img_attn_qkv", _O + "img_attn_{qkv}", "split_qkv"),
    Rename(_O + "txt_attn_qkv", _O + "txt_attn_{qkv}", "split_qkv"),
])

# Original names <-> ComfyUI's internal names (comfy/supported_models.py HunyuanVideo, reversed).
COMFY_NAMES = SubstringRenames([
    ("_mod.linear.", "_mod.lin."),
    ("_attn_qkv.", "_attn.qkv."),
    ("_attn_proj.", "_attn.proj."),
    ("_attn_q_norm.weight", "_attn.norm.query_norm.scale"),
    ("_attn_k_norm.weight", "_attn.norm.key_norm.scale"),
    ("self_attn_qkv.", "self_attn.qkv."),
    ("self_attn_proj.", "self_attn.proj."),
    ("mlp.fc1.", "mlp.0."),
    ("mlp.fc2.", "mlp.2."),
    ("t_embedder.mlp.0.", "t_embedder.in_layer."),
    ("t_embedder.mlp.2.", "t_embedder.out_layer."),
    ("c_embedder.linear_1.", "c_embedder.in_layer."),
    ("c_embedder.linear_2.", "c_embedder.out_layer."),
    ("_in.mlp.0.", "_in.in_layer."),
    ("_in.mlp.2.", "_in.out_layer."),
])

VAE_KEYS = KeyMap([
    Rename("encoder.down.{i}.block.{j}", "encoder.down_blocks.{i}.resnets.{j}"),
    Rename("encoder.down.{i}.downsample", "encoder.down_blocks.{i}.downsamplers.0"),
    Rename("decoder.up.{i}.block.{j}", "decoder.up_blocks.{i}.resnets.{j}"),
    Rename("decoder.up.{i}.upsample", "decoder.up_blocks.{i}.upsamplers.0"),
    *[
        rename
        for part in ("encoder", "decoder")
        for rename in (
            Rename(f"{part}.mid.block_1", f"{part}.mid_block.resnets.0"),
            Rename(f"{part}.mid.block_2", f"{part}.mid_block.resnets.1"),
            Rename(f"{part}.mid.attn_1.q", f"{part}.mid_block.attentions.0.to_q"),
            Rename(f"{part}.mid.attn_1.k", f"{part}.mid_block.attentions.0.to_k"),
            Rename(f"{part}.mid.attn_1.v", f"{part}.mid_block.attentions.0.to_v"),
            Rename(f"{part}.mid.attn_1", f"{part}.mid_block.attentions.0"),
        )
    ],
])


def rope_axes_for(head_dim: int) -> list[int]:
    """RoPE split of a head (t, h, w), even parts: (16, 56, 56) at 128 as shipped, (4, 6, 6) at 16.

    Not stored in checkpoints, so it is derived from the head size the same way for every file.
    """
    t = max(2, 2 * round(head_dim / 16))
    if (head_dim - t) % 4:
        t += 2
    return [t, (head_dim - t) // 2, (head_dim - t) // 2]


class HunyuanVideo15(BackboneAdapter):
    name = "hunyuan_video_15"
    display_name = "HunyuanVideo 1.5 (image-to-video)"
    transformer_class = "HunyuanVideo15Transformer3DModel"
    vae_class = "AutoencoderKLHunyuanVideo15"
    transformer_config_file = "hunyuan_video_15_transformer.json"
    vae_config_file = "hunyuan_video_15_vae.json"
    latent_channels = 32
    spatial_compression = 16
    temporal_compression = 4
    mask_layout = "per_latent_frame"
    default_shift = 5.0
    visual_ffn_pattern = re.compile(r"transformer_blocks\.\d+\.ff\.net\.(0\.proj|2)")

    # ----- naming -----
    def to_original_names(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Any supported layout (prefixed, ComfyUI, fused attention, diffusers) -> original names."""
        state_dict = unprefixed(state_dict)
        if "cond_type_embed.weight" in state_dict:  # already diffusers names
            return TRANSFORMER_KEYS.convert(state_dict, reverse=True)
        if any("_mod.lin." in key for key in state_dict):  # ComfyUI names (original: "_mod.linear.")
            state_dict = {COMFY_NAMES.apply(key, reverse=True): value for key, value in state_dict.items()}
        return FUSED_ATTENTION.convert(state_dict)

    def to_comfy_names(self, original: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Original names -> ComfyUI's (fused attention), as ComfyUI-saved files carry them."""
        fused = FUSED_ATTENTION.convert(original, reverse=True)
        return {COMFY_NAMES.apply(key): value for key, value in fused.items()}

    def foreign_module_names(self, diffusers_name: str) -> dict[str, ModuleName]:
        """Original names; double-block q/k/v also as their fused module ("fused", ComfyUI's
        layout), which ComfyUI's names are then built from."""
        original = TRANSFORMER_KEYS.module_name(diffusers_name, reverse=True)
        if original is None:
            return {}
        names = {"original": original}
        fused = FUSED_ATTENTION.module_name(original, reverse=True)
        if fused is not None:
            names["fused"] = fused
        source = fused or original
        names["comfy"] = source.renamed(COMFY_NAMES.apply(source + ".")[:-1])
        return names

    # ----- detection -----
    def is_transformer(self, keys: KeyShapes) -> bool:
        prefix = strip_common_prefix(list(keys))
        for patch_key, marker in (("img_in.proj.weight", "cond_type_embedding.weight"),
                                  ("x_embedder.proj.weight", "cond_type_embed.weight")):
            shape = keys.get(prefix + patch_key)
            if prefix + marker in keys and shape is not None and len(shape) == 5:
                return True
        return False

    def is_vae(self, keys: KeyShapes) -> bool:
        prefix = strip_common_prefix(list(keys))
        conv_in = keys.get(prefix + "decoder.conv_in.conv.weight")
        rms_norms = prefix + "encoder.norm_out.gamma" in keys
        return rms_norms and conv_in is not None and conv_in[1] == self.latent_channels

    # ----- conversion -----
    def transformer_to_diffusers(self, state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        original = self.to_original_names(state_dict)
        return TRANSFORMER_KEYS.convert(original), self._transformer_config(original)

    def _transformer_config(self, sd: dict[str, torch.Tensor]) -> dict[str, Any]:
        try:
            patch = sd["img_in.proj.weight"]
            inner, in_channels, patch_t, patch_h, _ = patch.shape
            check_hunyuan_video_15(sd, in_channels)
            head_dim = sd["double_blocks.0.img_attn_q_norm.weight"].shape[0]
            keys = list(sd)
            config = self.shipped_config(self.transformer_config_file)
            config.update(
                in_channels=in_channels,
                out_channels=sd["final_layer.linear.weight"].shape[0] // (patch_t * patch_h * patch_h),
                num_attention_heads=inner // head_dim,
                attention_head_dim=head_dim,
                num_layers=count_indexed(keys, r"double_blocks\.(\d+)\."),
                num_refiner_layers=count_indexed(keys, r"txt_in\.individual_token_refiner\.blocks\.(\d+)\."),
                mlp_ratio=sd["double_blocks.0.img_mlp.fc1.weight"].shape[0] / inner,
                patch_size=patch_h,
                patch_size_t=patch_t,
                text_embed_dim=sd["txt_in.input_embedder.weight"].shape[1],
                text_embed_2_dim=sd["byt5_in.fc1.weight"].shape[1],
                image_embed_dim=sd["vision_in.proj.1.weight"].shape[1],
                rope_axes_dim=rope_axes_for(head_dim),
                use_meanflow=any(key.startswith("time_r_in.") for key in keys),
            )
        except KeyError as missing:
            raise DreamActorError(f"HunyuanVideo 1.5 transformer file lacks the weight {missing}: incomplete file") from None
        return config

    def vae_to_diffusers(self, state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        converted = VAE_KEYS.convert(unprefixed(state_dict))
        blocks = sorted({int(m.group(1)) for k in converted if (m := re.match(r"encoder\.down_blocks\.(\d+)\.", k))})
        widths = [converted[f"encoder.down_blocks.{i}.resnets.0.conv2.conv.weight"].shape[0] for i in blocks]
        downsamples = sum(f"encoder.down_blocks.{i}.downsamplers.0.conv.conv.weight" in converted for i in blocks)
        config = self.shipped_config(self.vae_config_file)
        config.update(
            latent_channels=converted["decoder.conv_in.conv.weight"].shape[1],
            block_out_channels=widths,
            layers_per_block=count_indexed(list(converted), r"encoder\.down_blocks\.0\.resnets\.(\d+)\."),
            spatial_compression_ratio=2**downsamples,
        )
        return converted, config

    def vae_to_original_names(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return VAE_KEYS.convert(state_dict, reverse=True)

    def spatial_tiling_kwargs(self, tile_size: int) -> dict[str, int]:
        return {"tile_sample_min_height": tile_size, "tile_sample_min_width": tile_size,
                "tile_latent_min_height": tile_size // self.spatial_compression,
                "tile_latent_min_width": tile_size // self.spatial_compression}

    # ----- model input and call -----
    def prepare_conditioning(self, transformer: torch.nn.Module, conditioning: Mapping[str, torch.Tensor], batch: int,
                             device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The forward's kwargs with every padded token the batch does not need cut away.

        diffusers' forward hides padded text, glyph and all-zero image tokens from the video
        tokens (its token refiner pools and attends over the valid text tokens only), and text
        tokens carry no position, so cutting padding to the longest real prompt in the batch
        changes no output; a batch of one then needs no attention mask at all. Also installs the
        pack's key-mask attention (``models/attention.py``) on the transformer.
        """
        kwargs = self.conditioning_on_device(conditioning, batch, device, dtype)
        config = transformer.config
        # No ByT5 glyph text and no image embedding: no tokens (the canvas carries the image).
        kwargs.setdefault("encoder_hidden_states_2", torch.zeros(batch, 0, config.text_embed_2_dim, device=device, dtype=dtype))
        kwargs.setdefault("encoder_attention_mask_2", torch.zeros(batch, 0, device=device))
        image = kwargs.get("image_embeds")
        if image is None or not image.any():  # diffusers masks an all-zero image embedding whole
            kwargs["image_embeds"] = torch.zeros(batch, 0, config.image_embed_dim, device=device, dtype=dtype)
        for states, mask, least in (("encoder_hidden_states", "encoder_attention_mask", 1),
                                    ("encoder_hidden_states_2", "encoder_attention_mask_2", 0)):
            if states in kwargs and mask in kwargs:
                kwargs[states], kwargs[mask] = trim_padding(kwargs[states], kwargs[mask], least)
        install_attention(transformer)
        return kwargs


def trim_padding(states: torch.Tensor, mask: torch.Tensor, least: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens [B, N, D] and their mask [B, N] with the valid tokens first (in order) and the
    sequence cut to the most valid tokens of any batch row (at least ``least``)."""
    valid = mask.bool()
    keep = max(int(valid.sum(dim=1).max()) if valid.numel() else 0, least)
    if keep == mask.shape[1]:
        return states, mask
    order = torch.argsort(valid.to(torch.uint8), dim=1, descending=True, stable=True)[:, :keep]
    return states.gather(1, order.unsqueeze(-1).expand(-1, -1, states.shape[-1])), mask.gather(1, order)
