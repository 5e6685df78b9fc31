"""ComfyUI fp8 "scaled" transformer files and fp8 weight storage (issues 13 and 15).

A tiny HunyuanVideo 1.5 transformer is written in ComfyUI's names and ComfyUI's fp8 convention
(every linear weight fp8 with a ``scale_weight``, fused q/k/v and the final layer's swapped
modulation included; ``scale_input`` keys and the ``scaled_fp8`` marker). The reference is the
same file dequantised (``fp8.float() * scale``) and written in float32: what ComfyUI computes with.

Tolerances. Kept-fp8 layers dequantise to exactly the reference weights (an fp8 value times a
float32 scale is one rounding in float32 either way), so outputs differ only by GEMM summation
order: ``numerics.assert_float32_close`` with the tiny model's reduction. Quantising a float32
file to fp8 (3 mantissa bits) rounds each weight by up to 2**-4 relative; over the tiny model the
output moves by about 1-3% (measured), so < 5% relative L2 is asserted, while a missing or wrong
scale moves it by 100% or more.
"""

from __future__ import annotations

import json

import pytest
import torch
from numerics import TINY_MODEL_REDUCTION, assert_float32_close
from safetensors.torch import load_file, save_file

from dreamactor_core.errors import DreamActorError
from dreamactor_core.models import fp8
from dreamactor_core.models.backbones import get_adapter
from dreamactor_core.models.loading import load_bytes, load_transformer
from dreamactor_core.testing.tiny_models import build_tiny_transformer, comfy_fp8_scaled, tiny_text_conditioning

ADAPTER = get_adapter("hunyuan_video_15")
PREFIX = "model.diffusion_model."


def _linear_weight(key: str, value: torch.Tensor) -> bool:
    return key.endswith(".weight") and value.ndim == 2 and "cond_type_embedding" not in key


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fp8")
    comfy = {PREFIX + k: v.contiguous() for k, v in
             ADAPTER.to_comfy_names(ADAPTER.to_original_names(build_tiny_transformer().state_dict())).items()}
    scaled = comfy_fp8_scaled(comfy, _linear_weight, prefix=PREFIX, scale_input=True)
    dequantised = {key: value.float() * scaled[key[: -len(".weight")] + ".scale_weight"]
                   if fp8.is_fp8(value) and value.numel() else value
                   for key, value in scaled.items() if not key.endswith(("scaled_fp8", ".scale_weight", ".scale_input"))}
    paths = {"fp8": folder / "tiny_hv15_fp8_scaled.safetensors", "dequantised": folder / "tiny_hv15_dequantised.safetensors",
             "plain": folder / "tiny_hv15.safetensors"}
    save_file(scaled, str(paths["fp8"]))
    save_file(dequantised, str(paths["dequantised"]))
    save_file(comfy, str(paths["plain"]))
    return paths


def _forward(model) -> torch.Tensor:
    hidden = torch.randn(1, 65, 3, 4, 8, generator=torch.Generator().manual_seed(3))
    conditioning = model.adapter.prepare_conditioning(model.transformer, tiny_text_conditioning(), 1,
                                                      torch.device("cpu"), torch.float32)
    with torch.no_grad():
        return model.adapter.predict_velocity(model.transformer, hidden, torch.tensor([700.0]), conditioning)


def test_scaled_file_stays_fp8_and_matches_the_dequantised_model(files):
    reference = _forward(load_transformer(files["dequantised"]))
    model = load_transformer(files["fp8"])
    layers = {name: m for name, m in model.transformer.named_modules() if isinstance(m, fp8.ScaledFP8Linear)}
    assert "transformer_blocks.0.attn.to_q" in layers and "norm_out.linear" in layers  # fused qkv, swapped halves
    assert all(m.weight.dtype == torch.float8_e4m3fn for m in layers.values())
    scale = load_file(str(files["fp8"]))[PREFIX + "double_blocks.0.img_attn.qkv.scale_weight"]
    for part in ("to_q", "to_k", "to_v"):  # the fused weight's one scale serves its three parts
        assert torch.equal(layers[f"transformer_blocks.0.attn.{part}"].scale_weight, scale)
    assert_float32_close(_forward(model), reference, TINY_MODEL_REDUCTION)


def test_scaled_file_dequantised_per_tensor_equals_the_dequantised_file(files):
    reference = load_transformer(files["dequantised"]).transformer.state_dict()
    loaded = load_transformer(files["fp8"], fp8_weights=False).transformer.state_dict()
    assert loaded.keys() == reference.keys()
    assert all(torch.equal(loaded[key], reference[key]) for key in reference)  # stored weights: exact


def test_fp8_storage_of_a_float_file_quantises_per_tensor(files):
    reference = _forward(load_transformer(files["plain"]))
    model = load_transformer(files["plain"], fp8_weights=True)
    layers = [m for m in model.transformer.modules() if isinstance(m, fp8.ScaledFP8Linear)]
    assert any(m.weight.dtype == torch.float8_e4m3fn for m in layers)
    # diffusers' full-precision layers (embedders, norms, modulation) stay float32
    assert model.transformer.x_embedder.proj.weight.dtype == torch.float32
    assert not isinstance(model.transformer.transformer_blocks[0].norm1.linear, fp8.ScaledFP8Linear)
    error = float((_forward(model) - reference).norm() / reference.norm())
    assert 0 < error < 0.05


def test_load_bytes_reads_the_header_only_and_matches_the_loaded_model(files):
    for path, mode in ((files["fp8"], None), (files["plain"], True), (files["plain"], None)):
        model = load_transformer(path, fp8_weights=mode).transformer
        held = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        assert load_bytes(path, "transformer", torch.float32, mode) == held


def test_unsupported_quantisation_is_refused_by_layer_name(files, tmp_path):
    state = load_file(str(files["fp8"]))
    layers = {"double_blocks.0.img_mlp.0": {"format": "nvfp4"}}
    bad = tmp_path / "nvfp4.safetensors"
    save_file(state, str(bad), metadata={"_quantization_metadata": json.dumps({"format_version": "1.0", "layers": layers})})
    with pytest.raises(DreamActorError, match=r"double_blocks\.0\.img_mlp\.0.*nvfp4"):
        load_transformer(bad)
    state[PREFIX + "double_blocks.0.img_mlp.0.scale_weight"] = torch.ones(4)  # block-wise scales
    blockwise = tmp_path / "blockwise.safetensors"
    save_file(state, str(blockwise))
    with pytest.raises(DreamActorError, match=r"img_mlp\.0\.scale_weight.*4 scales"):
        load_transformer(blockwise)
