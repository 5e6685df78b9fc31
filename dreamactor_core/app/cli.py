"""The command line: ``python -m dreamactor_core <command>``.

``animate`` runs the whole pipeline on a picture and a video, streamed from file to file in windows of
latent frames (``long_video``), so any length fits in memory. Model
arguments take paths, or names looked up in a ComfyUI models folder (``--models-dir``, in its
``diffusion_models``, ``vae``, ``text_encoders``, ``clip_vision`` and ``loras`` subfolders), so
artists point it at the files they already have; with ``--models-dir`` the base models default to
the files the shipped workflows use (``app/default_models.py``). The DreamActor LoRA is always named
with ``--lora``. ``--tiny`` makes tiny random-weight models instead (a smoke test of the pipeline:
the video is noise). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from ..errors import DreamActorError
from .caption_cli import add_command as add_caption_command
from .cli_options import (
    PRECISIONS,
    TINY_BANNER,
    add_attention_arguments,
    add_model_arguments,
    add_panel_arguments,
    add_sampling_arguments,
    animation_settings,
    model_files,
)
from .evaluate_cli import add_command as add_evaluate_command
from .train_cli import add_train_command


def _add_animate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("animate", help="animate a reference picture with a driving video",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, required=True, help="the picture to animate")
    parser.add_argument("--driving", type=Path, required=True, help="the driving video (mp4, webm, mov, webp, gif)")
    parser.add_argument("--mode", choices=("pose", "rgb"), default="pose",
                        help="pose: skeletons drive the canvas; rgb: the raw frames do")
    parser.add_argument("--out", type=Path, required=True, help="the animation, an .mp4 file")
    parser.add_argument("--prompt", default="", help="the target-oriented prompt (what the character does)")
    parser.add_argument("--negative-prompt", default="")
    add_model_arguments(parser, lora_help="loras/: a DreamActor LoRA; repeat to stack")
    video = parser.add_argument_group("video")
    add_panel_arguments(video)
    video.add_argument("--save-driving", type=Path, help="also write the driving signal (skeletons) video")
    video.add_argument("--save-canvas", type=Path, help="also write the canvas video")
    add_sampling_arguments(parser)
    speed = parser.add_argument_group("speed")
    add_attention_arguments(speed)
    speed.add_argument("--context-parallel", action="store_true",
                       help="share each video's tokens among the processes torchrun starts (Ulysses attention): "
                            "torchrun --nproc_per_node N -m dreamactor_core animate --context-parallel ...")
    parser.add_argument("--bone-scale", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="scale bones by factors drawn from U(LOW, HIGH)")
    parser.add_argument("--pose-box", choices=("group", "person"), default="group",
                        help="group: one clip box over everyone (paper); person: one per tracked person")
    parser.add_argument("--no-tracking", action="store_true", help="dwpose/openpose: do not track people")
    long = parser.add_argument_group("long videos (streamed: memory stays flat whatever the length)")
    long.add_argument("--window-frames", type=int, default=31,
                      help="latent frames per window, the reference frame included (31 = 121 frames)")
    long.add_argument("--context-frames", type=int, default=3,
                      help="latent frames of the previous window each window continues (motion context)")
    parser.set_defaults(run=run_animate)


def run_animate(args: argparse.Namespace) -> int:
    """Streamed from file to file (``long_video``): a clip of any length holds one window in memory."""
    from contextlib import ExitStack, nullcontext

    import torch

    from ..long_video import StreamSettings, animate_stream
    from ..long_video.video_stream import open_video
    from ..models.attention import configured
    from ..models.parallel import context_parallel, is_main_process, torchrun_group
    from ..pipeline import load_models
    from ..video_io import VideoWriter, read_image, to_unit_frames

    if args.context_parallel and (args.cache_threshold > 0 or args.compile):
        raise DreamActorError("--context-parallel: not with --cache-threshold or --compile (untested together; "
                              "with the step cache each process would decide alone which forwards to skip)")
    reference = to_unit_frames(read_image(args.reference)[None])
    source = open_video(args.driving, max_frames=args.max_frames, stride=args.stride)
    settings = animation_settings(args, negative_prompt=args.negative_prompt,
                                  bone_scale=tuple(args.bone_scale) if args.bone_scale else None,
                                  pose_box=args.pose_box, track_people=not args.no_tracking)
    stream = StreamSettings(window_frames=args.window_frames, context_frames=args.context_frames)
    with tempfile.TemporaryDirectory(prefix="dreamactor-tiny-") as scratch, ExitStack() as files:
        chosen = model_files(args, Path(scratch))  # before joining: transformers saves on rank 0 only
        device, main_process = args.device, True
        if args.context_parallel:  # every process samples the whole video; process 0 writes it
            device = files.enter_context(torchrun_group(args.device))
            main_process = is_main_process()
        models = load_models(chosen, dtype=getattr(torch, PRECISIONS[args.precision]), device=device)
        outputs = {}
        for name, path in (("result", args.out), ("driving", args.save_driving), ("canvas", args.save_canvas)):
            if path and main_process:
                outputs[name] = files.enter_context(VideoWriter(path, source.fps))

        def write(chunk) -> None:
            for name, writer in outputs.items():
                if len(getattr(chunk, name)):
                    writer.write(getattr(chunk, name))

        with configured(models.model.transformer, args.attention, args.compile), \
                (context_parallel(models.model.transformer) if args.context_parallel else nullcontext()):
            animate_stream(models, reference, source.chunks(stream.chunk_frames), source.frames, source.fps,
                           mode=args.mode, prompt=args.prompt, write=write, settings=settings, stream=stream,
                           progress=lambda done, total: main_process and print(f"\rsampling {done}/{total}", end="",
                                                                               file=sys.stderr))
    if not main_process:
        return 0
    print(file=sys.stderr)
    for writer in outputs.values():
        print(f"wrote {writer.path}")
    if args.tiny:
        print(TINY_BANNER, file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dreamactor_core", description="DreamActor-M2 engine")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_animate(commands)
    add_train_command(commands)
    add_caption_command(commands)
    add_evaluate_command(commands)
    return parser


def _show_engine_log() -> None:
    """The engine's INFO lines (the long-video time estimate, skipped inputs) on stderr: a command-line
    user has no other place to see them. Only ``dreamactor_core``'s logger, so libraries stay quiet."""
    engine = logging.getLogger("dreamactor_core")
    if not engine.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        engine.addHandler(handler)
        engine.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _show_engine_log()
    try:
        return args.run(args)
    except DreamActorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
