"""Text conditioning for HunyuanVideo 1.5: the target-oriented prompt becomes the transformer's
text tensors, exactly as diffusers' ``HunyuanVideo15ImageToVideoPipeline`` makes them.

Two encoders, both run the pipeline's way:
- Qwen2.5-VL (text model): the prompt goes into the chat template with the pipeline's system
  message, padded to ``MLLM_MAX_TOKENS`` after the template; the hidden state three from the end
  (``hidden_states[-3]``) is taken and the template prefix (108 tokens with the real tokenizer) is
  cropped off, mask included.
- ByT5 (glyph): only quoted text in the prompt ('a sign that says "OPEN"') is encoded, as
  'Text "OPEN". ', padded to ``GLYPH_MAX_TOKENS``; without quotes the pipeline feeds zeros with an
  all-zero mask, and so do we.

The result is a ``Conditioning`` whose tensors are named after the transformer's forward
arguments, so the sampler passes them straight in. The negative (unconditional) one for CFG is the
negative prompt (default empty, as the pipeline's) encoded the same way, sharing the positive's
reference-image embedding (the pipeline gives both branches the same ``image_embeds``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from .embedding_cache import SHARED_CACHE, EmbeddingCache
from .errors import DreamActorError

BACKBONE = "hunyuan_video_15"

# diffusers' HunyuanVideo15 pipelines, verbatim (the backslash continuations keep the indentation).
SYSTEM_MESSAGE = "You are a helpful assistant. Describe the video by detailing the following aspects: \
        1. The main content and theme of the video. \
        2. The color, shape, size, texture, quantity, text, and spatial relationships of the objects. \
        3. Actions, events, behaviors temporal relationships, physical movement changes of the objects. \
        4. background environment, light, style and atmosphere. \
        5. camera angles, movements, and transitions used in the video."
MLLM_MAX_TOKENS = 1000
GLYPH_MAX_TOKENS = 256
HIDDEN_LAYERS_TO_SKIP = 2

TEXT_KEYS = ("encoder_hidden_states", "encoder_attention_mask", "encoder_hidden_states_2", "encoder_attention_mask_2")
IMAGE_KEY = "image_embeds"

_QUOTED = re.compile(r"\"(.*?)\"|“(.*?)”")
_SENTINEL = "\x00DREAMACTOR_PROMPT\x00"


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


def glyph_text(prompt: str) -> str | None:
    """The text for the ByT5 glyph encoder: each quoted span as 'Text "span". ', or None without quotes
    (diffusers' ``extract_glyph_texts``: duplicates dropped when there are several)."""
    spans = [double or curly for double, curly in _QUOTED.findall(prompt)]
    if len(spans) > 1:
        spans = list(dict.fromkeys(spans))
    return ". ".join(f'Text "{span}"' for span in spans) + ". " if spans else None


def template_prefix_length(tokenizer: Any, system_message: str = SYSTEM_MESSAGE) -> int:
    """How many tokens the chat template puts before the user's prompt (diffusers hard-codes 108, the
    value for the real Qwen2.5 tokenizer); computed so any tokenizer with the template works."""
    messages = [{"role": "system", "content": system_message}, {"role": "user", "content": _SENTINEL}]
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return len(tokenizer(rendered.split(_SENTINEL)[0], add_special_tokens=False).input_ids)


class HunyuanVideo15TextEncoder:
    """The Qwen2.5-VL text model and (optionally) the ByT5 glyph encoder with their tokenizers.

    ``identity`` names the loaded files, dtype and device: embeddings are cached under
    (identity, text), so re-running a graph with the same prompt never re-encodes.
    """

    backbone = BACKBONE

    def __init__(self, mllm: torch.nn.Module, tokenizer: Any, glyph: torch.nn.Module | None = None,
                 glyph_tokenizer: Any = None, identity: str = "", cache: EmbeddingCache | None = None) -> None:
        if getattr(tokenizer, "chat_template", None) is None:
            raise DreamActorError("text encoder: the Qwen2.5-VL tokenizer has no chat template "
                                  "(tokenizer_config.json without 'chat_template')")
        self.mllm, self.tokenizer = mllm.eval(), tokenizer
        self.glyph, self.glyph_tokenizer = (glyph.eval() if glyph is not None else None), glyph_tokenizer
        self.identity = identity or f"{type(mllm).__name__}@{id(mllm):x}"
        self.cache = cache if cache is not None else SHARED_CACHE
        self.crop_start = template_prefix_length(tokenizer)

    def encode(self, prompt: str) -> Conditioning:
        """The conditioning for one prompt (an empty prompt is the unconditional one)."""
        if not isinstance(prompt, str):
            raise DreamActorError(f"prompt: expected text, got {type(prompt).__name__}")
        glyph = glyph_text(prompt)
        if glyph is not None and self.glyph is None:
            raise DreamActorError(
                f"prompt: quoted text {glyph.strip()!r} asks for glyph rendering but no ByT5 glyph encoder "
                "is loaded: load one (byt5_small_glyphxl) or remove the quotation marks")
        tensors = dict(self.cache.get_or_compute((self.identity, "mllm", prompt), lambda: self._encode_mllm(prompt)))
        if self.glyph is not None:  # else the sampler's default: one masked-out glyph token
            tensors.update(self.cache.get_or_compute((self.identity, "glyph", glyph), lambda: self._encode_glyph(glyph)))
        return Conditioning(self.backbone, prompt, tensors)

    def encode_pair(self, prompt: str, negative_prompt: str = "") -> tuple[Conditioning, Conditioning]:
        """Positive and negative conditioning for classifier-free guidance."""
        return self.encode(prompt), self.encode(negative_prompt)

    @torch.inference_mode()
    def _encode_mllm(self, prompt: str) -> dict[str, torch.Tensor]:
        messages = [[{"role": "system", "content": SYSTEM_MESSAGE}, {"role": "user", "content": prompt or " "}]]
        tokens = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, padding="max_length",
            max_length=MLLM_MAX_TOKENS + self.crop_start, truncation=True, return_tensors="pt")
        device = _device_of(self.mllm)
        hidden = self.mllm(input_ids=tokens.input_ids.to(device), attention_mask=tokens.attention_mask.to(device),
                           output_hidden_states=True).hidden_states[-(HIDDEN_LAYERS_TO_SKIP + 1)]
        return {"encoder_hidden_states": hidden[:, self.crop_start:].cpu(),
                "encoder_attention_mask": tokens.attention_mask[:, self.crop_start:].cpu()}

    @torch.inference_mode()
    def _encode_glyph(self, glyph: str | None) -> dict[str, torch.Tensor]:
        if glyph is None:
            width = self.glyph.config.d_model
            return {"encoder_hidden_states_2": torch.zeros(1, GLYPH_MAX_TOKENS, width, dtype=self.glyph.dtype),
                    "encoder_attention_mask_2": torch.zeros(1, GLYPH_MAX_TOKENS, dtype=torch.int64)}
        tokens = self.glyph_tokenizer(glyph, padding="max_length", max_length=GLYPH_MAX_TOKENS, truncation=True,
                                      add_special_tokens=True, return_tensors="pt")
        device = _device_of(self.glyph)
        hidden = self.glyph(input_ids=tokens.input_ids.to(device),
                            attention_mask=tokens.attention_mask.float().to(device))[0]
        return {"encoder_hidden_states_2": hidden.cpu(), "encoder_attention_mask_2": tokens.attention_mask.cpu()}


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device
