"""The conditioning the sampler consumes: tensors named after the transformer's forward arguments.

Text encoders, the image encoder and the ComfyUI converter all produce it; the sampler, training and
the pipeline all read it, so it lives apart from any one encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from ..errors import DreamActorError

TEXT_KEYS = ("encoder_hidden_states", "encoder_attention_mask", "encoder_hidden_states_2", "encoder_attention_mask_2")
IMAGE_KEY = "image_embeds"


@dataclass(frozen=True)
class Conditioning:
    """Backbone conditioning: ``tensors`` keyed by the transformer's forward kwarg names
    (``encoder_hidden_states``, ``encoder_attention_mask``, ``encoder_hidden_states_2``,
    ``encoder_attention_mask_2``, optionally ``image_embeds``), batch 1, on the CPU; the sampler
    moves, casts and batch-expands them. Treat the tensors as read-only: cached ones are shared.
    """

    backbone: str
    prompt: str
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def with_image_embeds(self, image_embeds: torch.Tensor | None) -> "Conditioning":
        """The same text with a reference-image embedding [1, N, D] (None removes it)."""
        tensors = {key: value for key, value in self.tensors.items() if key != IMAGE_KEY}
        if image_embeds is not None:
            if image_embeds.ndim != 3:
                raise DreamActorError(f"image_embeds: expected [batch, tokens, dim], got shape {tuple(image_embeds.shape)}")
            tensors[IMAGE_KEY] = image_embeds
        return replace(self, tensors=tensors)

    def unconditional_like(self, negative: "Conditioning") -> "Conditioning":
        """``negative``'s text with this conditioning's image embedding: the CFG branch diffusers runs."""
        if negative.backbone != self.backbone:
            raise DreamActorError(f"negative: encoded for {negative.backbone}, the positive for {self.backbone}")
        return negative.with_image_embeds(self.tensors.get(IMAGE_KEY))
