"""Training memory modes on the tiny transformer (CPU): block swap and activation offload change
where tensors live, not the numbers; 8-bit AdamW keeps 8-bit moments; fp8 base weights train."""

from __future__ import annotations

import pytest
import torch
from train_fixtures import tiny_config, tiny_model_paths, video_folder

from dreamactor_core.errors import DreamActorError
from dreamactor_core.models import checkpoints
from dreamactor_core.testing.tiny_models import build_tiny_transformer
from dreamactor_core.train.loop import train
from dreamactor_core.train.memory import FrozenBlockSwap, activation_context, make_optimizer, transformer_blocks
from dreamactor_core.train.stages import pose_stage

QUIET = lambda message: None  # noqa: E731


def _inputs(transformer):
    """Random inputs of the tiny HunyuanVideo 1.5 transformer (96 tokens) and its text kwargs."""
    from dreamactor_core.models.backbones import get_adapter
    from dreamactor_core.testing.tiny_models import tiny_text_conditioning

    adapter = get_adapter("hunyuan_video_15")
    generator = torch.Generator().manual_seed(0)
    model_input = torch.randn(1, 65, 2, 4, 8, generator=generator)
    text = adapter.prepare_conditioning(transformer, tiny_text_conditioning(), 1, torch.device("cpu"), torch.float32)
    return adapter, model_input, text


def _loss_and_grads(transformer, swap: bool):
    adapter, model_input, text = _inputs(transformer)
    transformer.requires_grad_(False)
    trainable = [block.ff.net[2].weight for block in transformer_blocks(transformer) if hasattr(block, "ff")]
    for parameter in trainable:
        parameter.requires_grad_(True)
    transformer.enable_gradient_checkpointing()
    transformer.train()
    seen = []
    if swap:
        swapper = FrozenBlockSwap(transformer, torch.device("cpu"))
        block = swapper.blocks[0]
        host = {id(t): h.data_ptr() for t, h in swapper.frozen[block]}
        block.register_forward_pre_hook(lambda m, a: seen.append(all(  # runs after the swap's own pre-hook
            t.data_ptr() != host[id(t)] for t, _ in swapper.frozen[m])))
    loss = adapter.predict_velocity(transformer, model_input, torch.tensor([500.0]), text).pow(2).mean()
    loss.backward()
    if swap:
        # While the block ran (forward, then the checkpoint's recompute, which PyTorch stops early)
        # its frozen weights were a device copy; afterwards they are the host tensors again.
        assert seen == [True, True]
        assert all(t.data_ptr() == h.data_ptr() for t, h in swapper.frozen[block])
        assert swapper.frozen_names(transformer) and not any(p.requires_grad for p in swapper.frozen[block][0][:1])
    return loss.item(), [p.grad.clone() for p in trainable]


def test_block_swap_moves_frozen_weights_per_block_and_keeps_the_numbers():
    plain_loss, plain_grads = _loss_and_grads(build_tiny_transformer(), swap=False)
    loss, grads = _loss_and_grads(build_tiny_transformer(), swap=True)
    # The same operations on the same values (copies of the weights): equal up to float rounding.
    assert loss == pytest.approx(plain_loss, rel=1e-6)
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-8) for a, b in zip(grads, plain_grads))


def test_activation_offload_uses_save_on_cpu_only_when_asked():
    on = activation_context(tiny_config(offload_activations=True), torch.device("cpu"))
    assert isinstance(on, torch.autograd.graph.save_on_cpu)
    assert not isinstance(activation_context(tiny_config(), torch.device("cpu")), torch.autograd.graph.save_on_cpu)


def test_eight_bit_adamw_keeps_uint8_moments():
    pytest.importorskip("bitsandbytes")
    parameter = torch.nn.Parameter(torch.randn(128, 128))
    optimizer = make_optimizer([parameter], tiny_config(optimizer="adamw8bit", learning_rate=1e-3))
    parameter.grad = torch.randn_like(parameter)
    before = parameter.detach().clone()
    optimizer.step()
    state = optimizer.state[parameter]
    assert state["state1"].dtype == torch.uint8 and state["state2"].dtype == torch.uint8
    assert (parameter.detach() - before).abs().max().item() == pytest.approx(1e-3, rel=0.05)  # first step: ~lr


def test_block_swap_needs_checkpointing_and_a_known_optimizer():
    with pytest.raises(DreamActorError, match="block_swap needs gradient_checkpointing"):
        tiny_config(block_swap=True, gradient_checkpointing=False)
    with pytest.raises(DreamActorError, match="optimizer must be one of adamw, adamw8bit"):
        tiny_config(optimizer="sgd")


def test_training_in_low_memory_modes_gives_the_plain_runs_weights(tmp_path, train_cache):
    videos = video_folder(tmp_path / "clips", frames=5)
    paths = tiny_model_paths(tmp_path)
    base = dict(min_frames=5, max_frames=5, max_steps=2, learning_rate=1e-3, gradient_checkpointing=True)
    results = {}
    for name, modes in {"plain": {}, "swap": dict(block_swap=True, offload_activations=True)}.items():
        config = tiny_config(**base, **modes)
        stage = pose_stage(videos, config, train_cache, QUIET)
        results[name] = train(stage, paths, config, tmp_path / f"{name}.safetensors", cache_dir=train_cache, log=QUIET)
    plain, swapped = (checkpoints.load_state_dict(results[name].lora) for name in ("plain", "swap"))
    assert results["plain"].losses == pytest.approx(results["swap"].losses, rel=1e-5)
    # Same math on copies of the same weights; AdamW's update is ~lr per element, rounding far below.
    assert max((plain[key] - swapped[key]).abs().max().item() for key in plain) < 1e-6


def test_fp8_base_weights_and_eight_bit_adamw_train(tmp_path, train_cache):
    pytest.importorskip("bitsandbytes")
    config = tiny_config(min_frames=5, max_frames=5, max_steps=2, learning_rate=1e-3, fp8_weights=True,
                         optimizer="adamw8bit")
    stage = pose_stage(video_folder(tmp_path / "clips", frames=5), config, train_cache, QUIET)
    result = train(stage, tiny_model_paths(tmp_path), config, tmp_path / "fp8.safetensors", cache_dir=train_cache,
                   log=QUIET)
    weights = checkpoints.load_state_dict(result.lora)
    assert torch.isfinite(torch.tensor(result.losses)).all()
    assert max(weights[key].abs().max().item() for key in weights if "lora_up" in key) > 1e-4
