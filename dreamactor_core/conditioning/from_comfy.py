"""ComfyUI's native HunyuanVideo 1.5 CONDITIONING -> the pack's ``Conditioning``.

What ComfyUI 0.3.75 emits (``CLIPTextEncode`` with a ``hunyuan_video_15`` CLIP, see
``comfy/text_encoders/hunyuan_image.py`` and ``qwen_image.py``): ``[[cond, extras]]`` where
- ``cond`` [1, L, 3584]: Qwen2.5-VL ``hidden_states[-3]`` (ComfyUI's ``layer_idx=-3``, the same
  layer as diffusers' ``num_hidden_layers_to_skip=2``), cropped after ``<|im_start|>user\\n`` and
  ending with ``<|im_end|>\\n<|im_start|>assistant\\n``: the same token span diffusers keeps, but
  unpadded (L = the real tokens), so padding is not needed and the mask is all ones.
- ``extras["attention_mask"]`` only when some token is masked (never for one prompt);
- ``extras["conditioning_byt5small"]`` [1, n, 1472] only when the prompt quotes text, unpadded;
- ``extras["pooled_output"]``: None for this encoder (HunyuanVideo 1.5 takes no pooled vector);
- ``extras["clip_vision_output"]`` after ComfyUI's ``HunyuanVideo15ImageToVideo`` node: its
  ``last_hidden_state`` is the SigLIP reference embedding (diffusers' ``image_embeds``).
What does not match: ComfyUI's system message separates the five aspects with newlines where
diffusers' (ours) has runs of spaces, so the same prompt gives close but not identical values;
``concat_latent_image``/``concat_mask`` are ignored (the DreamActor canvas replaces them).
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import DreamActorError
from .text_encoder import BACKBONE
from .types import IMAGE_KEY, Conditioning


def from_comfy_conditioning(conditioning: Any, prompt: str = "") -> Conditioning:
    """Convert a one-entry ComfyUI CONDITIONING made for HunyuanVideo 1.5."""
    if not isinstance(conditioning, (list, tuple)) or not conditioning:
        raise DreamActorError(f"conditioning: expected ComfyUI CONDITIONING [[tensor, dict]], got {type(conditioning).__name__}")
    if len(conditioning) != 1:
        raise DreamActorError(f"conditioning: {len(conditioning)} combined entries; encode one prompt "
                              "(combined or area conditioning has no meaning for the DreamActor canvas)")
    entry = conditioning[0]
    if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], torch.Tensor)
            and isinstance(entry[1], dict)):
        raise DreamActorError("conditioning: expected an entry [tensor, dict] from a ComfyUI text encoder")
    cond, extras = entry
    _check_tokens("conditioning", cond)
    mask = extras.get("attention_mask")
    tensors = {"encoder_hidden_states": cond,
               "encoder_attention_mask": _mask("attention_mask", mask, cond)}
    glyph = extras.get("conditioning_byt5small")
    if glyph is not None:
        _check_tokens("conditioning_byt5small", glyph)
        tensors["encoder_hidden_states_2"] = glyph
        tensors["encoder_attention_mask_2"] = torch.ones(glyph.shape[:2], dtype=torch.int64)
    vision = extras.get("clip_vision_output")
    if vision is not None:
        embeds = getattr(vision, "last_hidden_state", None)
        if not isinstance(embeds, torch.Tensor):
            raise DreamActorError("conditioning: clip_vision_output has no last_hidden_state tensor")
        tensors[IMAGE_KEY] = embeds
    return Conditioning(BACKBONE, prompt, tensors)


def _check_tokens(name: str, tensor: torch.Tensor) -> None:
    if tensor.ndim != 3 or tensor.shape[1] == 0:
        raise DreamActorError(f"{name}: expected [batch, tokens, width] text embeddings, got shape {tuple(tensor.shape)}")


def _mask(name: str, mask: Any, cond: torch.Tensor) -> torch.Tensor:
    if mask is None:
        return torch.ones(cond.shape[:2], dtype=torch.int64)
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(cond.shape[:2]):
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise DreamActorError(f"{name}: expected a [batch, tokens] mask matching the embeddings {tuple(cond.shape[:2])}, got {shape}")
    return mask.to(torch.int64)
