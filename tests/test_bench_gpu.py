"""bench/gpu.py: its CPU mode runs end to end, and its FLOP count is the hand count."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dreamactor_core.models.backbones import get_adapter
from dreamactor_core.testing.tiny_models import TINY_TRANSFORMER_CONFIGS, build_tiny_transformer

ROOT = Path(__file__).resolve().parents[1]
TINY = {**TINY_TRANSFORMER_CONFIGS["hunyuan_video_15"], "patch_size": 1}  # h = 2 x 16 = 32, mlp ratio 2, 2 blocks


@pytest.fixture(scope="module")
def bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_forward_flops_is_the_hand_count(bench):
    # V = 96 video tokens, L = 10 text tokens, S = 106, h = 32, r = 2, C_in = 65, C_out = 32:
    linear = 2 * 32 * 32 * (4 + 2 * 2) * 106  # q, k, v, out and the 2-layer MLP of both streams: 1,736,704
    joint_attention = 4 * 106 * 106 * 32  # Q K^T and P V: 1,438,208
    embed_and_out = 2 * 96 * 32 * (65 + 32)  # 595,968
    assert bench.forward_flops(TINY, 96, 10) == 2 * (linear + joint_attention) + embed_and_out == 6_945_792
    assert bench.step_flops(TINY, 96, (10, 4)) == bench.forward_flops(TINY, 96, 10) + bench.forward_flops(TINY, 96, 4)


def test_linear_part_matches_torchs_flop_counter(bench):
    """torch's counter on the tiny model: each block's matmuls are the formula's linear term plus the
    per-sample modulation (2 norms x 2 h 6h, left out of the formula); x_embedder and proj_out match."""
    adapter = get_adapter("hunyuan_video_15")
    model = build_tiny_transformer()
    generator = torch.Generator().manual_seed(0)
    text = {"encoder_hidden_states": torch.randn(1, 7, 32, generator=generator),
            "encoder_attention_mask": torch.ones(1, 7, dtype=torch.long),
            "image_embeds": torch.randn(1, 3, 16, generator=generator)}
    kwargs = adapter.prepare_conditioning(model, text, 1, torch.device("cpu"), torch.float32)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        adapter.predict_velocity(model, torch.randn(1, 65, 3, 4, 8), torch.tensor([700.0]), kwargs)
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    prefix = type(model).__name__
    assert counts[f"{prefix}.transformer_blocks.0"] == 2 * 32 * 32 * 8 * 106 + 2 * (2 * 32 * 6 * 32)
    assert counts[f"{prefix}.x_embedder"] + counts[f"{prefix}.proj_out"] == 2 * 96 * 32 * (65 + 32)


@pytest.mark.slow
def test_cpu_mode_runs_end_to_end_and_prints_one_json_line():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--cpu"], capture_output=True, text=True,
                            timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert "ratio to bare" in result.stdout
    report = json.loads(lines[-1])
    assert {"device", "dtype", "cfg", "rows", "ratios", "sizes", "vae_decode_s", "wall_s", "peak_bf16_flops"} <= set(report)
    assert report["device"] == "cpu" and report["cfg"] == 6.0
    names = {row["row"] for row in report["rows"]}
    assert {"pack sampler", "bare forward", "diffusers untouched", "compiled forward", "streamed forward",
            "fp8 weights"} <= names
    for row in report["rows"]:
        assert set(row) == {"row", "size", "video_tokens", "seconds_per_step", "peak_gib", "tflops_per_step", "mfu"}
        assert row["seconds_per_step"] > 0
    for size in report["sizes"]:
        assert report["ratios"][size]["pack sampler / bare"] > 0
    if "comfyui native" in names:  # same weights and tokens through ComfyUI's own model: fp32 agreement
        assert max(report["comfy_relative_difference"].values()) < 1e-4
