"""LoRA: layouts, strength, stacking, exact FFN-only deltas, bit-exact unload, foreign LoRAs."""

from __future__ import annotations

import json
import re

import pytest
import torch
from engine_fixtures import canvas_mask
from safetensors.torch import save_file

from dreamactor_core import sampling
from dreamactor_core.errors import DreamActorError
from dreamactor_core.models import lora
from dreamactor_core.models.loading import load_transformer
from dreamactor_core.testing.tiny_models import ffn_lora_state_dict, tiny_text_conditioning, write_tiny_models


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def model(tiny):
    return load_transformer(tiny["transformer"])


def _sample(model) -> torch.Tensor:
    condition = torch.randn(1, 32, 3, 4, 8, generator=torch.Generator().manual_seed(1))
    return sampling.sample(model, tiny_text_conditioning(), condition, canvas_mask(condition), steps=2, cfg=1.0)


def _deltas(model) -> dict[str, torch.Tensor]:
    """What every linear layer adds over its own weights during one forward (0 for untouched layers)."""
    deltas, handles = {}, []
    hidden = torch.randn(1, 65, 3, 4, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), lora.lora_patches(model):  # recorders run after the LoRA hooks
        for name, module in model.transformer.named_modules():
            if isinstance(module, torch.nn.Linear):
                def record(mod, inputs, output, name=name):
                    deltas[name] = output - torch.nn.functional.linear(inputs[0], mod.weight, mod.bias)
                handles.append(module.register_forward_hook(record))
        try:
            model.adapter.predict_velocity(model.transformer, hidden, torch.tensor([600.0]), model.adapter.prepare_conditioning(
            model.transformer, tiny_text_conditioning(), 1, torch.device("cpu"), torch.float32))
        finally:
            for handle in handles:
                handle.remove()
    return deltas


def test_three_layouts_match_the_same_layers_with_the_same_scale(tiny, model):
    loaded = [lora.load_lora(tiny[key], model) for key in ("lora", "lora_kohya", "lora_comfy")]
    reference = loaded[0].layers
    assert set(reference) == set(model.adapter.visual_ffn_modules(model.transformer))
    for other in loaded[1:]:
        assert other.unmatched == [] and set(other.layers) == set(reference)
        for name, layer in other.layers.items():
            assert torch.equal(layer.down, reference[name].down)  # stored weights, the same in every layout
            # the diffusers layout folds alpha / rank into up: one float32 product, equal to a few ulps
            assert torch.allclose(layer.up * layer.scale, reference[name].up * reference[name].scale, rtol=1e-6, atol=0)


def test_a_known_delta_changes_exactly_the_visual_ffn_layers(tiny, model):
    weights = lora.load_lora(tiny["lora_kohya"], model)
    deltas = _deltas(model.with_lora(weights, 1.0))
    changed = {name for name, delta in deltas.items() if delta.numel() and delta.abs().max() > 1e-6}
    assert changed == set(model.adapter.visual_ffn_modules(model.transformer))


def test_strength_scales_the_delta_linearly_and_stacks(tiny, model):
    weights = lora.load_lora(tiny["lora"], model)
    name = next(iter(weights.layers))
    one = _deltas(model.with_lora(weights, 1.0))[name]
    assert torch.allclose(_deltas(model.with_lora(weights, -1.0))[name], -one, atol=1e-6)
    assert torch.allclose(_deltas(model.with_lora(weights, 2.5))[name], 2.5 * one, atol=1e-5)
    assert torch.allclose(_deltas(model.with_lora(weights, 1.0).with_lora(weights, 1.5))[name], 2.5 * one, atol=1e-5)


def test_strength_zero_equals_base_and_unload_is_bit_exact(tiny, model):
    before = {k: v.clone() for k, v in model.transformer.state_dict().items()}
    base = _sample(model)
    weights = lora.load_lora(tiny["lora_comfy"], model)
    assert torch.equal(_sample(model.with_lora(weights, 0.0)), base)
    assert not torch.allclose(_sample(model.with_lora(weights, 1.0)), base)
    assert all(torch.equal(v, before[k]) for k, v in model.transformer.state_dict().items())
    assert all(not m._forward_hooks for m in model.transformer.modules())
    assert torch.equal(_sample(model), base)


