"""The pack's LoRA loader against ComfyUI 0.3.75's own LoRA patcher, on every HunyuanVideo 1.5 layer kind.

One tiny HunyuanVideo 1.5 transformer is written as a ComfyUI file. ComfyUI (in a subprocess, so
this process never imports it) loads that file and a LoRA with its own code (``comfy.lora.
model_lora_keys_unet`` + ``load_lora`` + ``ModelPatcher.add_patches/patch_model``) and saves the
patched weights. The pack loads the same two files and applies the LoRA as forward hooks. Every
linear and patch-embedding layer's effective weight (read through the hooks) must equal ComfyUI's
patched weight, renamed by the pack's own converter, and the forward with hooks must equal the
forward of a model holding ComfyUI's patched weights.

The LoRA covers every weight a LoRA can target in ComfyUI's HV1.5 model: modulation, the token
refiner (fused qkv, output, MLP, modulation), both streams' fused qkv and output projections,
FFNs, the embedders (time, text, ByT5, vision, the patch-embedding convolution) and the final layer
(whose modulation halves the diffusers layout swaps). Four key layouts: ComfyUI's own names,
kohya's ``lora_unet_`` form of them, diffusion-pipe's original names, and musubi-tuner's HV1.5
names (separate q/k/v LoRAs, given to ComfyUI as the equivalent fused LoRA: stacked downs,
block-diagonal ups).

Tolerance: ``numerics.assert_float32_close`` with the tiny model's longest reduction. Both sides
compute ``W + s * up @ down`` in float32 in different orders (ComfyUI merges, the pack's probe runs
the two LoRA matmuls); a swapped half, a wrong q/k/v third or a dropped layer changes weights by
the LoRA's own size (~1e-1 here), ~1e4 times the bound.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from numerics import TINY_MODEL_REDUCTION, assert_float32_close
from safetensors.torch import load_file, save_file

from comfy_harness.provision import ensure_comfyui
from dreamactor_core.models import lora
from dreamactor_core.models.backbones import get_adapter
from dreamactor_core.models.loading import load_transformer
from dreamactor_core.testing.tiny_models import TINY_TRANSFORMER_CONFIGS, tiny_text_conditioning

pytestmark = pytest.mark.comfy

ADAPTER = get_adapter("hunyuan_video_15")
RANK, ALPHA, STRENGTH = 4, 2.0, 0.7
# ComfyUI's ByT5 mapper has a fixed 1472-wide input, its refiner 2 blocks, and it recognises HV1.5 by
# the 1152-wide SigLIP input; its detection assumes 128-wide heads, a 4x MLP
# and the full RoPE split, which the tiny model does not have: the subprocess sets those three.
CONFIG = {**TINY_TRANSFORMER_CONFIGS["hunyuan_video_15"], "text_embed_2_dim": 1472, "image_embed_dim": 1152,
          "num_refiner_layers": 2}
COMFY_SIDE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import comfy.cli_args
comfy.cli_args.args.cpu = True
import torch, comfy.lora, comfy.model_detection, comfy.sd, comfy.utils
from safetensors.torch import save_file

request = json.load(sys.stdin)
detect = comfy.model_detection.detect_unet_config

def tiny_config(*args, **kwargs):
    config = detect(*args, **kwargs)
    config.update(request["overrides"])
    return config

comfy.model_detection.detect_unet_config = tiny_config
base = comfy.sd.load_diffusion_model_state_dict(comfy.utils.load_torch_file(request["model"]), {"dtype": torch.float32})
key_map = comfy.lora.model_lora_keys_unet(base.model, {})
report = {}
for name, path in request["loras"].items():
    patcher = base.clone()
    patches = comfy.lora.load_lora(comfy.utils.load_torch_file(path), key_map)
    patcher.add_patches(patches, request["strength"])
    patcher.patch_model()
    save_file({k: v.contiguous() for k, v in patcher.model.diffusion_model.state_dict().items()}, request["out"][name])
    patcher.unpatch_model()
    report[name] = len(patches)
print(json.dumps(report))
"""


