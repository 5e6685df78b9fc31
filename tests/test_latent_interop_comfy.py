"""One meaning of LATENT: the pack's nodes and core VAE nodes mix in any order (raw VAE latents
everywhere; the model's latent format scales inside).

ComfyUI builds the HunyuanVideo 1.5 VAE at full width only (1.26 B parameters, fixed channels in
``comfy/sd.py``), so a tiny HV1.5 VAE cannot load through core VAELoader; the Wan 2.1 VAE's width
comes from the file, so a tiny one written by ComfyUI's own class loads in both core VAELoader and the
pack's Load VAE. Its latent format (per-channel mean and std) is a stricter test of the convention
than HV1.5's single scale; HV1.5's scale is covered by tests/test_native_comfy.py and
test_engine_comfy.py. Both VAEs are causal in time (no all-frame attention), so whole clips compare.
"""

from __future__ import annotations

import pytest
import torch
from test_native_comfy import _wan_vae_file

from dreamactor_core.testing.tiny_models import tiny_text_conditioning, write_tiny_models

pytestmark = pytest.mark.comfy
TILES = {"tile_frames": 16, "tile_overlap_frames": 4, "tile_size": 0}


def _graph() -> dict:
    sampler = {"model": ["model", 0], "positive": ["positive", 0], "mask": ["mask", 0], "seed": 3, "steps": 2,
               "cfg": 1.0, "shift": 3.0, "solver": "euler", "denoise": 1.0}
    graph = {
        "core_vae": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_wan21_vae.safetensors"}},
        "pack_vae": {"class_type": "DreamActorM2_LoadVAE", "inputs": {"vae_name": "tiny_wan21_vae.safetensors",
                                                                      "precision": "fp32"}},
        "model": {"class_type": "DreamActorM2_LoadModel", "inputs": {"model_name": "tiny_wan_i2v.safetensors",
                                                                     "precision": "fp32"}},
        "canvas": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "lat_canvas"}},
        "mask": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "lat_mask"}},
        "positive": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "lat_positive"}},
        "pack_encode": {"class_type": "DreamActorM2_EncodeCanvas", "inputs": {
            "vae": ["pack_vae", 0], "canvas": ["canvas", 0], **TILES}},
        "core_encode": {"class_type": "VAEEncode", "inputs": {"pixels": ["canvas", 0], "vae": ["core_vae", 0]}},
        "sample_pack": {"class_type": "DreamActorM2_Sampler", "inputs": {**sampler, "canvas_latent": ["pack_encode", 0]}},
        "sample_core": {"class_type": "DreamActorM2_Sampler", "inputs": {**sampler, "canvas_latent": ["core_encode", 0]}},
    }
    for name, latent in (("encoded", "pack_encode"), ("sampled", "sample_pack")):
        graph[f"pack_decode_{name}"] = {"class_type": "DreamActorM2_DecodeLatent", "inputs": {
            "vae": ["pack_vae", 0], "samples": [latent, 0], **TILES}}
        graph[f"core_decode_{name}"] = {"class_type": "VAEDecode", "inputs": {"samples": [latent, 0],
                                                                              "vae": ["core_vae", 0]}}
    probes = ("pack_encode", "core_encode", "sample_pack", "sample_core", "pack_decode_encoded",
              "core_decode_encoded", "pack_decode_sampled", "core_decode_sampled")
    for node in probes:
        graph[f"probe_{node}"] = {"class_type": "DreamActorTest_Probe", "inputs": {"value": [node, 0], "name": node}}
    return graph


@pytest.fixture(scope="module")
def values(comfy):
    _wan_vae_file(comfy.models_dir / "vae" / "tiny_wan21_vae.safetensors")
    write_tiny_models(comfy.models_dir, backbone="wan_i2v")
    canvas = torch.rand(5, 64, 128, 3, generator=torch.Generator().manual_seed(4))
    mask = torch.ones(5, 64, 128)
    mask[1:, :, :64] = 0
    comfy.feed("lat_canvas", canvas)
    comfy.feed("lat_mask", mask)
    comfy.feed("lat_positive", tiny_text_conditioning("wan_i2v"))
    comfy.run(_graph())
    names = ("pack_encode", "core_encode", "sample_pack", "sample_core", "pack_decode_encoded",
             "core_decode_encoded", "pack_decode_sampled", "core_decode_sampled")
    out = {name: comfy.probe(name) for name in names}
    return {name: value["samples"] if isinstance(value, dict) else value for name, value in out.items()}


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


# Both VAEs run the same fp32 convolutions in other orders (ComfyUI's causal cache vs diffusers'):
# measured 3e-7 (encode) to 2.4e-6 (decode) relative; 1e-4 leaves margin, while a normalised latent read as raw is off by the
# latent format's per-channel mean/std (order 1).
TOLERANCE = 1e-4


def test_pack_encode_is_core_vae_encode(values):
    assert values["pack_encode"].shape == (1, 16, 2, 8, 16)  # Wan: 16 channels, 5 frames -> 2, 8x
    assert _relative(values["pack_encode"], values["core_encode"]) < TOLERANCE


def test_pack_encode_decodes_in_core_vae_decode(values):
    assert _relative(values["core_decode_encoded"], values["pack_decode_encoded"]) < TOLERANCE


def test_core_encode_feeds_the_pack_sampler(values):
    assert _relative(values["sample_core"], values["sample_pack"]) < TOLERANCE


def test_pack_sampler_decodes_in_core_vae_decode(values):
    assert _relative(values["core_decode_sampled"], values["pack_decode_sampled"]) < TOLERANCE

