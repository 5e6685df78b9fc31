"""The native path: the canvas as conditioning of ComfyUI's own models (dreamactor_core.canvas.native,
nodes/native.py), checked against ComfyUI 0.3.75's own model, sampler and LoRA loader.

The ComfyUI-side HV1.5 model here is the narrow one of tests/native_fixtures.py (ComfyUI builds HV1.5
at fixed widths) and the canvas latent is fed directly; the decoded results go through ComfyUI's own
HV1.5 VAE classes at narrow width (the test-only loader in tests/comfy_probe); the Canvas To Video node
itself runs with a tiny Wan 2.1 VAE, whose width ComfyUI reads from the file.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from native_fixtures import write_narrow_transformer, write_narrow_vae, write_trained_lora

from comfy_harness.provision import ensure_comfyui
from comfy_harness.server import PromptFailed
from dreamactor_core.canvas import native
from dreamactor_core.canvas.composite import build_canvas
from dreamactor_core.canvas.masks import canvas_mask
from dreamactor_core.errors import DreamActorError
from dreamactor_core.sampling.schedules import sigma_schedule

HV15, WAN = native.NATIVE_FAMILIES
STEPS, CFG, SHIFT, SEED = 4, 3.0, 5.0, 11


def _layout(frames: int = 9, size: int = 64):
    reference = torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(1))
    driving = torch.rand(frames, size, size, 3, generator=torch.Generator().manual_seed(2))
    return build_canvas(reference, driving)


# ----- the engine part (no ComfyUI) -----

def test_concat_mask_is_one_minus_the_canvas_mask_per_latent_frame():
    _, layout = _layout()
    mask = native.concat_mask(layout, HV15)
    assert mask.shape == (1, 1, 3, 4, 8) == (1, 1, *native.latent_shape(layout, HV15)[2:])
    assert (mask[:, :, 0] == 0).all()  # frame 0: reference and motion both given
    assert (mask[:, :, 1:, :, :4] == 1).all() and (mask[:, :, 1:, :, 4:] == 0).all()


def test_wan_concat_mask_folds_four_pixel_frames_like_wan_image_to_video():
    _, layout = _layout()
    mask = native.concat_mask(layout, WAN)
    assert mask.shape == (1, 4, 3, 8, 16)
    # WanImageToVideo: pixel frame 0 repeated 4x fills latent frame 0, then 4 frames per latent frame.
    pixels = 1 - canvas_mask(layout)[:, ::8, ::8]
    expected = torch.cat([pixels[:1].expand(4, -1, -1), pixels[1:]]).reshape(3, 4, 8, 16).transpose(0, 1)
    assert torch.equal(mask[0], expected)


@pytest.mark.parametrize("numbers, architecture, family", [
    ((32, 16, 4), "AutoencodingEngine", "hunyuan_video_15"),
    ((16, 8, 4), "WanVAE", "wan_i2v"),
])
def test_vae_family(numbers, architecture, family):
    assert native.family_for_vae(*numbers, architecture).name == family


@pytest.mark.parametrize("numbers, architecture", [
    ((16, 8, 4), "AutoencoderKL"),  # HunyuanVideo 1.0: same numbers as Wan 2.1, other model
    ((48, 16, 4), "WanVAE"),  # Wan 2.2 5B
    ((4, 8, None), "AutoencoderKL"),  # an image VAE
])
def test_vae_of_another_family_is_named(numbers, architecture):
    with pytest.raises(DreamActorError, match=rf"vae: a {architecture} VAE with {numbers[0]} latent channels"):
        native.family_for_vae(*numbers, architecture)


def test_canvas_that_does_not_match_its_info_is_refused():
    canvas, layout = _layout()
    with pytest.raises(DreamActorError, match=r"canvas: shape \[9, 64, 64, 3\] does not match canvas_info's"):
        native.check_canvas(canvas[:, :, :64], layout, HV15)
    native.check_canvas(canvas, layout, HV15)
    coarse = native.NativeFamily("coarse", "Coarse", 32, 128, 4, "per_latent_frame", "Coarse", 65)
    with pytest.raises(DreamActorError, match="panel sides divisible by 128"):
        native.check_canvas(canvas, layout, coarse)


@pytest.mark.parametrize("model_class, channels, message", [
    ("WAN21", 36, "a ComfyUI 'WAN21' model, but the VAE encodes for HunyuanVideo 1.5"),
    ("HunyuanVideo15", 33, "33 input channels, expected the image-to-video model's 65"),
])
def test_model_of_another_family_is_named(model_class, channels, message):
    with pytest.raises(DreamActorError, match=message):
        native.check_model(HV15, model_class, channels)


# ----- inside ComfyUI -----

# Build Canvas on the fed reference and driving frames: the layout of _layout().
BUILD_CANVAS = {"class_type": "DreamActorM2_BuildCanvas", "inputs": {
    "reference": ["reference", 0], "driving": ["driving", 0], "width": 0, "height": 0, "fit": "pad",
    "frame_rule": "pad", "transition": False, "fps": 24.0, "background": "#000000"}}
RESULTS = ("custom", "ksampler", "pack")  # the sampled latents compared


def _graph(lora: str | None) -> dict:
    comfy_model = ["unet", 0]
    graph = {
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": "narrow_hv15.safetensors", "weight_dtype": "default"}},
        "pack_model": {"class_type": "DreamActorM2_LoadModel", "inputs": {"model_name": "narrow_hv15.safetensors",
                                                                          "precision": "fp32"}},
        "positive": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "nat_positive"}},
        "negative": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "nat_negative"}},
        "empty": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "nat_empty"}},
        "canvas_latent": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "nat_canvas_latent"}},
        "mask": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "nat_mask"}},
        "sigmas": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "nat_sigmas"}},
    }
    pack_model = ["pack_model", 0]
    if lora:
        graph["core_lora"] = {"class_type": "LoraLoaderModelOnly", "inputs": {
            "model": ["unet", 0], "lora_name": lora, "strength_model": 1.0}}
        graph["pack_lora"] = {"class_type": "DreamActorM2_LoadLora", "inputs": {
            "model": pack_model, "lora_name": lora, "strength": 1.0}}
        comfy_model, pack_model = ["core_lora", 0], ["pack_lora", 0]
    graph.update({
        "shifted": {"class_type": "ModelSamplingSD3", "inputs": {"model": comfy_model, "shift": SHIFT}},
        "noise": {"class_type": "RandomNoise", "inputs": {"noise_seed": SEED}},
        "guider": {"class_type": "CFGGuider", "inputs": {"model": ["shifted", 0], "positive": ["positive", 0],
                                                          "negative": ["negative", 0], "cfg": CFG}},
        "euler": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "custom": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": ["noise", 0], "guider": ["guider", 0], "sampler": ["euler", 0], "sigmas": ["sigmas", 0],
            "latent_image": ["empty", 0]}},
        "ksampler": {"class_type": "KSampler", "inputs": {
            "model": ["shifted", 0], "seed": SEED, "steps": STEPS, "cfg": CFG, "sampler_name": "euler",
            "scheduler": "simple", "positive": ["positive", 0], "negative": ["negative", 0],
            "latent_image": ["empty", 0], "denoise": 1.0}},
        "convert": {"class_type": "DreamActorM2_FromComfyConditioning", "inputs": {
            "positive": ["positive", 0], "negative": ["negative", 0]}},
        "pack": {"class_type": "DreamActorM2_Sampler", "inputs": {
            "model": pack_model, "positive": ["convert", 0], "negative": ["convert", 1],
            "canvas_latent": ["canvas_latent", 0], "mask": ["mask", 0], "seed": SEED, "steps": STEPS, "cfg": CFG,
            "shift": SHIFT, "solver": "euler", "denoise": 1.0}},
    })
    # Each latent decoded by ComfyUI's own HV1.5 VAE classes (narrow) and cut by the pack's Extract Result.
    graph.update({
        "vae": {"class_type": "DreamActorTest_NarrowHV15VAELoader", "inputs": {"vae_name": "narrow_hv15_vae.safetensors"}},
        "reference": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "nat_reference"}},
        "driving": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "nat_driving"}},
        "build": BUILD_CANVAS,
    })
    for node in RESULTS:
        graph[f"decode_{node}"] = {"class_type": "VAEDecode", "inputs": {"samples": [node, 0], "vae": ["vae", 0]}}
        graph[f"extract_{node}"] = {"class_type": "DreamActorM2_ExtractResult", "inputs": {
            "frames": [f"decode_{node}", 0], "canvas_info": ["build", 1], "cut_transition": True,
            "drop_reference_frame": False, "size": "reference"}}
        graph[f"probe_{node}"] = {"class_type": "DreamActorTest_Probe", "inputs": {"value": [node, 0], "name": node}}
        graph[f"probe_result_{node}"] = {"class_type": "DreamActorTest_Probe",
                                         "inputs": {"value": [f"extract_{node}", 0], "name": f"result_{node}"}}
    return graph


@pytest.fixture(scope="module")
def native_run(comfy):
    """One run of both paths, plain and with a trainer-written LoRA, on the same narrow weights."""
    transformer, adapter = write_narrow_transformer(comfy.models_dir / "diffusion_models" / "narrow_hv15.safetensors")
    lora_layers = write_trained_lora(transformer, adapter, comfy.models_dir / "loras" / "narrow_trained.safetensors")
    write_narrow_vae(comfy.models_dir / "vae" / "narrow_hv15_vae.safetensors")
    comfy.feed("nat_reference", torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(1)))
    comfy.feed("nat_driving", torch.rand(9, 64, 64, 3, generator=torch.Generator().manual_seed(2)))
    _, layout = _layout()
    generator = torch.Generator().manual_seed(3)
    raw = torch.randn(native.latent_shape(layout, HV15), generator=generator)  # a raw VAE latent of the canvas
    # What CLIPTextEncode gives for HV1.5 (pooled_output None), plus what Canvas To Video sets.
    extras = {"pooled_output": None, "concat_latent_image": raw, "concat_mask": native.concat_mask(layout, HV15)}
    comfy.feed("nat_positive", [[torch.randn(1, 8, 32, generator=generator), extras]])
    comfy.feed("nat_negative", [[torch.randn(1, 6, 32, generator=generator), extras]])
    comfy.feed("nat_empty", {"samples": torch.zeros(raw.shape)})
    comfy.feed("nat_canvas_latent", {"samples": raw})
    comfy.feed("nat_mask", canvas_mask(layout))
    comfy.feed("nat_sigmas", torch.tensor(sigma_schedule(STEPS, SHIFT)))
    out = {}
    for tag, lora in (("plain", None), ("lora", "narrow_trained.safetensors")):
        comfy.run(_graph(lora))
        out[tag] = {name: comfy.probe(name)["samples"] for name in RESULTS}
        out[f"{tag}_result"] = {name: comfy.probe(f"result_{name}") for name in RESULTS}
    out["log"] = comfy.log_path.read_text(errors="replace")
    out["lora_layers"] = lora_layers
    return out


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.comfy
@pytest.mark.parametrize("tag", ["plain", "lora"])
def test_native_sampler_equals_the_pack_sampler(native_run, tag):
    """Same sigmas (the pack's, through SamplerCustomAdvanced): fp32 forwards agree to ~2e-7 relative
    (backbone-notes) and 4 Euler steps x 2 CFG forwards compound that to ~1e-6; 1e-4 leaves margin while
    a LATENT-scale slip (3.7 %) or an inverted mask (whole halves) is orders of magnitude larger."""
    latents = native_run[tag]
    assert _relative(latents["custom"], latents["pack"]) < 1e-4


@pytest.mark.comfy
@pytest.mark.parametrize("tag", ["plain", "lora"])
def test_native_graph_gives_the_pack_sampler_result_through_extract_result(native_run, tag):
    """The other half of the equivalence: each latent decoded by the same VAE (ComfyUI's HV1.5 classes;
    LATENT means raw VAE latent on both paths) and cut by the pack's Extract Result. The latents agree
    to ~4e-7 relative and the decoded, extracted frames to 1.1e-6 in 0..1 pixel units (measured, both
    LoRA settings); 1e-4 leaves margin and stays >1000x below what the LoRA changes (0.17), so a
    LATENT-scale slip, an inverted mask or a lost LoRA fails."""
    results, plain = native_run[f"{tag}_result"], native_run["plain_result"]
    frames = results["pack"]
    assert frames.shape == (9, 64, 64, 3)  # the left half, 9 frames, at the reference's size
    for native_name in ("custom", "ksampler"):
        native_frames = results[native_name]
        assert native_frames.shape == frames.shape
        bound = 1e-4 if native_name == "custom" else 1e-2  # KSampler's schedule: see the test below
        assert float((native_frames - frames).abs().max()) < bound
    lora_effect = float((native_run["lora_result"]["pack"] - plain["pack"]).abs().max())
    assert lora_effect > 100 * 1e-4


@pytest.mark.comfy
def test_ksampler_simple_schedule_is_close_to_the_pack(native_run):
    """KSampler's 'simple' schedule picks from ComfyUI's 1000-entry sigma table; at other step counts
    it differs from the pack's schedule by up to 3e-3 in sigma (backbone-notes), which moves a 4-step
    result by about that much. At 4 steps and shift 5 the picks coincide (measured 4e-7 relative,
    the SamplerCustomAdvanced figure); the bound 1e-2 covers a 3e-3 schedule difference with
    margin and stays 10x below the LoRA's effect, so the comparison still discriminates."""
    plain = native_run["plain"]
    difference = _relative(plain["ksampler"], plain["pack"])
    lora_effect = _relative(native_run["lora"]["pack"], plain["pack"])
    assert difference < 1e-2 and lora_effect > 10 * difference


@pytest.mark.comfy
def test_trained_lora_loads_completely_through_core_lora_loader(native_run):
    """The trainer's file in core LoraLoaderModelOnly: no key left over, and its effect equals the pack's
    own application (the plain-vs-LoRA equality above); it must change the result."""
    assert "lora key not loaded" not in native_run["log"]
    assert _relative(native_run["lora"]["custom"], native_run["plain"]["custom"]) > 1e-2


def _wan_vae_file(path) -> None:
    """A tiny Wan 2.1 VAE built by ComfyUI's own class (its file layout), in a subprocess so this
    process never imports ComfyUI."""
    code = ("import sys, torch; sys.path.insert(0, sys.argv[1]); import comfy.cli_args; comfy.cli_args.args.cpu = True\n"
            "from comfy.ldm.wan.vae import WanVAE; from safetensors.torch import save_file\n"
            "torch.manual_seed(0); m = WanVAE(dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[], "
            "temperal_downsample=[False, True, True])\n"
            "fan_in = lambda v: v[0].numel()  # ComfyUI's ops skip weight init: draw weights of unit gain\n"
            "draw = lambda k, v: torch.ones(v.shape) if k.endswith('gamma') else torch.randn(v.shape) / fan_in(v) ** 0.5 "
            "if v.ndim > 1 else torch.zeros(v.shape)\n"
            "save_file({k: draw(k, v) for k, v in m.state_dict().items()}, sys.argv[2])")
    subprocess.run([sys.executable, "-c", code, str(ensure_comfyui()), str(path)], check=True, capture_output=True)


def _canvas_graph(model: bool = False, canvas: str = "build") -> dict:
    graph = {
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_wan21_vae.safetensors"}},
        "reference": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "nat_reference"}},
        "driving": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "nat_driving"}},
        "build": BUILD_CANVAS,
        "bad_canvas": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "nat_bad_canvas"}},
        "positive": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "nat_cond"}},
        "to_video": {"class_type": "DreamActorM2_CanvasToVideo", "inputs": {
            "positive": ["positive", 0], "negative": ["positive", 0], "vae": ["vae", 0], "canvas": [canvas, 0],
            "canvas_info": ["build", 1]}},
        "encode": {"class_type": "VAEEncode", "inputs": {"pixels": ["build", 0], "vae": ["vae", 0]}},
        "probe_positive": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["to_video", 0], "name": "cond_out"}},
        "probe_latent": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["to_video", 2], "name": "empty_out"}},
        "probe_encode": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["encode", 0], "name": "encoded"}},
    }
    if model:
        graph["unet"] = {"class_type": "UNETLoader", "inputs": {"unet_name": "narrow_hv15.safetensors",
                                                                "weight_dtype": "default"}}
        graph["to_video"]["inputs"]["model"] = ["unet", 0]
    return graph