def test_an_error_inside_sampling_leaves_the_model_unpatched(tiny, model):
    patched = model.with_lora(lora.load_lora(tiny["lora"], model), 1.0)
    condition = torch.zeros(1, 32, 3, 4, 8)

    def fail(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sampling.sample(patched, tiny_text_conditioning(), condition, canvas_mask(condition), steps=2, cfg=1.0, progress=fail)
    assert all(not m._forward_hooks for m in model.transformer.modules())


def test_text_encoder_layers_are_reported_and_metadata_alpha_is_used(model, tmp_path):
    state = ffn_lora_state_dict(model.transformer, layout="diffusers", rank=4)
    state["text_encoder.layers.0.mlp.fc1.lora_A.weight"] = torch.zeros(4, 16)
    state["text_encoder.layers.0.mlp.fc1.lora_B.weight"] = torch.zeros(16, 4)
    path = tmp_path / "peft.safetensors"
    save_file(state, str(path), metadata={"lora_adapter_metadata": json.dumps({"r": 4, "lora_alpha": 8})})
    weights = lora.load_lora(path, model)
    assert weights.unmatched == ["text_encoder.layers.0.mlp.fc1"]
    assert all(layer.scale == 2.0 for layer in weights.layers.values())
    assert "1 unmatched" in weights.report()


def _save(tmp_path, name: str, state: dict[str, torch.Tensor]):
    path = tmp_path / name
    save_file(state, str(path))
    return path


def test_a_layer_the_pack_cannot_apply_is_an_error_naming_it(model, tmp_path):
    """Mixed with layers it can apply, an unknown layer or another adapter kind is never dropped."""
    state = ffn_lora_state_dict(model.transformer, layout="comfy", rank=4)
    norm = {"diffusion_model.double_blocks.0.img_attn.norm.query_norm.lora_down.weight": torch.zeros(4, 16),
            "diffusion_model.double_blocks.0.img_attn.norm.query_norm.lora_up.weight": torch.zeros(16, 4)}
    with pytest.raises(DreamActorError, match=r"cannot be applied: diffusion_model\.double_blocks\.0\.img_attn\.norm\.query_norm"):
        lora.load_lora(_save(tmp_path, "norm.safetensors", {**state, **norm}), model)
    dora = {"diffusion_model.double_blocks.0.img_mlp.0.dora_scale": torch.ones(1, 32)}
    with pytest.raises(DreamActorError, match=r"'diffusion_model\.double_blocks\.0\.img_mlp\.0\.dora_scale' is not a LoRA"):
        lora.load_lora(_save(tmp_path, "dora.safetensors", {**state, **dora}), model)


def test_fused_qkv_layers_split_into_q_k_v_rows_with_the_down_shared(model, tmp_path):
    """A file with only fused attention layers (ComfyUI's names) loads: up rows in three, down shared."""
    generator = torch.Generator().manual_seed(4)
    state, fused = {}, {}
    for stem, targets in (("double_blocks.1.img_attn.qkv", ("transformer_blocks.1.attn.to_q", "transformer_blocks.1.attn.to_k",
                                                            "transformer_blocks.1.attn.to_v")),
                          ("double_blocks.0.txt_attn.qkv", ("transformer_blocks.0.attn.add_q_proj",
                                                            "transformer_blocks.0.attn.add_k_proj",
                                                            "transformer_blocks.0.attn.add_v_proj")),
                          ("txt_in.individual_token_refiner.blocks.0.self_attn.qkv",
                           tuple(f"context_embedder.token_refiner.refiner_blocks.0.attn.to_{p}" for p in "qkv"))):
        down, up = torch.randn(4, 32, generator=generator), torch.randn(96, 4, generator=generator)
        state.update({f"diffusion_model.{stem}.lora_down.weight": down, f"diffusion_model.{stem}.lora_up.weight": up,
                      f"diffusion_model.{stem}.alpha": torch.tensor(2.0)})
        fused[targets] = (down, up)
    weights = lora.load_lora(_save(tmp_path, "qkv.safetensors", state), model)
    assert weights.unmatched == [] and len(weights.layers) == 9
    for targets, (down, up) in fused.items():
        for part, name in enumerate(targets):
            layer = weights.layers[name]
            assert torch.equal(layer.down, down) and torch.equal(layer.up, up[32 * part:32 * (part + 1)])
            assert layer.scale == 0.5


@pytest.mark.parametrize("prefix", ["diffusion_model.final_layer.adaLN_modulation.1", "lora_unet_final_layer_adaLN_modulation_1",
                                    "transformer.final_layer.adaLN_modulation.1"])
def test_final_layer_modulation_up_halves_follow_the_weights_swap(model, tmp_path, prefix):
    """The original/ComfyUI/kohya final modulation is (shift, scale); diffusers' norm_out is (scale,
    shift): the LoRA's up halves swap with the weight's, and a diffusers-named LoRA is taken as is."""
    down, up = torch.randn(4, 32), torch.randn(64, 4)
    original = lora.load_lora(_save(tmp_path, "final.safetensors", {f"{prefix}.lora_down.weight": down,
                                                                    f"{prefix}.lora_up.weight": up}), model)
    assert torch.equal(original.layers["norm_out.linear"].up, torch.cat([up[32:], up[:32]]))
    assert torch.equal(original.layers["norm_out.linear"].down, down)
    diffusers = lora.load_lora(_save(tmp_path, "final_peft.safetensors", {"transformer.norm_out.linear.lora_A.weight": down,
                                                                          "transformer.norm_out.linear.lora_B.weight": up}), model)
    assert torch.equal(diffusers.layers["norm_out.linear"].up, up)


def test_damaged_lora_files_are_refused_at_load_naming_the_tensor(model, tmp_path):
    """Issue 12: NaN/inf values, mismatched inner ranks and an empty file fail at load, not in the sampler."""
    good = ffn_lora_state_dict(model.transformer, layout="kohya", rank=4)
    key = "lora_unet_double_blocks_0_img_mlp_fc2.lora_up.weight"
    for bad in (float("nan"), float("inf")):
        state = dict(good)
        state[key] = state[key].clone()
        state[key][3, 1] = bad
        with pytest.raises(DreamActorError, match=f"tensor '{re.escape(key)}' contains NaN or infinite"):
            lora.load_lora(_save(tmp_path, "nan.safetensors", state), model)
    state = dict(good)
    state[key] = torch.zeros(state[key].shape[0], 3)
    with pytest.raises(DreamActorError, match="inner ranks differ: 'lora_unet_double_blocks_0_img_mlp_fc2.lora_down.weight'"
                                              ".*'lora_unet_double_blocks_0_img_mlp_fc2.lora_up.weight'"):
        lora.load_lora(_save(tmp_path, "rank.safetensors", state), model)
    with pytest.raises(DreamActorError, match="holds no tensors"):
        lora.load_lora(_save(tmp_path, "empty.safetensors", {}), model)


def test_a_lora_for_another_model_is_a_clear_error(model, tmp_path):
    wan = tmp_path / "wan_lora.safetensors"
    save_file({"diffusion_model.blocks.0.ffn.0.lora_down.weight": torch.zeros(4, 32),
               "diffusion_model.blocks.0.ffn.0.lora_up.weight": torch.zeros(64, 4)}, str(wan))
    with pytest.raises(DreamActorError, match="matches none"):
        lora.load_lora(wan, model)
    bigger = tmp_path / "bigger.safetensors"
    save_file({"lora_unet_double_blocks_0_img_mlp_fc1.lora_down.weight": torch.zeros(4, 3072),
               "lora_unet_double_blocks_0_img_mlp_fc1.lora_up.weight": torch.zeros(12288, 4)}, str(bigger))
    with pytest.raises(DreamActorError, match="different model size"):
        lora.load_lora(bigger, model)
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(wan.read_bytes()[:-10])
    with pytest.raises(DreamActorError, match="truncated"):
        lora.load_lora(truncated, model)
