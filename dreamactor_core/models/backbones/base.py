"""The interface every backbone adapter implements: what the engine needs to know about a model.

DreamActor-M2 feeds [noise latent, canvas latent, canvas mask] to an image-to-video "latent concat"
diffusion transformer. Backbones differ in channel order, mask layout, VAE scaling, checkpoint key
names and forward signature; an adapter hides exactly those differences so the sampler, the VAE
helpers and the LoRA loader are written once.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Mapping

import torch

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


KeyShapes = Mapping[str, tuple[int, ...]]


class BackboneAdapter(ABC):
    """One open video backbone, described for the DreamActor engine.

    Class attributes are constants of the model family; methods take the loaded diffusers modules
    when a value depends on the checkpoint (patch size, channel count).
    """

    name: str
    display_name: str
    transformer_class: str  # diffusers class name
    vae_class: str
    transformer_config_file: str  # JSON in configs/, the full-size model's config
    vae_config_file: str
    latent_channels: int
    spatial_compression: int
    temporal_compression: int
    mask_layout: str  # "per_latent_frame" (1 channel) or "folded_temporal" (temporal channels)
    default_shift: float
    # Module names (diffusers) of the visual-stream feed-forward linears: the DreamActor LoRA targets.
    visual_ffn_pattern: re.Pattern

    # ----- configs and classes -----
    @staticmethod
    def shipped_config(filename: str) -> dict[str, Any]:
        """A config shipped in the pack (never fetched), without diffusers' bookkeeping keys."""
        config = json.loads((CONFIG_DIR / filename).read_text())
        return {key: value for key, value in config.items() if not key.startswith("_")}

    def transformer_cls(self) -> type:
        import diffusers

        return getattr(diffusers, self.transformer_class)

    def vae_cls(self) -> type:
        import diffusers

        return getattr(diffusers, self.vae_class)

    # ----- detection and single-file conversion -----
    @abstractmethod
    def is_transformer(self, keys: KeyShapes) -> bool:
        """True when a state dict (original, ComfyUI or diffusers names) is this backbone's transformer."""

    @abstractmethod
    def is_vae(self, keys: KeyShapes) -> bool:
        """True when a state dict is this backbone's VAE."""

    @abstractmethod
    def transformer_to_diffusers(
        self, state_dict: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Convert a single-file transformer to diffusers names; also return its config."""

    @abstractmethod
    def vae_to_diffusers(
        self, state_dict: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Convert a single-file VAE to diffusers names; also return its config."""

    @abstractmethod
    def foreign_module_names(self, diffusers_name: str) -> dict[str, str]:
        """Layout ("original", "comfy") -> the name a diffusers module has in that layout.

        The LoRA loader matches LoRA keys against these (and their kohya underscore forms), so
        LoRAs trained with the original code, musubi-tuner or ComfyUI find their layers.
        """

    @abstractmethod
    def to_original_names(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Any supported transformer layout -> the original release's key names."""

    def to_comfy_names(self, original: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Original key names -> the names ComfyUI-saved files use (unprefixed)."""
        return dict(original)

    def vae_to_original_names(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """Diffusers VAE keys -> the original release's, or None where the pack has no inverse table."""
        return None

    def spatial_tiling_kwargs(self, tile_size: int) -> dict[str, int]:
        """Arguments of the diffusers VAE's ``enable_tiling`` for square pixel tiles of ``tile_size``
        overlapping by a quarter."""
        return {"tile_sample_min_height": tile_size, "tile_sample_min_width": tile_size}

    # ----- the model input and call -----
    def patch_size(self, transformer: torch.nn.Module) -> tuple[int, int, int]:
        """(t, h, w) patch size: latent sizes must be multiples of it."""
        config = transformer.config
        patch = config.patch_size
        if isinstance(patch, (tuple, list)):
            return tuple(int(p) for p in patch)  # type: ignore[return-value]
        return (int(getattr(config, "patch_size_t", 1) or 1), int(patch), int(patch))

    def mask_channels(self) -> int:
        return self.temporal_compression if self.mask_layout == "folded_temporal" else 1

    def pack_input(self, noisy: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Concatenate [B,C,T,H,W] noise latent, canvas latent and packed mask in the model's order
        (diffusers' HunyuanVideo pipelines: noise, condition, mask)."""
        return torch.cat([noisy, condition, mask], dim=1)

    @abstractmethod
    def prepare_conditioning(
        self, transformer: torch.nn.Module, conditioning: Mapping[str, torch.Tensor], batch: int,
        device: torch.device, dtype: torch.dtype,
    ) -> dict[str, torch.Tensor]:
        """Text/image conditioning -> the forward's kwargs on the device, batch-expanded, defaults
        filled in. Done once per sampling run so the per-step call adds no work of its own."""

    @staticmethod
    def conditioning_on_device(conditioning: Mapping[str, torch.Tensor], batch: int, device: torch.device,
                               dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Embeddings cast to the compute dtype (attention masks keep theirs), batch 1 expanded."""
        out = {}
        for key, value in conditioning.items():
            cast = dtype if value.is_floating_point() and "mask" not in key else value.dtype
            value = value.to(device=device, dtype=cast)
            out[key] = value.expand(batch, *value.shape[1:]) if value.shape[0] == 1 else value
        return out

    def predict_velocity(
        self,
        transformer: torch.nn.Module,
        model_input: torch.Tensor,
        timestep: torch.Tensor,
        conditioning: Mapping[str, torch.Tensor],
    ) -> torch.Tensor:
        """One transformer forward: the flow-matching velocity for ``model_input`` at ``timestep``
        (``conditioning`` from ``prepare_conditioning``)."""
        return transformer(hidden_states=model_input, timestep=timestep, return_dict=False, **conditioning)[0]

    # ----- latent space -----
    def normalize_latent(self, vae: torch.nn.Module, latent: torch.Tensor) -> torch.Tensor:
        """VAE posterior mode -> the scaled latent the transformer works in (HunyuanVideo: x scale)."""
        return latent * vae.config.scaling_factor

    def denormalize_latent(self, vae: torch.nn.Module, latent: torch.Tensor) -> torch.Tensor:
        """Inverse of ``normalize_latent``, before decoding."""
        return latent / vae.config.scaling_factor

    def visual_ffn_modules(self, transformer: torch.nn.Module) -> list[str]:
        """Names of the visual-stream FFN linears (LoRA targets), in module order."""
        return [
            name
            for name, module in transformer.named_modules()
            if isinstance(module, torch.nn.Linear) and self.visual_ffn_pattern.fullmatch(name)
        ]
