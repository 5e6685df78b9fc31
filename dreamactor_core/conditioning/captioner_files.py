"""Loading the captioner's Qwen2.5-VL (vision tower + language model + LM head), offline, into
transformers' own ``Qwen2_5_VLForConditionalGeneration``.

Two sources:
- a Qwen2.5-VL-Instruct model folder (3B or 7B, e.g. ``models/LLM/Qwen2.5-VL-7B-Instruct``):
  ``config.json``, the weights, the tokenizer and ``preprocessor_config.json``, loaded with
  ``local_files_only`` and no remote code;
- one ``.safetensors`` file in ComfyUI's layout (``model.*`` language model, ``visual.*`` vision
  tower, ``lm_head.weight``; transformers' ``model.language_model.*``/``model.visual.*`` is read
  too), bf16 or fp8 "scaled" (a ``scale_weight`` per fp8 tensor). ComfyUI's ``Qwen25_7BVLI`` text
  encoder builds the vision tower but no LM head (``comfy/text_encoders/llama.py`` comments
  ``lm_head`` out), so a text-encoder file may lack it; without the head (7B: untied) or without
  the vision tower the file cannot caption, and the error says which file serves instead. The
  header decides, before any weight is read.

Single files load one tensor at a time into a meta-device model (the pack's ``models.streaming``;
fp8 linear weights stay fp8 with their scales, ``models.fp8``), so a load holds the model plus one
tensor, never a second copy. The config is
``<stem>.json`` beside the file or the shipped 7B-Instruct one; the tokenizer is a ``tokenizer``
folder beside the file or ``tokenizer_dir`` (ComfyUI's ``qwen25_tokenizer`` carries the vision
tokens); the image/video preprocessing is that folder's ``preprocessor_config.json`` or the
released one shipped in ``configs/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import DreamActorError, MissingModelFile
from ..models import checkpoints, fp8, streaming
from .encoder_files import CONFIG_DIR, config_for, file_identity, must_exist, transformers_class

FOLDER = "LLM"
SHIPPED_CONFIG = "qwen2_5_vl_7b_instruct.json"
SHIPPED_PREPROCESSOR = "qwen2_5_vl_preprocessor.json"
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
WHICH_FILES = ("a Qwen2.5-VL-Instruct model folder (e.g. Qwen/Qwen2.5-VL-7B-Instruct or -3B-Instruct, "
               "config.json + weights + tokenizer) in models/LLM/, or one .safetensors file holding the "
               "language model, the vision tower (visual.*) and the LM head (lm_head.weight)")
_LM_ANCHORS = ("model.layers.0.self_attn.q_proj.weight", "model.language_model.layers.0.self_attn.q_proj.weight")


@dataclass(frozen=True)
class FileContents:
    """What a single Qwen2.5-VL file holds, read from its header."""

    language_model: bool
    vision_tower: bool
    lm_head: bool
    fp8_scaled: bool


def inspect_file(path: Path) -> FileContents:
    """The parts a ``.safetensors`` file carries (header only: nothing is loaded)."""
    shapes, _ = checkpoints.read_header(path)
    keys = list(shapes)
    return FileContents(
        language_model=any(key in shapes for key in _LM_ANCHORS),
        vision_tower=any(key.startswith(("visual.", "model.visual.")) for key in keys),
        lm_head="lm_head.weight" in shapes,
        fp8_scaled=fp8.MARKER in shapes or any(key.endswith(fp8.SCALE_SUFFIXES) for key in keys))


def check_complete(path: Path, contents: FileContents, tied_head: bool) -> None:
    """Refuse a file that cannot caption, naming what it lacks and what serves instead."""
    if not contents.language_model:
        raise DreamActorError(f"'{path.name}' is {checkpoints.describe(list(checkpoints.read_header(path)[0]))}, "
                              f"not a Qwen2.5-VL model; the captioner needs {WHICH_FILES}")
    lacking = [part for part, present in (("the vision tower (visual.*)", contents.vision_tower),
                                          ("the LM head (lm_head.weight)", contents.lm_head or tied_head))
               if not present]
    if lacking:
        raise DreamActorError(
            f"'{path.name}' is a Qwen2.5-VL text encoder without {' and '.join(lacking)}: it encodes prompts "
            f"but cannot see or write. The captioner needs {WHICH_FILES}")


def _model_name(key: str) -> str:
    """A file key as ``Qwen2_5_VLForConditionalGeneration`` names it."""
    if key.startswith(("model.language_model.", "model.visual.", "lm_head.")):
        return key
    if key.startswith("visual."):
        return "model." + key
    if key.startswith("model."):
        return "model.language_model." + key[len("model."):]
    return key


def _stream_into(model: torch.nn.Module, path: Path, dtype: torch.dtype, device: str | torch.device) -> None:
    """Fill a meta-device model from ``path`` one tensor at a time with the pack's shared loader
    (``models.streaming``); fp8 linear weights stay fp8 with their scales (``models.fp8``)."""
    _, metadata = checkpoints.read_header(path)
    with streaming.deferred_file(path) as file_state:
        scales = {_model_name(key): scale for key, scale in fp8.take_scales(file_state, metadata, path.name).items()}
        state = {_model_name(key): tensor for key, tensor in file_state.items()}
        if model.config.tie_word_embeddings and "lm_head.weight" not in state:  # 3B: the head is the embedding
            state["lm_head.weight"] = state["model.language_model.embed_tokens.weight"]
        keep = fp8.plan_storage(model, state, scales, "keep")
        streaming.fill(model, state, dtype=dtype, device=device, keep=keep, source=path.name,
                       what=f"the configured Qwen2.5-VL (put a '{path.stem}.json' config beside it for other sizes)")


def _model_from_file(path: Path, dtype: torch.dtype, device: str | torch.device) -> torch.nn.Module:
    from accelerate import init_empty_weights

    config = transformers_class("Qwen2_5_VLConfig")(**config_for(path, SHIPPED_CONFIG))
    check_complete(path, inspect_file(path), bool(config.tie_word_embeddings))
    with init_empty_weights():
        model = transformers_class("Qwen2_5_VLForConditionalGeneration")(config)
    _stream_into(model, path, dtype, device)
    return model.eval().requires_grad_(False)


def _model_from_folder(folder: Path, dtype: torch.dtype, device: str | torch.device) -> torch.nn.Module:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise MissingModelFile("config.json", FOLDER, hint=f"'{folder}' is not a transformers model folder; "
                                                            f"the captioner needs {WHICH_FILES}")
    model_type = json.loads(config_path.read_text()).get("model_type")
    if model_type != "qwen2_5_vl":
        raise DreamActorError(f"'{folder.name}' is a '{model_type}' model, not Qwen2.5-VL (model_type "
                              f"'qwen2_5_vl'); the captioner needs {WHICH_FILES}")
    model = transformers_class("Qwen2_5_VLForConditionalGeneration").from_pretrained(
        str(folder), dtype=dtype, local_files_only=True)
    return model.to(device).eval().requires_grad_(False)


def _tokenizer_folder(candidates: list[Path | str | None], model_path: Path) -> Path:
    for candidate in candidates:
        if candidate is not None and (Path(candidate) / "tokenizer_config.json").is_file():
            return Path(candidate)
    searched = [str(candidate) for candidate in candidates if candidate is not None]
    raise MissingModelFile("tokenizer_config.json", FOLDER,
                           hint=f"no Qwen2.5 tokenizer for '{model_path.name}' (vocab.json, merges.txt, "
                                f"tokenizer_config.json; ComfyUI ships one in comfy/text_encoders/qwen25_tokenizer); "
                                f"searched {searched}")


def _processor(tokenizer_folder: Path) -> Any:
    """Qwen2.5-VL's processor from a tokenizer folder; image and video preprocessing from its
    ``preprocessor_config.json`` or the released settings."""
    beside = tokenizer_folder / "preprocessor_config.json"
    settings = json.loads((beside if beside.is_file() else CONFIG_DIR / SHIPPED_PREPROCESSOR).read_text())
    settings = {key: value for key, value in settings.items()
                if key in ("patch_size", "temporal_patch_size", "merge_size", "min_pixels", "max_pixels",
                           "image_mean", "image_std")}
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tokenizer = transformers_class("Qwen2Tokenizer").from_pretrained(str(tokenizer_folder), local_files_only=True)
    return transformers_class("Qwen2_5_VLProcessor")(
        image_processor=Qwen2VLImageProcessor(**settings), tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**settings, do_sample_frames=False, cap_pixels_per_frame=True))


def _check_tokenizer(processor: Any, source: Path) -> None:
    vocab = processor.tokenizer.get_vocab()
    absent = [token for token in VISION_TOKENS if token not in vocab]
    if absent or getattr(processor.tokenizer, "chat_template", None) is None:
        raise DreamActorError(f"the tokenizer for '{source.name}' is not Qwen2.5-VL's: "
                              f"{'no chat template' if not absent else 'it lacks ' + ', '.join(absent)}")


def load_captioner_parts(path: str | Path, *, tokenizer_dir: str | Path | None = None,
                         dtype: torch.dtype = torch.float32,
                         device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Any, str]:
    """(model, processor, identity) from a Qwen2.5-VL-Instruct folder or single file (see module doc)."""
    path = Path(path)
    must_exist(path, FOLDER)
    if path.is_dir():
        model = _model_from_folder(path, dtype, device)
        processor = _processor(_tokenizer_folder([path, tokenizer_dir], path))
    else:
        model = _model_from_file(path, dtype, device)
        processor = _processor(_tokenizer_folder([path.parent / "tokenizer", tokenizer_dir], path))
    _check_tokenizer(processor, path)
    return model, processor, f"{file_identity(path)}|{dtype}|{device}"
