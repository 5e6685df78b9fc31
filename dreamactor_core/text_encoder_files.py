"""Loading HunyuanVideo 1.5's text encoders offline, from a diffusers folder or single files.

Developers keep the diffusers pipeline folder (``text_encoder/``, ``tokenizer/``, ``text_encoder_2/``,
``tokenizer_2/``). Artists keep single files in ComfyUI's ``text_encoders/`` folder (Comfy-Org's
``qwen_2.5_vl_7b*.safetensors`` with the vision tower and LM head, optionally fp8 with per-tensor
scales, and ``byt5_small_glyphxl_fp16.safetensors``). Single files load into the same transformers
classes the diffusers pipeline uses (``Qwen2_5_VLTextModel``, ``T5EncoderModel``) with a config
found beside the file (``<file stem>.json``) or shipped in the pack, and tokenizer files found
beside the file or passed in (ComfyUI ships both tokenizers in ``comfy/text_encoders/``). Nothing
is ever fetched: every ``from_pretrained`` is ``local_files_only`` and no remote code is trusted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from . import checkpoints
from .encoder_files import build, config_for, file_identity, from_pretrained, must_exist, submodel, transformers_class
from .errors import MissingModelFile
from .text import HunyuanVideo15TextEncoder

FOLDER = "text_encoders"
_MLLM_ANCHOR = "layers.0.self_attn.q_proj.weight"
_GLYPH_ANCHOR = "encoder.block.0.layer.0.SelfAttention.q.weight"
# fp8 "scaled" checkpoints (ComfyUI): a per-tensor scale beside each weight, plus marker keys.
_SCALE_SUFFIXES = (".scale_weight", ".weight_scale")
_DROPPED_SUFFIXES = (".scale_input", ".input_scale", ".comfy_quant")


def load_text_encoder(path: str | Path, glyph_path: str | Path | None = None, *,
                      tokenizer_dir: str | Path | None = None, glyph_tokenizer_dir: str | Path | None = None,
                      dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> HunyuanVideo15TextEncoder:
    """HunyuanVideo 1.5's text encoders from local files.

    ``path``: a diffusers pipeline folder (its ``text_encoder_2`` is the glyph encoder unless
    ``glyph_path`` is given) or a Qwen2.5-VL ``.safetensors`` file. ``glyph_path``: a ByT5 folder or
    file, optional (without it, prompts with quoted text are refused). Tokenizers next to the model
    win (the pipeline's ``tokenizer``/``tokenizer_2``, a ``tokenizer``/``tokenizer_2`` folder beside a
    single file); the ``*_tokenizer_dir`` arguments are the fallback (ComfyUI ships both).
    """
    path = Path(path)
    must_exist(path, FOLDER)
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


def _dequantized(state_dict: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Floating tensors in ``dtype``; fp8 weights multiplied by their scales; marker keys dropped."""
    scales = {key[: -len(suffix)] + ".weight": value for key, value in state_dict.items()
              for suffix in _SCALE_SUFFIXES if key.endswith(suffix)}
    out = {}
    for key, value in state_dict.items():
        if key == "scaled_fp8" or key.endswith(_SCALE_SUFFIXES + _DROPPED_SUFFIXES):
            continue
        if value.is_floating_point():
            value = value.float() * scales[key].float() if key in scales else value
            value = value.to(dtype)
        out[key] = value
    return out


def _mllm_from_file(path: Path, dtype: torch.dtype, device: str | torch.device) -> torch.nn.Module:
    state_dict = submodel(_dequantized(checkpoints.load_state_dict(path), dtype), _MLLM_ANCHOR, path,
                           "a Qwen2.5-VL text encoder")
    state_dict = {key: value for key, value in state_dict.items() if not key.startswith(("visual.", "lm_head."))}
    return build("Qwen2_5_VLTextModel", "Qwen2_5_VLTextConfig", config_for(path, "qwen2_5_vl_7b_text.json"),
                  state_dict, path, device)


def _glyph_from_file(path: Path, dtype: torch.dtype, device: str | torch.device) -> torch.nn.Module:
    state_dict = submodel(_dequantized(checkpoints.load_state_dict(path), dtype), _GLYPH_ANCHOR, path,
                           "a ByT5 glyph encoder")
    state_dict = {key: value for key, value in state_dict.items() if not key.startswith("decoder.")}
    shared = state_dict.get("shared.weight", state_dict.get("encoder.embed_tokens.weight"))
    if shared is not None:  # T5 ties the two; files keep either
        state_dict.setdefault("shared.weight", shared)
        state_dict.setdefault("encoder.embed_tokens.weight", shared)
    return build("T5EncoderModel", "T5Config", config_for(path, "byt5_small_glyph.json"), state_dict, path, device)
