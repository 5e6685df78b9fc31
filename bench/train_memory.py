"""Estimated peak memory per training process for HunyuanVideo 1.5 at 49/81/121 frames, in each
memory mode (``train/memory.py``): measured at the real width with ONE block on the CPU, then
extrapolated to 54 blocks and the real token counts (see ../shared/real-size-testing.md).

Measured here (fp32, CPU, real config: hidden 2048, 16 heads, MLP 8192, rank-256 LoRA on the FFN):
- the bytes autograd saves inside one block per token (pack hook of ``saved_tensors_hooks``;
  parameters excluded), at two token counts, fitted as a line (it is linear: the pack's attention
  saves no token x token matrix);
- the bytes of a block's inputs per token (what gradient checkpointing keeps per block);
- the bytes saved outside the blocks (embedders, token refiner, final layer);
- parameter counts of the full 54-block model (built on the meta device: exact) and of the LoRA.
Extrapolated (ESTIMATES, not measured on a GPU): activations halved for bf16 autocast; peak
activations = blocks x kept-per-block + 2 x one block's saved tensors (the recompute and its
backward workspace); + the VAE and SigLIP kept for sample renders (3.4 GB bf16) + 1 GB for the
CUDA context and allocator slack. Canvas: 512 x 512 panels (512 x 1024, 2048 tokens a latent
frame), frames 4k+1 -> k+1 latent frames, plus 32 prompt and 729 image tokens in the text stream.

    .venv/bin/python bench/train_memory.py       (about 1-2 minutes, < 4 GB RSS)
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import psutil  # noqa: E402
import torch  # noqa: E402

from dreamactor_core.models.backbones import get_adapter  # noqa: E402
from dreamactor_core.train.lora_peft import add_lora  # noqa: E402
from dreamactor_core.train.memory import transformer_blocks  # noqa: E402

RSS_LIMIT = 8 * 2**30
GB = 1e9
BLOCKS, RANK = 54, 256
TOKENS_PER_LATENT_FRAME = (512 // 16) * (1024 // 16)
TEXT_TOKENS, IMAGE_TOKENS = 32, 729
FRAMES = (49, 81, 121)
MEASURE_TOKENS = (128, 384)  # video tokens of the two measuring forwards
ENCODERS_GB = 2.52 + 0.83  # HunyuanVideo 1.5 VAE and SigLIP-384 in bf16 (file sizes, fp16)
CONTEXT_GB = 1.0
BF16 = 0.5  # saved activations in bf16 autocast against the fp32 measurement (estimate)


def _watchdog() -> None:
    """End this process above RSS_LIMIT (the machine is shared)."""
    me = psutil.Process()
    while True:
        if me.memory_info().rss > RSS_LIMIT:
            print(f"RSS above {RSS_LIMIT / 2**30:.0f} GiB: stopping", flush=True)
            os._exit(3)
        time.sleep(0.2)


def _config(blocks: int) -> dict:
    adapter = get_adapter("hunyuan_video_15")
    path = ROOT / "dreamactor_core/models/backbones/configs" / adapter.transformer_config_file
    config = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}
    return {**config, "num_layers": blocks}


def parameter_counts() -> dict[str, float]:
    """Exact counts of the full model (meta device): all, in blocks, linear weights in blocks."""
    cls = get_adapter("hunyuan_video_15").transformer_cls()
    with torch.device("meta"):
        model = cls.from_config(_config(BLOCKS))
    blocks = transformer_blocks(model)
    in_blocks = sum(p.numel() for b in blocks for p in b.parameters())
    linear = sum(m.weight.numel() for b in blocks for m in b.modules() if isinstance(m, torch.nn.Linear))
    return {"all": sum(p.numel() for p in model.parameters()), "blocks": in_blocks, "block_linear": linear,
            "per_block": in_blocks / len(blocks)}


def measure_block() -> dict[str, float]:
    """fp32 bytes per token saved inside one block (full and checkpoint inputs), and outside."""
    adapter = get_adapter("hunyuan_video_15")
    torch.manual_seed(0)
    model = adapter.transformer_cls().from_config(_config(1))
    model.requires_grad_(False)
    targets = adapter.visual_ffn_modules(model)
    add_lora(model, targets, RANK, float(RANK), 0)
    lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    block = transformer_blocks(model)[0]
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    state = {"inside": False, "full": 0, "outside": 0, "inputs": 0}

    def pack(tensor):
        if tensor.untyped_storage().data_ptr() not in weights:
            state["full" if state["inside"] else "outside"] += tensor.numel() * tensor.element_size()
        return tensor

    def enter(module, args, kwargs):
        state["inside"] = True
        seen = set()
        for value in (*args, *kwargs.values()):
            for tensor in (value if isinstance(value, tuple) else (value,)):
                if isinstance(tensor, torch.Tensor) and tensor.untyped_storage().data_ptr() not in seen:
                    seen.add(tensor.untyped_storage().data_ptr())
                    state["inputs"] += tensor.numel() * tensor.element_size()

    block.register_forward_pre_hook(enter, with_kwargs=True)
    block.register_forward_hook(lambda m, a, o: state.update(inside=False))
    text = {"encoder_hidden_states": torch.randn(1, TEXT_TOKENS, 3584),
            "encoder_attention_mask": torch.ones(1, TEXT_TOKENS), "image_embeds": torch.randn(1, IMAGE_TOKENS, 1152)}
    kwargs = adapter.prepare_conditioning(model, text, 1, torch.device("cpu"), torch.float32)
    points = []
    for tokens in MEASURE_TOKENS:
        state.update(full=0, outside=0, inputs=0)
        latent = torch.randn(1, 65, 1, 8, tokens // 8)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            adapter.predict_velocity(model, latent, torch.tensor([500.0]), kwargs)
        points.append((tokens + TEXT_TOKENS + IMAGE_TOKENS, dict(state)))
    (n0, a), (n1, b) = points
    out = {"lora_per_block": lora / 1}
    for key in ("full", "outside", "inputs"):
        slope = (b[key] - a[key]) / (n1 - n0)
        out[f"{key}_per_token"], out[f"{key}_fixed"] = slope, a[key] - slope * n0
    return out


def estimate(counts: dict, block: dict) -> list[tuple[str, list[float]]]:
    lora = block["lora_per_block"] * BLOCKS
    non_block = counts["all"] - counts["blocks"]
    weights_bf16 = 2 * counts["all"]
    weights_fp8 = 2 * (counts["all"] - counts["block_linear"]) + counts["block_linear"]
    swap_bf16 = 2 * (non_block + 2 * counts["per_block"])
    swap_fp8 = swap_bf16 * weights_fp8 / weights_bf16
    rows = {name: [] for name in ("no checkpointing", "checkpointing (default)", "+ activation offload",
                                  "+ 8-bit AdamW", "+ fp8 base weights", "+ block swap")}
    for frames in FRAMES:
        tokens = ((frames - 1) // 4 + 1) * TOKENS_PER_LATENT_FRAME + TEXT_TOKENS + IMAGE_TOKENS
        full = BF16 * (block["full_per_token"] * tokens + block["full_fixed"])
        kept = BF16 * (block["inputs_per_token"] * tokens + block["inputs_fixed"])
        outside = BF16 * (block["outside_per_token"] * tokens + block["outside_fixed"])
        fixed = (ENCODERS_GB + CONTEXT_GB) * GB
        adam, adam8 = 16 * lora, 10 * lora
        plain = BLOCKS * full + outside
        checkpointed = BLOCKS * kept + 2 * full + outside
        offloaded = kept + 2 * full + outside
        totals = {
            "no checkpointing": weights_bf16 + adam + plain,
            "checkpointing (default)": weights_bf16 + adam + checkpointed,
            "+ activation offload": weights_bf16 + adam + offloaded,
            "+ 8-bit AdamW": weights_bf16 + adam8 + offloaded,
            "+ fp8 base weights": weights_fp8 + adam8 + offloaded,
            "+ block swap": swap_fp8 + adam8 + offloaded,
        }
        for name, value in totals.items():
            rows[name].append((value + fixed) / GB)
    return list(rows.items())


def main() -> None:
    threading.Thread(target=_watchdog, daemon=True).start()
    torch.set_grad_enabled(True)
    start = time.perf_counter()
    counts = parameter_counts()
    block = measure_block()
    rss = psutil.Process().memory_info().rss / 2**30
    print(f"HunyuanVideo 1.5: {counts['all'] / 1e9:.2f}B parameters ({counts['blocks'] / 1e9:.2f}B in {BLOCKS} blocks), "
          f"LoRA rank {RANK}: {block['lora_per_block'] * BLOCKS / 1e6:.0f}M")
    print(f"measured (fp32, one block at real width): saved inside a block {block['full_per_token'] / 1e3:.1f} kB/token, "
          f"block inputs {block['inputs_per_token'] / 1e3:.1f} kB/token, outside the blocks "
          f"{block['outside_per_token'] / 1e3:.1f} kB/token ({time.perf_counter() - start:.0f} s, RSS {rss:.1f} GiB)")
    print("ESTIMATED peak GB per process (bf16, 512x512 panels, VAE+SigLIP resident); modes accumulate downwards:")
    print(f"  {'mode':26s}" + "".join(f"{f'{f} frames':>12s}" for f in FRAMES))
    for name, values in estimate(counts, block):
        print(f"  {name:26s}" + "".join(f"{v:12.1f}" for v in values))


if __name__ == "__main__":
    main()
