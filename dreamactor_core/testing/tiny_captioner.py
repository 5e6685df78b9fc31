"""A tiny random-weight Qwen2.5-VL-Instruct of transformers' real classes, written as a model folder
and as ComfyUI-layout single files (bf16-free fp32, fp8 "scaled", and the incomplete text-encoder
kinds), for the captioner's and the judge's tests.

``script_answers`` turns the random model into one that answers a fixed text whatever it is shown,
through its real forward and ``generate``: every block's output projection is zeroed, so the last
position's hidden state is its own token's embedding, and the LM head maps each token of the answer
to the next (one-hot embeddings, so the chain is exact). The answer may not repeat a character.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from .tiny_encoders import _fp8_scaled, write_qwen_tokenizer

VISION_SPECIALS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
PATCH = 4  # tiny patches: a 32 x 32 picture is 8 x 8 patches, 16 tokens after the 2 x 2 merge
PREPROCESSOR = {"patch_size": PATCH, "temporal_patch_size": 2, "merge_size": 2, "min_pixels": 16 * 16,
                "max_pixels": 48 * 48, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}


def write_vl_tokenizer(folder: Path) -> dict[str, int]:
    """The tiny byte-level Qwen tokenizer with Qwen2.5-VL's vision tokens added; their ids."""
    write_qwen_tokenizer(folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    added = config["added_tokens_decoder"]
    first = max(int(index) for index in added) + 1
    ids = {}
    for offset, token in enumerate(VISION_SPECIALS):
        added[str(first + offset)] = {**next(iter(added.values())), "content": token}
        ids[token] = first + offset
    config_path.write_text(json.dumps(config))
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
    ids.update({token: int(index) for index, entry in added.items() for token in [entry["content"]]})
    return ids


def tiny_vl_config(ids: dict[str, int]) -> dict:
    text = dict(vocab_size=272, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, bos_token_id=None, eos_token_id=ids["<|im_end|>"],
                pad_token_id=ids["<|endoftext|>"],
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]})
    vision = dict(depth=2, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=32, patch_size=PATCH,
                  spatial_merge_size=2, temporal_patch_size=2, window_size=4 * PATCH, fullatt_block_indexes=[1])
    return dict(model_type="qwen2_5_vl", text_config=text, vision_config=vision, tie_word_embeddings=False,
                image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
                bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])


def build_tiny_vl(config: dict, seed: int = 0) -> torch.nn.Module:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    return Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**config)).eval()


def comfy_layout(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict under ComfyUI's Qwen2.5-VL names: ``model.*``, ``visual.*``, ``lm_head.weight``."""
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("model.language_model."):
            key = "model." + key[len("model.language_model."):]
        elif key.startswith("model.visual."):
            key = key[len("model."):]
        out[key] = value.clone().contiguous()
    return out


def write_tiny_captioner(root: Path, seed: int = 0) -> dict[str, Path]:
    """Under ``root``: ``LLM/tiny-qwen2.5-vl`` (a model folder) and, in ``text_encoders/``, the same
    weights as single files with a ``tokenizer`` folder beside them: ``tiny_qwen_vl.safetensors``
    (complete), ``tiny_qwen_vl_fp8_scaled`` (fp8 with per-tensor scales), ``tiny_qwen_vl_no_head``
    and ``tiny_qwen_vl_text_only`` (what a text-encoder file may hold)."""
    text_dir = root / "text_encoders"
    ids = write_vl_tokenizer(text_dir / "tokenizer")
    config = tiny_vl_config(ids)
    model = build_tiny_vl(config, seed)
    folder = root / "LLM" / "tiny-qwen2.5-vl"
    model.save_pretrained(folder)
    write_vl_tokenizer(folder)
    state = comfy_layout(model)
    files = {
        "folder": folder, "tokenizer": text_dir / "tokenizer",
        "file": text_dir / "tiny_qwen_vl.safetensors",
        "fp8": text_dir / "tiny_qwen_vl_fp8_scaled.safetensors",
        "no_head": text_dir / "tiny_qwen_vl_no_head.safetensors",
        "text_only": text_dir / "tiny_qwen_vl_text_only.safetensors",
    }
    save_file(state, files["file"])
    save_file(_fp8_scaled(state), files["fp8"])
    save_file({k: v for k, v in state.items() if k != "lm_head.weight"}, files["no_head"])
    save_file({k: v for k, v in state.items() if k.startswith("model.")}, files["text_only"])
    for name in ("file", "fp8", "no_head", "text_only"):
        files[name].with_suffix(".json").write_text(json.dumps(config))
    return files


@torch.no_grad()
def script_answers(model: torch.nn.Module, tokenizer, answer: str, after: str = "\n") -> None:
    """Make ``model`` answer ``answer`` (then stop) after the prompt's last text ``after`` (the chat
    template's assistant line ends with a newline). See the module docstring."""
    chain = tokenizer.encode(after + answer, add_special_tokens=False) + [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    sources = chain[:-1]
    language = model.model.language_model
    hidden = language.config.hidden_size
    if len(set(sources)) != len(sources) or len(sources) > hidden:
        raise ValueError(f"script_answers: {answer!r} repeats a token or is longer than {hidden - 1} tokens")
    for layer in language.layers:
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()
    language.norm.weight.fill_(1.0)
    model.lm_head.weight.zero_()
    for index, (source, target) in enumerate(zip(sources, chain[1:])):
        basis = torch.zeros(hidden)
        basis[index] = 1.0
        language.embed_tokens.weight[source] = basis
        model.lm_head.weight[target] = basis
