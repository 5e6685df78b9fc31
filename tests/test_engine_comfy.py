"""The generation engine inside real ComfyUI: load -> LoRA -> encode -> sample -> decode as a prompt."""

from __future__ import annotations

import pytest
import torch
from engine_fixtures import canvas_frames

from comfy_harness.server import PromptFailed
from dreamactor_core import sampling
from dreamactor_core.models import vae as video_vae
from dreamactor_core.models.loading import load_transformer, load_vae
from dreamactor_core.testing.tiny_models import tiny_text_conditioning, write_tiny_models

pytestmark = pytest.mark.comfy
HV15_SCALE = 1.03682  # ComfyUI's HunyuanVideo15 latent format = the VAE config's scaling_factor


def _canvas_mask() -> torch.Tensor:
    frames, height, width = canvas_frames().shape[:3]
    mask = torch.zeros(frames, height, width)
    mask[0, :, : width // 2] = 1
    mask[:, :, width // 2:] = 1
    return mask


def _prompt(model_name: str, lora_strength: float) -> dict:
    return {
        "model": {"class_type": "DreamActorM2_LoadModel", "inputs": {"model_name": model_name, "precision": "fp32"}},
        "lora": {"class_type": "DreamActorM2_LoadLora", "inputs": {
            "model": ["model", 0], "lora_name": "tiny_hunyuan_video_15_ffn_lora_kohya.safetensors",
            "strength": lora_strength}},
        "vae": {"class_type": "DreamActorM2_LoadVAE", "inputs": {"vae_name": "tiny_hunyuan_video_15_vae.safetensors",
                                                                 "precision": "fp32"}},
        "canvas": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "canvas"}},
        "mask": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "mask"}},
        "positive": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "positive"}},
        "negative": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "negative"}},
        "encode": {"class_type": "DreamActorM2_EncodeCanvas", "inputs": {
            "vae": ["vae", 0], "canvas": ["canvas", 0], "tile_frames": 16, "tile_overlap_frames": 4, "tile_size": 256}},
        "sample": {"class_type": "DreamActorM2_Sampler", "inputs": {
            "model": ["lora", 0], "positive": ["positive", 0], "negative": ["negative", 0],
            "canvas_latent": ["encode", 0], "mask": ["mask", 0], "seed": 7, "steps": 2, "cfg": 3.0, "shift": 5.0,
            "solver": "dpmpp_2m", "denoise": 1.0}},
        "sample_base": {"class_type": "DreamActorM2_Sampler", "inputs": {
            "model": ["model", 0], "positive": ["positive", 0], "negative": ["negative", 0],
            "canvas_latent": ["encode", 0], "mask": ["mask", 0], "seed": 7, "steps": 2, "cfg": 3.0, "shift": 5.0,
            "solver": "dpmpp_2m", "denoise": 1.0}},
        "probe_base": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["sample_base", 0], "name": "latent_base"}},
        "decode": {"class_type": "DreamActorM2_DecodeLatent", "inputs": {
            "vae": ["vae", 0], "samples": ["sample", 0], "tile_frames": 16, "tile_overlap_frames": 4, "tile_size": 256}},
        "probe_latent": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["sample", 0], "name": "latent"}},
        "probe_canvas_latent": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["encode", 0], "name": "canvas_latent"}},
        "probe_frames": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["decode", 0], "name": "frames"}},
        "probe_report": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["lora", 1], "name": "report"}},
    }


def test_load_sample_decode_inside_comfyui(comfy):
    paths = write_tiny_models(comfy.models_dir)
    choices = comfy.object_info("DreamActorM2_LoadModel")["DreamActorM2_LoadModel"]["input"]["required"]["model_name"][0]
    assert {"tiny_hunyuan_video_15.safetensors", "tiny_hunyuan_video_15_comfy.safetensors",
            "tiny_hunyuan_video_15_diffusers"} <= set(choices)
    positive, negative = tiny_text_conditioning(), tiny_text_conditioning(seed=1)
    comfy.feed("canvas", canvas_frames())
    comfy.feed("mask", _canvas_mask())
    comfy.feed("positive", positive)
    comfy.feed("negative", negative)

    comfy.run(_prompt("tiny_hunyuan_video_15_comfy.safetensors", 0.0))
    frames = comfy.probe("frames")
    assert frames.shape == (9, 64, 128, 3) and 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0
    assert "4 layers matched, 0 unmatched" in comfy.probe("report")

    # The same graph in plain Python gives the same latent: the nodes add nothing of their own but the
    # LATENT convention (raw VAE latents at the nodes, x the latent format's scale inside the core).
    condition = comfy.probe("canvas_latent")["samples"] * HV15_SCALE
    from dreamactor_core.canvas.masks import pack_latent_mask
    mask = pack_latent_mask(_canvas_mask(), 16, 4, "per_latent_frame").unsqueeze(0)
    expected = sampling.sample(load_transformer(paths["transformer"]), positive, condition, mask, negative=negative,
                               seed=7, steps=2, cfg=3.0, shift=5.0, solver="dpmpp_2m") / HV15_SCALE
    assert torch.allclose(comfy.probe("latent")["samples"], expected, atol=1e-5)

    # A LoRA branch and a plain branch off the same cached model: the LoRA never leaks into the other.
    comfy.run(_prompt("tiny_hunyuan_video_15_diffusers", 1.0))
    assert not torch.allclose(comfy.probe("latent")["samples"], expected, atol=1e-3)
    assert torch.allclose(comfy.probe("latent_base")["samples"], expected, atol=1e-5)


