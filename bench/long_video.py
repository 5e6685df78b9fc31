"""Long videos streamed from file to file (``dreamactor_core.long_video``), tiny HunyuanVideo 1.5 models, CPU.

Prints:
 1. peak host memory of ``animate`` from an mp4 to an mp4 at N and 4N driving frames (each run in a fresh
    process; RssAnon above the value after the models are loaded), the streamed path next to the
    whole-clip path (read the clip, ``pipeline.animate``, write): the ratio 4N / N (target <= 1.2x for
    the streamed path). On the CPU host memory is the device memory too. Separate processes differ
    by up to ~10% in what the allocator keeps, so the streamed 4N run also reports its own peak after
    its first N frames against its peak at the end: the same process, so only growth shows (1.00x:
    none; the whole clip would be ~4x).
 2. a seam measure: the mean absolute change between consecutive result frames across a window
    boundary, over the same measure inside windows (1.0 = boundaries look like any other frame step),
    with the motion context (the default 3 latent frames, here 2 for the short windows) and without.
    Random tiny weights: the numbers show the machinery, not a trained model's seams.

    .venv/bin/python bench/long_video.py [--frames 128]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import torch  # noqa: E402

# 128 x 128 panels: a window's working set (~0.7-0.8 GB, mostly the tiny VAE's activations) then
# outweighs what glibc keeps of freed memory between windows (~0.1-0.2 GB, varying run to run); at
# 64 x 64 the two were alike and the ratio was noise (0.91x to 1.40x for the same code).
PANEL, WINDOW, CONTEXT, STEPS = 128, 6, 2, 2


def _models(folder: Path):
    from dreamactor_core.pipeline import load_models
    from dreamactor_core.testing.stand_ins import write_tiny_model_files

    return load_models(write_tiny_model_files(folder, image_encoder=False))


def _settings():
    from dreamactor_core.pipeline import AnimationSettings

    return AnimationSettings(width=PANEL, height=PANEL, steps=STEPS, cfg=1.0, tile_size=0)


def run_case(path: str, out: str, streamed: bool, context: int, scratch: str) -> dict:
    """One animate run from ``path`` to ``out`` in this process; its peak memory and result frames."""
    from dreamactor_core.long_video import StreamSettings, animate_stream
    from dreamactor_core.long_video.video_stream import open_video
    from dreamactor_core.pipeline import animate
    from dreamactor_core.testing.real_size import PeakMemory
    from dreamactor_core.video_io import VideoWriter, read_clip, to_unit_frames, write_video

    torch.set_num_threads(2)
    models = _models(Path(scratch))
    reference = torch.rand(1, PANEL, PANEL, 3, generator=torch.Generator().manual_seed(0))
    frames: list[torch.Tensor] = []
    running: list[tuple[int, int]] = []  # (frames written, peak so far) after each window
    with PeakMemory() as peak:
        if streamed:
            source = open_video(path)
            with VideoWriter(out, source.fps) as writer:
                def write(chunk):
                    writer.write(chunk.result)
                    running.append((writer.frames, peak.anon))
                    if out.endswith("keep.mp4"):
                        frames.append(chunk.result)
                report = animate_stream(models, reference, source.chunks(16), source.frames, source.fps, mode="rgb",
                                        prompt="a test", write=write, settings=_settings(),
                                        stream=StreamSettings(WINDOW, context, 16))
            boundaries = [4 * (w.new[0] - 1) + 1 - round(source.fps) for w in report.windows[1:]]
        else:
            clip = read_clip(path)
            result = animate(models, reference, to_unit_frames(clip.frames), clip.fps, mode="rgb", prompt="a test",
                             settings=_settings())
            write_video(out, result.frames, result.fps)
            boundaries = []
    seam = None
    if frames:
        video = torch.cat(frames)
        steps = (video[1:] - video[:-1]).abs().mean(dim=(1, 2, 3))  # steps[i]: frame i -> i + 1
        across = [i - 1 for i in boundaries if 0 < i < len(video)]
        inside = [i for i in range(len(steps)) if i not in across]
        seam = float(steps[across].mean() / steps[inside].mean())
    quarter = next(top for written, top in running if 4 * written >= running[-1][0]) if running else None
    return {"peak": peak.anon, "seam": seam, "peak_first_quarter": quarter}


def _subprocess(*args: str) -> dict:
    run = subprocess.run([sys.executable, __file__, "--case", *args], capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=128, help="N: driving frames of the short clip")
    parser.add_argument("--case", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        path, out, streamed, context, scratch = args.case
        print(json.dumps(run_case(path, out, streamed == "1", int(context), scratch)))
        return
    from dreamactor_core.video_io import VideoWriter

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        clips = {}
        for count in (args.frames, 4 * args.frames):  # a moving gradient, so frames differ
            clips[count] = folder / f"driving_{count}.mp4"
            ramp = torch.linspace(0, 1, PANEL).view(1, PANEL, 1, 1)
            with VideoWriter(clips[count], 24) as writer:
                for start in range(0, count, 32):
                    t = torch.arange(start, min(start + 32, count)).view(-1, 1, 1, 1) / 24
                    writer.write(((ramp + t).remainder(1.0)).expand(-1, PANEL, PANEL, 3))
        print(f"tiny HunyuanVideo 1.5, {PANEL}x{PANEL} panels, {STEPS} steps, windows of {WINDOW} latent frames, "
              f"context {CONTEXT}; peak RssAnon above the loaded models")
        print(f"{'path':<12}{'N = ' + str(args.frames):>14}{'4N':>14}{'4N / N':>10}")
        for name, streamed in (("streamed", "1"), ("whole clip", "0")):
            runs = [_subprocess(str(clips[c]), str(folder / f"out_{c}.mp4"), streamed, str(CONTEXT),
                                str(folder / f"models_{name[0]}{c}")) for c in clips]
            peaks = [run["peak"] for run in runs]
            print(f"{name:<12}{peaks[0] / 2**20:>11.1f} MB{peaks[1] / 2**20:>11.1f} MB{peaks[1] / peaks[0]:>9.2f}x")
            if runs[1]["peak_first_quarter"]:
                first = runs[1]["peak_first_quarter"]
                print(f"{'  in the 4N run: after its first N frames':<44}{first / 2**20:>8.1f} MB, at the end "
                      f"{peaks[1] / 2**20:.1f} MB: {peaks[1] / first:.2f}x")
        for context in (CONTEXT, 0):
            seam = _subprocess(str(clips[args.frames]), str(folder / "keep.mp4"), "1", str(context),
                               str(folder / f"models_seam{context}"))["seam"]
            print(f"seam (across / inside windows), context {context} latent frames: {seam:.2f}")


if __name__ == "__main__":
    main()
