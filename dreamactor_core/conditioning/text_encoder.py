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

Loading (``load_text_encoder``), offline, from a diffusers folder or single files: Developers keep the diffusers pipeline folder (``text_encoder/``, ``tokenizer/``, ``text_encoder_2/``,
``tokenizer_2/``). Artists keep single files in ComfyUI's ``text_encoders/`` folder (Comfy-Org's
``qwen_2.5_vl_7b*.safetensors`` with the vision tower and LM head, optionally fp8 with per-tensor
scales, and ``byt5_small_glyphxl_fp16.safetensors``). Single files load into the same transformers
classes the diffusers pipeline uses (``Qwen2_5_VLTextModel``, ``T5EncoderModel``) with a config
found beside the file (``<file stem>.json``) or shipped in the pack, and tokenizer files found
beside the file or passed in (ComfyUI ships both tokenizers in ``comfy/text_encoders/``). Nothing
is ever fetched: every ``from_pretrained`` is ``local_files_only`` and no remote code is trusted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ..errors import DreamActorError, MissingModelFile
from ..models import memory
from ..models.precision import encoder_dtype
from .embedding_cache import SHARED_CACHE, EmbeddingCache
from .encoder_files import (
    build,
    config_for,
    file_identity,
    file_submodel,
    from_pretrained,
    must_exist,
    transformers_class,
)
from .types import Conditioning

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


_QUOTED = re.compile(r"\"(.*?)\"|“(.*?)”")
_SENTINEL = "\x00DREAMACTOR_PROMPT\x00"


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
        with memory.resident(self.mllm, "text encoder (Qwen2.5-VL)") as device:
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
        with memory.resident(self.glyph, "glyph encoder (ByT5)") as device:
            hidden = self.glyph(input_ids=tokens.input_ids.to(device),
                                attention_mask=tokens.attention_mask.float().to(device))[0]
        return {"encoder_hidden_states_2": hidden.cpu(), "encoder_attention_mask_2": tokens.attention_mask.cpu()}


FOLDER = "text_encoders"
_MLLM_ANCHOR = "layers.0.self_attn.q_proj.weight"
_GLYPH_ANCHOR = "encoder.block.0.layer.0.SelfAttention.q.weight"


def load_text_encoder(path: str | Path, glyph_path: str | Path | None = None, *,
                      tokenizer_dir: str | Path | None = None, glyph_tokenizer_dir: str | Path | None = None,
                      dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                      compute_device: str | torch.device | None = None) -> HunyuanVideo15TextEncoder:
    """HunyuanVideo 1.5's text encoders from local files.

    ``device``: where the weights are put; ``compute_device`` (default ``device``): where they will
    compute, which decides the dtype: ``dtype`` on an accelerator, fp32 on the CPU
    (``models.precision.encoder_dtype``). A single file is read one tensor at a time; an fp8
    "scaled" file (Comfy-Org's ``qwen_2.5_vl_7b_fp8_scaled``) stays fp8, each layer dequantised as it
    runs, and its vision tower and LM head are never read.

    ``path``: a diffusers pipeline folder (its ``text_encoder_2`` is the glyph encoder unless
    ``glyph_path`` is given) or a Qwen2.5-VL ``.safetensors`` file. ``glyph_path``: a ByT5 folder or
    file, optional (without it, prompts with quoted text are refused). Tokenizers next to the model
    win (the pipeline's ``tokenizer``/``tokenizer_2``, a ``tokenizer``/``tokenizer_2`` folder beside a
    single file); the ``*_tokenizer_dir`` arguments are the fallback (ComfyUI ships both).
    """
    path = Path(path)
    must_exist(path, FOLDER)
    dtype = encoder_dtype(dtype, device if compute_device is None else compute_device)
    pipeline_root = path.is_dir() and (path / "text_encoder").is_dir()
    if pipeline_root:
        mllm = from_pretrained("Qwen2_5_VLTextModel", path / "text_encoder", dtype, device, FOLDER)
        tokenizer = _qwen_tokenizer([path / "tokenizer", tokenizer_dir], path)
        if glyph_path is None and (path / "text_encoder_2").is_dir():
            glyph_path = path / "text_encoder_2"
    elif path.is_dir():
        mllm = from_pretrained("Qwen2_5_VLTextModel", path, dtype, device, FOLDER)
        tokenizer = _qwen_tokenizer([path, path / "tokenizer", tokenizer_dir], path)
    else:
        mllm = _mllm_from_file(path, dtype, device)
        tokenizer = _qwen_tokenizer([path.parent / "tokenizer", tokenizer_dir], path)
    glyph = glyph_tokenizer = None
    if glyph_path is not None:
        glyph_path = Path(glyph_path)
        must_exist(glyph_path, FOLDER)
        glyph = (from_pretrained("T5EncoderModel", glyph_path, dtype, device, FOLDER) if glyph_path.is_dir()
                 else _glyph_from_file(glyph_path, dtype, device))
        glyph_tokenizer = _glyph_tokenizer(glyph_tokenizer_dir, glyph_path)
    identity = "|".join([file_identity(path), file_identity(glyph_path) if glyph_path else "-", str(dtype), str(device)])
    return HunyuanVideo15TextEncoder(mllm, tokenizer, glyph, glyph_tokenizer, identity=identity)