def test_vae_round_trip_inside_comfyui_equals_the_engine(comfy):
    paths = write_tiny_models(comfy.models_dir)
    comfy.feed("canvas", canvas_frames())
    prompt = {
        "vae": {"class_type": "DreamActorM2_LoadVAE", "inputs": {"vae_name": "tiny_hunyuan_video_15_vae_diffusers",
                                                                 "precision": "fp32"}},
        "canvas": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "canvas"}},
        "encode": {"class_type": "DreamActorM2_EncodeCanvas", "inputs": {
            "vae": ["vae", 0], "canvas": ["canvas", 0], "tile_frames": 4, "tile_overlap_frames": 0, "tile_size": 0}},
        "decode": {"class_type": "DreamActorM2_DecodeLatent", "inputs": {
            "vae": ["vae", 0], "samples": ["encode", 0], "tile_frames": 4, "tile_overlap_frames": 0, "tile_size": 0}},
        "probe_latent": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["encode", 0], "name": "vae_latent"}},
        "probe_frames": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["decode", 0], "name": "vae_frames"}},
    }
    comfy.run(prompt)
    vae = load_vae(paths["vae"])
    latent = video_vae.encode_video(vae, canvas_frames(), tile_frames=4, tile_overlap_frames=0, tile_size=0)
    assert torch.allclose(comfy.probe("vae_latent")["samples"], latent / HV15_SCALE, atol=1e-5)
    frames = video_vae.decode_latent(vae, latent, tile_frames=4, tile_overlap_frames=0, tile_size=0)
    assert torch.allclose(comfy.probe("vae_frames"), frames, atol=1e-5)


@pytest.mark.parametrize("node, widget, source, target, message", [
    ("DreamActorM2_LoadModel", "model_name", "vae/tiny_hunyuan_video_15_vae.safetensors", "diffusion_models",
     "HunyuanVideo 1.5 VAE"),
    ("DreamActorM2_LoadVAE", "vae_name", "diffusion_models/tiny_hunyuan_video_15.safetensors", "vae",
     "HunyuanVideo 1.5 transformer"),
])
def test_a_misplaced_file_is_a_clear_node_error(comfy, node, widget, source, target, message):
    write_tiny_models(comfy.models_dir)
    name = "misplaced_" + source.split("/")[-1]
    (comfy.models_dir / target / name).write_bytes((comfy.models_dir / source).read_bytes())
    prompt = {"load": {"class_type": node, "inputs": {widget: name, "precision": "fp32"}},
              "probe": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["load", 0], "name": "never"}}}
    with pytest.raises(PromptFailed) as failure:
        comfy.run(prompt)
    assert failure.value.node_type == node and message in failure.value.exception_message


def test_a_lora_for_another_backbone_is_a_clear_node_error(comfy):
    write_tiny_models(comfy.models_dir)
    write_tiny_models(comfy.models_dir, backbone="wan_i2v")
    prompt = {
        "model": {"class_type": "DreamActorM2_LoadModel", "inputs": {
            "model_name": "tiny_hunyuan_video_15.safetensors", "precision": "fp32"}},
        "lora": {"class_type": "DreamActorM2_LoadLora", "inputs": {
            "model": ["model", 0], "lora_name": "tiny_wan_i2v_ffn_lora_kohya.safetensors", "strength": 1.0}},
        "probe": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["lora", 1], "name": "never"}},
    }
    with pytest.raises(PromptFailed) as failure:
        comfy.run(prompt)
    assert failure.value.node_type == "DreamActorM2_LoadLora"
    assert "matches none of the HunyuanVideo 1.5" in failure.value.exception_message
