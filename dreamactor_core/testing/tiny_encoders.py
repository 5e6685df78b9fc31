"""Tiny random-weight HunyuanVideo 1.5 encoders written as real files (tests, demo, CLI default).

The same transformers classes diffusers' pipeline uses (Qwen2_5_VLTextModel, T5EncoderModel,
SiglipVisionModel), widths matching the tiny transformer of ``dreamactor_core.tiny_models``
(text 32, glyph 16, image 16), and a byte-level Qwen2 tokenizer built here with the ``tokenizers``
alphabet and a Qwen-style chat template: nothing downloaded, encodes in well under a second.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from .tiny_models import comfy_fp8_scaled

QWEN_CONFIG = dict(vocab_size=259, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                   num_key_value_heads=1, rms_norm_eps=1e-6, bos_token_id=None, eos_token_id=None,
                   rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]})
T5_CONFIG = dict(vocab_size=384, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
                 feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False)
SIGLIP_CONFIG = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                     image_size=32, patch_size=8)
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def write_qwen_tokenizer(folder: Path) -> Path:
    """A byte-level BPE Qwen2Tokenizer without merges: one token per byte, plus the chat specials."""
    from tokenizers.pre_tokenizers import ByteLevel

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {char: index for index, char in enumerate(sorted(ByteLevel.alphabet()))}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    added = {str(len(vocab) + i): {"content": token, "special": True, "lstrip": False, "rstrip": False,
                                   "normalized": False, "single_word": False} for i, token in enumerate(SPECIAL_TOKENS)}
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2Tokenizer", "pad_token": "<|endoftext|>", "eos_token": "<|im_end|>",
        "unk_token": None, "bos_token": None, "chat_template": CHAT_TEMPLATE, "added_tokens_decoder": added}))
    return folder


def tiny_models(seed: int = 0) -> dict[str, torch.nn.Module]:
    from transformers import (
        Qwen2_5_VLTextConfig,
        Qwen2_5_VLTextModel,
        SiglipVisionConfig,
        SiglipVisionModel,
        T5Config,
        T5EncoderModel,
    )

    torch.manual_seed(seed)
    return {"qwen": Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(**QWEN_CONFIG)).eval(),
            "byt5": T5EncoderModel(T5Config(**T5_CONFIG)).eval(),
            "siglip": SiglipVisionModel(SiglipVisionConfig(**SIGLIP_CONFIG)).eval()}


def write_tiny_encoders(text_dir: Path, vision_dir: Path) -> dict[str, Path]:
    """In ComfyUI's text_encoders/ and clip_vision/ folders: a diffusers pipeline folder and single
    files of the same weights; the Qwen file also in fp8 with per-tensor scales, as Comfy-Org ships it."""
    from transformers import ByT5Tokenizer, SiglipImageProcessor

    models = tiny_models()
    pipeline = text_dir / "tiny_hunyuan_video_15_pipeline"
    models["qwen"].save_pretrained(pipeline / "text_encoder")
    write_qwen_tokenizer(pipeline / "tokenizer")
    models["byt5"].save_pretrained(pipeline / "text_encoder_2")
    ByT5Tokenizer().save_pretrained(pipeline / "tokenizer_2")
    models["siglip"].save_pretrained(pipeline / "image_encoder")
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(pipeline / "feature_extractor")

    text_dir.mkdir(parents=True, exist_ok=True)
    vision_dir.mkdir(parents=True, exist_ok=True)
    qwen = {f"model.{key}": value.contiguous() for key, value in models["qwen"].state_dict().items()}
    qwen["lm_head.weight"] = torch.zeros(QWEN_CONFIG["vocab_size"], QWEN_CONFIG["hidden_size"])
    qwen["visual.blocks.0.norm1.weight"] = torch.ones(4)  # the vision tower a full Qwen2.5-VL file carries
    paths = {"pipeline": pipeline, "qwen": text_dir / "tiny_qwen.safetensors",
             "qwen_fp8": text_dir / "tiny_qwen_fp8.safetensors", "byt5": text_dir / "tiny_byt5.safetensors",
             "siglip": vision_dir / "tiny_siglip.safetensors", "tokenizer": write_qwen_tokenizer(text_dir / "tokenizer")}
    save_file(qwen, paths["qwen"])
    save_file(_fp8_scaled(qwen), paths["qwen_fp8"])
    byt5 = {key: value.clone().contiguous() for key, value in models["byt5"].state_dict().items()
            if key != "encoder.embed_tokens.weight"}  # files keep the tied embedding once
    save_file(byt5, paths["byt5"])
    save_file({key: value.contiguous() for key, value in models["siglip"].state_dict().items()}, paths["siglip"])
    for name, config in (("qwen", QWEN_CONFIG), ("qwen_fp8", QWEN_CONFIG), ("byt5", T5_CONFIG), ("siglip", SIGLIP_CONFIG)):
        paths[name].with_suffix(".json").write_text(json.dumps(config))
    return paths


def _fp8_scaled(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The Qwen weights in ComfyUI's fp8 "scaled" convention (projection weights fp8 with scales)."""
    return comfy_fp8_scaled(state_dict, lambda key, value: key.endswith("proj.weight"))
