"""The command line: ``python -m dreamactor_core <command>``.

``animate`` runs the whole pipeline (``pipeline.animate``) on a picture and a video. Model
arguments take paths, or names looked up in a ComfyUI models folder (``--models-dir``, in its
``diffusion_models``, ``vae``, ``text_encoders``, ``clip_vision`` and ``loras`` subfolders), so
artists point it at the files they already have; with ``--models-dir`` the base models default to
the files the shipped workflows use (``default_models.py``). The DreamActor LoRA is always named
with ``--lora``. ``--tiny`` makes tiny random-weight models instead (a smoke test of the pipeline:
the video is noise). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from .default_models import DEFAULT_MODELS
from .errors import DreamActorError, MissingModelFile
from .train.cli import add_train_command

TINY_BANNER = ("TINY RANDOM-WEIGHT MODELS: this run shows the pipeline works end to end; "
               "the video is noise, not a trained animation.")
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def find_model(value: str, folder: str, models_dir: Path | None) -> Path:
    """A path as given, else ``models_dir/folder/value``; missing: an error naming the folder."""
    path = Path(value).expanduser()
    if path.exists():
        return path
    if models_dir is not None and (models_dir / folder / value).exists():
        return models_dir / folder / value
    raise MissingModelFile(value, folder, f"(searched {path}" + (f" and {models_dir / folder})" if models_dir else ")"))


def parse_lora(spec: str) -> tuple[str, float]:
    """``NAME`` or ``NAME:STRENGTH`` (a Windows drive letter is not a strength)."""
    name, sep, strength = spec.rpartition(":")
    if not sep or not strength or "/" in strength or "\\" in strength or len(name) <= 1:
        return spec, 1.0
    try:
        return name, float(strength)
    except ValueError:
        raise DreamActorError(f"--lora '{spec}': expected NAME or NAME:STRENGTH with a number") from None


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
    models = parser.add_argument_group("models (paths, or names inside --models-dir)")
    models.add_argument("--models-dir", type=Path, help="a ComfyUI models folder")
    models.add_argument("--transformer", help="diffusion_models/: the transformer file or diffusers folder")
    models.add_argument("--vae", help="vae/: the VAE file or diffusers folder")
    models.add_argument("--text-encoder", help="text_encoders/: Qwen2.5-VL file or pipeline folder")
    models.add_argument("--glyph-encoder", help="text_encoders/: the ByT5 glyph encoder (optional)")
    models.add_argument("--image-encoder", help="clip_vision/: SigLIP, embeds the reference (optional)")
    models.add_argument("--lora", action="append", default=[], metavar="NAME[:STRENGTH]",
                        help="loras/: a DreamActor LoRA; repeat to stack")
    models.add_argument("--tiny", action="store_true", help="use tiny random-weight models (smoke test)")
    models.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32")
    models.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    video = parser.add_argument_group("video")
    video.add_argument("--width", type=int, default=512, help="panel width (the canvas is twice as wide)")
    video.add_argument("--height", type=int, default=512, help="panel height")
    video.add_argument("--max-frames", type=int, default=None, help="read at most this many driving frames")
    video.add_argument("--stride", type=int, default=1, help="keep every n-th driving frame")
    video.add_argument("--no-transition", action="store_true", help="no black lead-in second")
    video.add_argument("--save-driving", type=Path, help="also write the driving signal (skeletons) video")
    video.add_argument("--save-canvas", type=Path, help="also write the canvas video")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--steps", type=int, default=30)
    sampling.add_argument("--cfg", type=float, default=6.0)
    sampling.add_argument("--shift", type=float, default=None, help="default: the backbone's")
    sampling.add_argument("--solver", choices=("euler", "heun", "dpmpp_2m"), default="euler")
    sampling.add_argument("--seed", type=int, default=0)
    pose = parser.add_argument_group("pose mode")
    pose.add_argument("--pose-backend", choices=("mediapipe", "dwpose", "openpose"), default="mediapipe")
    pose.add_argument("--pose-models-dir", action="append", default=[], help="where DWPose/OpenPose weights are")
    pose.add_argument("--bone-scale", type=float, nargs=2, metavar=("LOW", "HIGH"),
                      help="scale bones by factors drawn from U(LOW, HIGH)")
    parser.set_defaults(run=run_animate)


def _model_files(args: argparse.Namespace, scratch: Path):
    from .pipeline import ModelFiles

    if args.tiny:
        from .tiny_encoders import write_tiny_encoders
        from .tiny_models import write_tiny_models

        print(TINY_BANNER, file=sys.stderr)
        tiny = write_tiny_models(scratch)
        encoders = write_tiny_encoders(scratch / "text_encoders", scratch / "clip_vision")
        loras = tuple((find_model(name, "loras", args.models_dir), s) for name, s in map(parse_lora, args.lora))
        return ModelFiles(tiny["transformer"], tiny["vae"], encoders["pipeline"],
                          image_encoder=encoders["siglip"], loras=loras)
    chosen = {role: getattr(args, role) or (DEFAULT_MODELS[role].name if args.models_dir else None)
              for role in ("transformer", "vae", "text_encoder", "glyph_encoder", "image_encoder")}
    missing = [f"--{role.replace('_', '-')}" for role in ("transformer", "vae", "text_encoder") if not chosen[role]]
    if missing:
        raise DreamActorError(f"{', '.join(missing)}: required (or --models-dir for the default files, or --tiny "
                              "for a smoke test on tiny models)")
    found = {role: find_model(name, DEFAULT_MODELS[role].folder, args.models_dir) if name else None
             for role, name in chosen.items()}
    return ModelFiles(**found, loras=tuple((find_model(name, "loras", args.models_dir), s)
                                           for name, s in map(parse_lora, args.lora)))


def run_animate(args: argparse.Namespace) -> int:
    import torch

    from .pipeline import AnimationSettings, animate, load_models
    from .video_io import read_clip, read_image, to_unit_frames, write_video

    reference = to_unit_frames(read_image(args.reference)[None])
    clip = read_clip(args.driving, max_frames=args.max_frames, stride=args.stride)
    settings = AnimationSettings(
        width=args.width, height=args.height, transition=not args.no_transition, steps=args.steps, cfg=args.cfg,
        shift=args.shift, solver=args.solver, seed=args.seed, negative_prompt=args.negative_prompt,
        pose_backend=args.pose_backend, pose_model_dirs=tuple(args.pose_models_dir),
        bone_scale=tuple(args.bone_scale) if args.bone_scale else None,
    )
    with tempfile.TemporaryDirectory(prefix="dreamactor-tiny-") as scratch:
        files = _model_files(args, Path(scratch))
        models = load_models(files, dtype=getattr(torch, PRECISIONS[args.precision]), device=args.device)
        result = animate(models, reference, to_unit_frames(clip.frames), clip.fps, mode=args.mode,
                         prompt=args.prompt, settings=settings,
                         progress=lambda done, total: print(f"\rsampling {done}/{total}", end="", file=sys.stderr))
    print(file=sys.stderr)
    written = [write_video(args.out, result.frames, result.fps)]
    if args.save_driving:
        written.append(write_video(args.save_driving, result.driving, result.fps))
    if args.save_canvas:
        written.append(write_video(args.save_canvas, result.canvas, result.fps))
    for path in written:
        print(f"wrote {path}")
    if args.tiny:
        print(TINY_BANNER, file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dreamactor_core", description="DreamActor-M2 engine")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_animate(commands)
    add_train_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except DreamActorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
