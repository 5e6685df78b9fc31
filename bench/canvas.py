"""Canvas + mask build throughput as a fraction of a plain memory copy, measured side by side.

Builds a 49-frame canvas of two 480x832 panels (the driving frames already at panel size, so the
build is pure data movement) and its pixel mask, and times a plain ``copy_`` into a fresh tensor of
the same byte count (canvas + mask) in the same run. Both allocate their output, so both pay for
first-touching fresh memory. Best of several runs, one thread each. Target: >= 50% of the copy.
A second line times a build that also resamples the driving frames (for information, no target).

    .venv/bin/python bench/canvas.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from dreamactor_core.canvas.composite import build_canvas  # noqa: E402
from dreamactor_core.canvas.masks import canvas_mask  # noqa: E402

FRAMES, HEIGHT, WIDTH = 49, 480, 832
RUNS = 5
TARGET = 0.5


def best_seconds(function) -> float:
    """The fastest of ``RUNS`` runs (after one warm-up), each result freed before the next."""
    function()
    best = float("inf")
    for _ in range(RUNS):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
        del result
    return best


def main() -> None:
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    reference = torch.rand(1, HEIGHT, WIDTH, 3, generator=generator)
    driving = torch.rand(FRAMES, HEIGHT, WIDTH, 3, generator=generator)

    def build(frames: torch.Tensor = driving):
        canvas, layout = build_canvas(reference, frames)
        return canvas, canvas_mask(layout)

    canvas, mask = build()
    elements = canvas.numel() + mask.numel()
    source = torch.rand(elements, generator=generator)
    copy_seconds = best_seconds(lambda: torch.empty_like(source).copy_(source))
    build_seconds = best_seconds(build)
    megabytes = elements * 4 / 1e6
    ratio = copy_seconds / build_seconds
    print(f"canvas {FRAMES} x {HEIGHT} x {2 * WIDTH} x 3 + mask: {megabytes:.0f} MB written, 1 thread")
    print(f"plain copy:   {copy_seconds * 1e3:7.1f} ms  {megabytes / 1e3 / copy_seconds:5.2f} GB/s")
    print(f"canvas+mask:  {build_seconds * 1e3:7.1f} ms  {megabytes / 1e3 / build_seconds:5.2f} GB/s")
    print(f"ratio: {ratio:.0%} of a plain copy (target >= {TARGET:.0%}): "
          f"{'meets the target' if ratio >= TARGET else 'BELOW the target'}")

    smaller = torch.rand(FRAMES, 360, 624, 3, generator=generator)
    resample_seconds = best_seconds(lambda: build(smaller))
    print(f"with driving frames resampled from 360x624: {resample_seconds * 1e3:7.1f} ms "
          f"({FRAMES / resample_seconds:.0f} frames/s)")


if __name__ == "__main__":
    main()
