"""The pack's original/ComfyUI key tables checked against ComfyUI's own model classes.

Our single files are written with the pack's own inverse tables, so loading them proves only
self-consistency. Here ComfyUI 0.3.75's model classes (built on the meta device in a subprocess,
so this process never imports ComfyUI) give the real key names and shapes of each layout, and
ComfyUI's own renaming of original files (``process_unet_state_dict``) is applied to ours.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from comfy_harness.provision import ensure_comfyui
from dreamactor_core.models.backbones import get_adapter
from dreamactor_core.models.backbones.hunyuan_video_15 import FUSED_ATTENTION
from dreamactor_core.models.loading import load_transformer, load_vae
from dreamactor_core.testing.tiny_models import TINY_TRANSFORMER_CONFIGS, build_tiny_vae

pytestmark = pytest.mark.comfy

HIDDEN, HEADS = 32, 2
COMFY_SIDE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import comfy.cli_args
comfy.cli_args.args.cpu = True
import torch, comfy.ops, comfy.supported_models
from comfy.ldm.hunyuan_video.model import HunyuanVideo
from comfy.ldm.wan.model import WanModel
from comfy.ldm.wan.vae import WanVAE

request = json.load(sys.stdin)
ops = comfy.ops.disable_weight_init

def shapes(module):
    return {k: list(v.shape) for k, v in module.state_dict().items()}

def hunyuan(**extra):
    common = dict(image_model="hunyuan_video", hidden_size=32, num_heads=2, mlp_ratio=2.0, depth=2, theta=256,
                  qkv_bias=True, meanflow=False, context_in_dim=32, out_channels=None)
    common.update(extra)
    return HunyuanVideo(operations=ops, **common)

out = {}
with torch.device("meta"):
    out["hunyuan_video_15"] = shapes(hunyuan(
        in_channels=65, out_channels=32, vec_in_dim=None, depth_single_blocks=0, axes_dim=[4, 6, 6],
        patch_size=[1, 1, 1], guidance_embed=False, byt5=True, use_cond_type_embedding=True, vision_in_dim=16))
    out["hunyuan_video_i2v"] = shapes(hunyuan(
        in_channels=33, out_channels=16, vec_in_dim=16, depth_single_blocks=1, axes_dim=[4, 6, 6],
        patch_size=[1, 2, 2], guidance_embed=False, byt5=False, use_cond_type_embedding=False, vision_in_dim=None))
    out["wan_i2v"] = shapes(WanModel(model_type="t2v", in_dim=36, dim=128, ffn_dim=64, text_dim=32, out_dim=16,
                                     num_heads=1, num_layers=2, operations=ops))
    out["wan_vae"] = shapes(WanVAE(dim=8, z_dim=16, temperal_downsample=[False, True, True]))
rename = comfy.supported_models.HunyuanVideo.process_unet_state_dict
out["renamed"] = {name: sorted(rename(None, dict.fromkeys(keys))) for name, keys in request.items()}
json.dump(out, sys.stdout)
"""


def _comfy(request: dict) -> dict:
    result = subprocess.run([sys.executable, "-c", COMFY_SIDE, str(ensure_comfyui())], input=json.dumps(request),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _original(backbone: str, **overrides) -> dict[str, torch.Tensor]:
    adapter = get_adapter(backbone)
    config = {**TINY_TRANSFORMER_CONFIGS[backbone], **overrides}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        transformer = adapter.transformer_cls()(**config)
    return adapter.to_original_names(transformer.state_dict())


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    return {key: list(value.shape) for key, value in state.items()}


@pytest.fixture(scope="module")
def originals():
    return {
        "hunyuan_video_15": _original("hunyuan_video_15", num_refiner_layers=2, text_embed_2_dim=1472),
        "hunyuan_video_i2v": _original("hunyuan_video_i2v", num_layers=2, num_refiner_layers=2),
        "wan_i2v": _original("wan_i2v"),
    }


@pytest.fixture(scope="module")
def comfy_side(originals):
    fused_15 = FUSED_ATTENTION.convert(originals["hunyuan_video_15"], reverse=True)
    return _comfy({"hunyuan_video_15": list(fused_15), "hunyuan_video_i2v": list(originals["hunyuan_video_i2v"])})


def test_hunyuan_video_15_comfy_names_are_comfyuis(originals, comfy_side):
    adapter = get_adapter("hunyuan_video_15")
    assert _shapes(adapter.to_comfy_names(originals["hunyuan_video_15"])) == comfy_side["hunyuan_video_15"]
    # Files with original names and fused attention are what ComfyUI itself renames on load.
    assert comfy_side["renamed"]["hunyuan_video_15"] == sorted(comfy_side["hunyuan_video_15"])


def test_hunyuan_video_original_names_are_what_comfyui_loads(originals, comfy_side):
    assert comfy_side["renamed"]["hunyuan_video_i2v"] == sorted(comfy_side["hunyuan_video_i2v"])


def test_wan_original_names_are_comfyuis(originals, comfy_side):
    assert _shapes(originals["wan_i2v"]) == comfy_side["wan_i2v"]


def test_original_fused_attention_files_load(originals, tmp_path):
    path = tmp_path / "fused.safetensors"
    save_file(FUSED_ATTENTION.convert(originals["hunyuan_video_15"], reverse=True), str(path))
    model = load_transformer(path)
    assert model.adapter.name == "hunyuan_video_15" and model.transformer.config.num_refiner_layers == 2


def test_wan_vae_single_file_in_comfyui_names_loads(comfy_side, tmp_path):
    """ComfyUI's Wan VAE names, renamed by diffusers' converter, cover our VAE exactly; such a file loads."""
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    diffusers_to_original = convert_wan_vae_to_diffusers({key: key for key in comfy_side["wan_vae"]})
    vae = build_tiny_vae("wan_i2v")
    state = vae.state_dict()
    assert set(diffusers_to_original) == set(state)
    path = tmp_path / "wan_vae.safetensors"
    save_file({diffusers_to_original[key]: value for key, value in state.items()}, str(path))
    loaded = load_vae(path).vae.state_dict()
    assert all(torch.equal(loaded[key], state[key]) for key in state)