@pytest.mark.comfy
def test_canvas_to_video_sets_canvas_and_mask_on_the_conditioning(comfy, native_run):
    _wan_vae_file(comfy.models_dir / "vae" / "tiny_wan21_vae.safetensors")
    canvas, layout = _layout()
    comfy.feed("nat_reference", torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(1)))
    comfy.feed("nat_driving", torch.rand(9, 64, 64, 3, generator=torch.Generator().manual_seed(2)))
    comfy.feed("nat_bad_canvas", canvas[:, :, :64])
    comfy.feed("nat_cond", [[torch.randn(1, 8, 32), {"pooled_output": None}]])
    comfy.run(_canvas_graph())
    (cond, extras), = comfy.probe("cond_out")
    encoded = comfy.probe("encoded")["samples"]
    assert torch.allclose(extras["concat_latent_image"], encoded, atol=1e-6)  # the VAE's own encoding
    black = encoded[:, :, 1:, :, :8]  # the reference half after frame 0: black pixels, encoded, not zeroed
    assert black.abs().max() > 1e-3
    assert torch.equal(extras["concat_mask"], native.concat_mask(layout, WAN))
    assert comfy.probe("empty_out")["samples"].shape == native.latent_shape(layout, WAN) == (1, 16, 3, 8, 16)

    with pytest.raises(PromptFailed, match="model: a ComfyUI 'HunyuanVideo15' model, but the VAE encodes for Wan"):
        comfy.run(_canvas_graph(model=True))
    with pytest.raises(PromptFailed, match="canvas: shape .* does not match canvas_info's"):
        comfy.run(_canvas_graph(canvas="bad_canvas"))