def _random_pair(generator: torch.Generator, shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
    """down [rank, in, *kernel] and up [out, rank, 1, ...] (kohya's conv layout) for a weight shape."""
    down = torch.randn(RANK, *shape[1:], generator=generator) / shape[1:].numel() ** 0.5
    up = torch.randn(shape[0], RANK, *([1] * (len(shape) - 2)), generator=generator) / RANK**0.5
    return down, up


def _pair(prefix: str, down: torch.Tensor, up: torch.Tensor) -> dict[str, torch.Tensor]:
    return {f"{prefix}.lora_down.weight": down, f"{prefix}.lora_up.weight": up, f"{prefix}.alpha": torch.tensor(ALPHA)}


def _renamed(name: str, rules: tuple[tuple[str, str], ...]) -> str:
    for ours, theirs in rules:
        name = name.replace(ours, theirs)
    return name


# ComfyUI's names -> diffusion-pipe's original names (comfy/lora.py's HunyuanVideo rules, reversed).
DIFFUSION_PIPE = (("_mod.lin", "_mod.linear"), ("_attn.qkv", "_attn_qkv"), ("_attn.proj", "_attn_proj"),
                  ("mlp.0", "mlp.fc1"), ("mlp.2", "mlp.fc2"))
# ... and on to the Tencent HV1.5 module names musubi-tuner trains (its model keeps them): the
# embedders' MLPs as in the release, double-block attention as separate q/k/v.
MUSUBI = (*DIFFUSION_PIPE, ("t_embedder.in_layer", "t_embedder.mlp.0"), ("t_embedder.out_layer", "t_embedder.mlp.2"),
          ("time_in.in_layer", "time_in.mlp.0"), ("time_in.out_layer", "time_in.mlp.2"),
          ("c_embedder.in_layer", "c_embedder.linear_1"), ("c_embedder.out_layer", "c_embedder.linear_2"))


def _musubi(comfy_name: str, down: torch.Tensor, up: torch.Tensor, generator: torch.Generator):
    """musubi-tuner's LoRA tensors for one layer, and the LoRA ComfyUI gets for them: separate
    q/k/v LoRAs become one fused LoRA with the downs stacked [3r, in] and the ups block-diagonal."""
    name = _renamed(comfy_name, MUSUBI)
    if not (name.startswith("double_blocks.") and name.endswith("_attn_qkv")):
        return _pair(f"lora_unet_{name.replace('.', '_')}", down, up), down, up
    downs = [down, *(_random_pair(generator, torch.Size((1, *down.shape[1:])))[0] for _ in range(2))]
    ups = up.chunk(3, dim=0)
    tensors = {}
    for part, part_down, part_up in zip("qkv", downs, ups):
        tensors.update(_pair(f"lora_unet_{name[:-3].replace('.', '_')}{part}", part_down, part_up))
    return tensors, torch.cat(downs), torch.block_diag(*ups)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The tiny model as a ComfyUI file, LoRA files in four layouts, and ComfyUI's patched weights."""
    folder = tmp_path_factory.mktemp("lora_vs_comfyui")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        transformer = ADAPTER.transformer_cls()(**CONFIG).eval()
    comfy_state = ADAPTER.to_comfy_names(ADAPTER.to_original_names(transformer.state_dict()))
    model_path = folder / "tiny_hv15_comfy.safetensors"
    save_file({f"model.diffusion_model.{k}": v.contiguous() for k, v in comfy_state.items()}, str(model_path))
    generator = torch.Generator().manual_seed(3)
    layouts: dict[str, dict[str, torch.Tensor]] = {"comfy": {}, "kohya": {}, "diffusion_pipe": {}, "musubi": {}}
    musubi_for_comfy: dict[str, torch.Tensor] = {}
    for key, weight in comfy_state.items():
        if not key.endswith(".weight") or weight.ndim < 2 or key.startswith("cond_type_embedding"):
            continue
        name = key[: -len(".weight")]
        down, up = _random_pair(generator, weight.shape)
        layouts["comfy"].update(_pair(f"diffusion_model.{name}", down, up))
        layouts["kohya"].update(_pair(f"lora_unet_{name.replace('.', '_')}", down, up))
        layouts["diffusion_pipe"].update(_pair(f"transformer.{_renamed(name, DIFFUSION_PIPE)}", down, up))
        musubi, fused_down, fused_up = _musubi(name, down, up, generator)
        layouts["musubi"].update(musubi)
        # The fused equivalent's rank differs: its alpha keeps alpha / rank equal to musubi's.
        musubi_for_comfy.update(_pair(f"diffusion_model.{name}", fused_down, fused_up))
        musubi_for_comfy[f"diffusion_model.{name}.alpha"] = torch.tensor(ALPHA * fused_down.shape[0] / RANK)
    paths = {}
    for layout, state in {**layouts, "musubi_for_comfy": musubi_for_comfy}.items():
        paths[layout] = folder / f"{layout}.safetensors"
        save_file(state, str(paths[layout]))
    comfy_paths = {layout: paths["musubi_for_comfy" if layout == "musubi" else layout] for layout in layouts}
    outputs = {layout: folder / f"patched_{layout}.safetensors" for layout in layouts}
    request = {"model": str(model_path), "loras": {k: str(v) for k, v in comfy_paths.items()},
               "out": {k: str(v) for k, v in outputs.items()}, "strength": STRENGTH,
               "overrides": {"num_heads": CONFIG["num_attention_heads"], "mlp_ratio": CONFIG["mlp_ratio"],
                             "axes_dim": list(CONFIG["rope_axes_dim"])}}
    result = subprocess.run([sys.executable, "-c", COMFY_SIDE, str(ensure_comfyui())], input=json.dumps(request),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    patched_counts = json.loads(result.stdout.strip().splitlines()[-1])
    layer_count = sum(key.endswith(".lora_down.weight") for key in layouts["comfy"])
    assert patched_counts == dict.fromkeys(layouts, layer_count), "ComfyUI did not patch every layer of a LoRA file"
    return {"model": model_path, "loras": paths, "patched": outputs, "layers": layer_count}


@pytest.fixture(scope="module")
def model(files):
    return load_transformer(files["model"])


def _effective_weights(model) -> dict[str, torch.Tensor]:
    """Each linear/patch-conv layer's weight as the forward sees it (LoRA hooks included): the layer
    applied to the identity, minus its bias."""
    weights = {}
    with torch.no_grad(), lora.lora_patches(model):
        for name, module in model.transformer.named_modules():
            if isinstance(module, torch.nn.Linear):
                eye = torch.eye(module.in_features)
                weights[name] = (module(eye) - module.bias).T
            elif isinstance(module, torch.nn.Conv3d):
                assert module.kernel_size == (1, 1, 1), "the tiny model's patch embedding is 1x1x1"
                eye = torch.eye(module.in_channels).view(module.in_channels, module.in_channels, 1, 1, 1)
                weights[name] = (module(eye) - module.bias.view(1, -1, 1, 1, 1)).flatten(1).T.reshape(module.weight.shape)
    return weights


def _forward(model) -> torch.Tensor:
    hidden = torch.randn(1, 65, 2, 2, 3, generator=torch.Generator().manual_seed(5))
    conditioning = tiny_text_conditioning()
    conditioning["encoder_hidden_states_2"] = torch.randn(1, 4, 1472, generator=torch.Generator().manual_seed(6))
    conditioning["image_embeds"] = torch.randn(1, 3, 1152, generator=torch.Generator().manual_seed(7))
    with torch.no_grad(), lora.lora_patches(model):
        kwargs = model.adapter.prepare_conditioning(model.transformer, conditioning, 1, torch.device("cpu"), torch.float32)
        return model.adapter.predict_velocity(model.transformer, hidden, torch.tensor([700.0]), kwargs)


@pytest.mark.parametrize("layout", ["comfy", "kohya", "diffusion_pipe", "musubi"])
def test_every_layer_kind_patches_as_comfyui_does(files, model, layout):
    weights = lora.load_lora(files["loras"][layout], model)
    assert weights.unmatched == []
    patched = model.with_lora(weights, STRENGTH)
    effective = _effective_weights(patched)
    comfy_patched, _ = ADAPTER.transformer_to_diffusers(load_file(str(files["patched"][layout])))
    base = model.transformer.state_dict()
    changed = set()
    for name, weight in effective.items():
        expected = comfy_patched[f"{name}.weight"]
        try:
            assert_float32_close(weight, expected, TINY_MODEL_REDUCTION)
        except AssertionError as error:
            raise AssertionError(f"{layout}: layer {name}: {error}") from None
        if not torch.allclose(expected, base[f"{name}.weight"]):
            changed.add(name)
    assert changed == set(weights.layers) == set(effective)  # every layer of the model, none dropped


def test_the_forward_with_hooks_equals_comfyuis_merged_weights(files, model):
    hooked = _forward(model.with_lora(lora.load_lora(files["loras"]["comfy"], model), STRENGTH))
    merged = load_transformer(files["model"])
    comfy_patched, _ = ADAPTER.transformer_to_diffusers(load_file(str(files["patched"]["comfy"])))
    merged.transformer.load_state_dict(comfy_patched)
    expected = _forward(merged)
    assert not torch.allclose(expected, _forward(model), atol=1e-3)  # the LoRA matters
    assert_float32_close(hooked, expected, TINY_MODEL_REDUCTION)