def _qwen_tokenizer(candidates: list[Path | str | None], model_path: Path) -> Any:
    for candidate in candidates:
        if candidate is not None and (Path(candidate) / "tokenizer_config.json").is_file():
            return transformers_class("Qwen2Tokenizer").from_pretrained(str(candidate), local_files_only=True)
    searched = [str(candidate) for candidate in candidates if candidate is not None]
    raise MissingModelFile("tokenizer_config.json", FOLDER,
                           hint=f"no Qwen2.5 tokenizer for '{model_path.name}' (vocab.json, merges.txt, "
                                f"tokenizer_config.json); searched {searched}")


def _glyph_tokenizer(folder: Path | str | None, glyph_path: Path) -> Any:
    """ByT5 is byte-level: its tokenizer needs files only for the glyph model's extra color/font
    tokens, so a missing folder falls back to the plain byte tokenizer (same ids for plain text)."""
    byt5 = transformers_class("ByT5Tokenizer")
    for candidate in (glyph_path if glyph_path.is_dir() else None, glyph_path.parent / "tokenizer_2", folder):
        if candidate is not None and (Path(candidate) / "tokenizer_config.json").is_file():
            return byt5.from_pretrained(str(candidate), local_files_only=True)
    return byt5()


def _mllm_from_file(path: Path, dtype: torch.dtype, device: str | torch.device) -> torch.nn.Module:
    with file_submodel(path, _MLLM_ANCHOR, "a Qwen2.5-VL text encoder") as (state, scales):
        state = {key: value for key, value in state.items() if not key.startswith(("visual.", "lm_head."))}
        return build("Qwen2_5_VLTextModel", "Qwen2_5_VLTextConfig", config_for(path, "qwen2_5_vl_7b_text.json"),
                     state, path, device, dtype, scales)


def _glyph_from_file(path: Path, dtype: torch.dtype, device: str | torch.device) -> torch.nn.Module:
    with file_submodel(path, _GLYPH_ANCHOR, "a ByT5 glyph encoder") as (state, scales):
        state = {key: value for key, value in state.items() if not key.startswith("decoder.")}
        shared = state.get("shared.weight", state.get("encoder.embed_tokens.weight"))
        if shared is not None:  # T5 ties the two; files keep either
            state.setdefault("shared.weight", shared)
            state.setdefault("encoder.embed_tokens.weight", shared)
        return build("T5EncoderModel", "T5Config", config_for(path, "byt5_small_glyph.json"), state, path, device,
                     dtype, scales)
