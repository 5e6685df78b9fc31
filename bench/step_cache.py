"""Step cache on the pack's sampler: forwards run whole and distance to the uncached latent, side by side.

A tiny random-weight HunyuanVideo 1.5 (the real class, ``--layers`` blocks) samples the tiny canvas at
30 steps with CFG (two forwards a step) at several ``cache_threshold`` values; each row shows the
forwards that ran every block, the share saved, the relative L2 distance of the final latent to the
uncached run, and the wall time against the uncached run. Random weights: the distance shows the
mechanism, not the visual quality of a trained model. Prints a table and one JSON line.

    .venv/bin/python bench/step_cache.py [--steps 30] [--layers 4] [--thresholds 0.05 0.1 0.2 0.3 0.5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamactor_core import sampling  # noqa: E402
from dreamactor_core.models.backbones import get_adapter  # noqa: E402
from dreamactor_core.models.loading import DreamActorModel  # noqa: E402
from dreamactor_core.testing.tiny_models import TINY_TRANSFORMER_CONFIGS, tiny_text_conditioning  # noqa: E402

LATENT = (1, 32, 3, 4, 8)


def _mask(latent: torch.Tensor) -> torch.Tensor:
    mask = torch.zeros(latent.shape[0], 1, *latent.shape[2:])
    mask[:, :, 0, :, : latent.shape[-1] // 2] = 1
    mask[:, :, :, :, latent.shape[-1] // 2:] = 1
    return mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3, 0.5])
    args = parser.parse_args()

    adapter = get_adapter("hunyuan_video_15")
    torch.manual_seed(0)
    transformer = adapter.transformer_cls()(**{**TINY_TRANSFORMER_CONFIGS["hunyuan_video_15"],
                                               "num_layers": args.layers}).eval()
    model = DreamActorModel(transformer, adapter, "bench.safetensors")
    condition = torch.randn(LATENT, generator=torch.Generator().manual_seed(1))
    runs = [0]
    transformer.transformer_blocks[-1].ff.register_forward_hook(lambda *_: runs.__setitem__(0, runs[0] + 1))

    def run(threshold: float) -> tuple[torch.Tensor, int, float]:
        runs[0] = 0
        start = time.perf_counter()
        latent = sampling.sample(model, tiny_text_conditioning(), condition, _mask(condition),
                                 negative=tiny_text_conditioning(seed=1), seed=5, steps=args.steps, cfg=6.0,
                                 cache_threshold=threshold)
        return latent, runs[0], time.perf_counter() - start

    run(0.0)  # warm-up
    plain, total, plain_time = run(0.0)
    rows = []
    print(f"tiny HunyuanVideo 1.5, {args.layers} blocks, {args.steps} steps x 2 branches = {total} forwards (CPU)")
    print(f"{'threshold':>9} {'whole':>6} {'saved':>6} {'rel L2':>9} {'time vs off':>11}")
    for threshold in [0.0, *args.thresholds]:
        latent, whole, seconds = run(threshold)
        distance = float((latent - plain).norm() / plain.norm())
        rows.append({"threshold": threshold, "whole_forwards": whole, "forwards": total,
                     "saved": 1 - whole / total, "rel_l2": distance, "time_ratio": seconds / plain_time})
        print(f"{threshold:>9.2f} {whole:>6d} {1 - whole / total:>6.0%} {distance:>9.2e} {seconds / plain_time:>10.2f}x")
    print(json.dumps({"bench": "step_cache", "steps": args.steps, "layers": args.layers, "rows": rows}))


if __name__ == "__main__":
    main()
