"""Command-line options shared by ``animate``, ``train pose|rgb`` and ``train bootstrap``: which
model files (paths, names inside a ComfyUI models folder, the shipped workflows' defaults, or tiny
random-weight ones), the panel and clip options, and the sampler and pose options. One definition,
so the commands choose files and read settings the same way."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DreamActorError, MissingModelFile
from .default_models import DEFAULT_MODELS

TINY_BANNER = ("TINY RANDOM-WEIGHT MODELS: this run shows the pipeline works end to end; "
               "the video is noise, not a trained animation.")
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
BASE_MODELS = ("transformer", "vae", "text_encoder", "glyph_encoder", "image_encoder")


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


def add_model_arguments(parser: argparse.ArgumentParser, *, lora_help: str | None, runtime: bool = True) -> None:
    """--models-dir, one flag per base model, --lora (when ``lora_help``), --tiny, and (``runtime``)
    --precision and --device."""
    models = parser.add_argument_group("models (paths, or names inside --models-dir)")
    models.add_argument("--models-dir", type=Path, help="a ComfyUI models folder; the base models default to "
                        "the files the shipped workflows use")
    models.add_argument("--transformer", help="diffusion_models/: the transformer file or diffusers folder")
    models.add_argument("--vae", help="vae/: the VAE file or diffusers folder")
    models.add_argument("--text-encoder", help="text_encoders/: Qwen2.5-VL file or pipeline folder")
    models.add_argument("--glyph-encoder", help="text_encoders/: the ByT5 glyph encoder (optional)")
    models.add_argument("--image-encoder", help="clip_vision/: SigLIP, embeds the reference (optional)")
    if lora_help:
        models.add_argument("--lora", action="append", default=[], metavar="NAME[:STRENGTH]", help=lora_help)
    models.add_argument("--tiny", action="store_true", help="tiny random-weight models (smoke test; output is noise)")
    if runtime:
        models.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32")
        models.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")


def model_files(args: argparse.Namespace, scratch: Path):
    """The ``pipeline.ModelFiles`` the options name; tiny ones are written to ``scratch``."""
    from ..pipeline import ModelFiles

    if args.tiny:
        from ..testing.stand_ins import write_tiny_model_files

        print(TINY_BANNER, file=sys.stderr)
        return write_tiny_model_files(scratch, loras=_loras(args))
    chosen = {role: getattr(args, role) or (DEFAULT_MODELS[role].name if args.models_dir else None)
              for role in BASE_MODELS}
    missing = [f"--{role.replace('_', '-')}" for role in ("transformer", "vae", "text_encoder") if not chosen[role]]
    if missing:
        raise DreamActorError(f"{', '.join(missing)}: required (or --models-dir for the default files, or --tiny "
                              "for a smoke test on tiny models)")
    found = {role: find_model(name, DEFAULT_MODELS[role].folder, args.models_dir) if name else None
             for role, name in chosen.items()}
    return ModelFiles(**found, loras=_loras(args))


def _loras(args: argparse.Namespace) -> tuple[tuple[Path, float], ...]:
    return tuple((find_model(name, "loras", args.models_dir), strength)
                 for name, strength in map(parse_lora, getattr(args, "lora", [])))


def add_panel_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--width", type=int, default=512, help="panel width (the canvas is twice as wide)")
    group.add_argument("--height", type=int, default=512, help="panel height")
    group.add_argument("--stride", type=int, default=1, help="keep every n-th driving frame")
    group.add_argument("--max-frames", type=int, default=None, help="read at most this many frames per video")
    group.add_argument("--no-transition", action="store_true", help="no black lead-in second")


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    from ..pose.extract import BACKENDS

    sampling = parser.add_argument_group("sampling and poses")
    sampling.add_argument("--steps", type=int, default=None,
                          help="default: the transformer release's (30; 8 for step-distilled HunyuanVideo 1.5)")
    sampling.add_argument("--cfg", type=float, default=None, help="default: the release's (6; 1 for distilled ones)")
    sampling.add_argument("--shift", type=float, default=None, help="default: the release's (5 at 480p, 7 at 720p "
                          "and step-distilled)")
    sampling.add_argument("--cache-threshold", type=float, default=0.0,
                          help="step cache: skip a forward when its first block changed less than this (relative); "
                               "0 = off, 0.1-0.3 saves forwards (bench/step_cache.py)")
    sampling.add_argument("--solver", choices=("euler", "heun", "dpmpp_2m"), default="euler")
    sampling.add_argument("--seed", type=int, default=0)
    sampling.add_argument("--pose-backend", choices=BACKENDS, default="mediapipe",
                          help="mediapipe follows one person; the others find several")
    sampling.add_argument("--pose-models-dir", action="append", default=[], help="where DWPose/OpenPose weights are")


def add_attention_arguments(group: argparse._ArgumentGroup) -> None:
    """--attention (the kernel, ``auto`` per device) and --compile (regional torch.compile)."""
    from ..models.attention import ATTENTION_CHOICES

    group.add_argument("--attention", choices=ATTENTION_CHOICES, default="auto",
                       help="attention kernel: auto picks FlashAttention when installed on a GPU, else torch SDPA")
    group.add_argument("--compile", action="store_true",
                       help="torch.compile each transformer block (minutes once, then faster steps)")


def animation_settings(args: argparse.Namespace, **extra):
    """The ``pipeline.AnimationSettings`` of the panel and sampling options."""
    from ..pipeline import AnimationSettings

    return AnimationSettings(
        width=args.width, height=args.height, transition=not args.no_transition, steps=args.steps, cfg=args.cfg,
        shift=args.shift, cache_threshold=args.cache_threshold, solver=args.solver, seed=args.seed, pose_backend=args.pose_backend,
        pose_model_dirs=tuple(args.pose_models_dir), **extra,
    )
