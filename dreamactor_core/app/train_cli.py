"""``python -m dreamactor_core train pose|rgb|bootstrap``: the training commands.

Settings: the paper's defaults (``config.TrainConfig``), then ``--config FILE`` (TOML or JSON, field
names as keys), then one flag per setting (``--learning-rate``, ``--max-steps``, ...). ``--tiny``
trains on tiny random-weight models written to a temporary folder, with small-clip defaults: a smoke
test of the whole path on a CPU (the LoRA it writes has no use beyond that).
Multi-GPU or multi-node: start the same command with ``accelerate launch`` (DDP, or FSDP with
``--fsdp``); see the README's Training section.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

from ..train.config import TrainConfig, make_config, read_config_file
from . import bootstrap_cli
from .cli_options import add_model_arguments, find_model, model_files

# Tiny models: 64 x 64 panels and 9 frames give the tiny HunyuanVideo 1.5 transformer 96 tokens.
TINY_SETTINGS: dict[str, Any] = dict(width=64, height=64, min_frames=9, max_frames=9, rank=8, max_steps=2,
                                     checkpoint_every=0, sample_every=0, sample_steps=2, log_every=1,
                                     gradient_checkpointing=False, driving_mask_seconds=0.25)


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (override --config; defaults: the paper's recipe)")
    for setting in fields(TrainConfig):
        flag, default = "--" + setting.name.replace("_", "-"), setting.default
        options: dict[str, Any] = {"dest": setting.name, "default": None, "help": f"{setting.metadata['help']} "
                                   f"(default {default!r})"}
        if isinstance(default, bool):
            options["action"] = argparse.BooleanOptionalAction
        elif setting.name == "bone_scale_range":
            options.update(type=float, nargs=2, metavar=("LOW", "HIGH"))
        elif setting.name == "pose_model_dirs":
            options.update(type=str, nargs="+")
        else:
            options["type"] = float if default is None else type(default)
        group.add_argument(flag, **options)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="the LoRA to write (.safetensors)")
    parser.add_argument("--config", type=Path, help="settings file (.toml or .json)")
    parser.add_argument("--cache-dir", type=Path, help="pose and prompt caches (default: .dreamactor_cache beside --out)")
    parser.add_argument("--resume", help="'latest' or a checkpoint folder (OUT_checkpoints/step_NNNNNNNN)")
    add_model_arguments(parser, lora_help=None, runtime=False)  # accelerate picks device and precision
    _add_setting_flags(parser)


def add_train_command(commands: argparse._SubParsersAction) -> None:
    """Register ``train`` with its stages on the top-level command parser."""
    parser = commands.add_parser("train", help="train DreamActor LoRAs: pose stage, bootstrap data, RGB stage",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    stages = parser.add_subparsers(dest="stage", required=True)
    pose = stages.add_parser("pose", help="pose stage: a folder of human videos (skeleton-driven LoRA)")
    pose.add_argument("--videos", type=Path, required=True,
                      help="folder of videos (mp4, webm, mov, webp, ...); prompts from <name>.txt or captions.json, "
                           "else --captioner, else --prompt")
    pose.add_argument("--init-lora", help="loras/: continue from this LoRA (same backbone, rank, layers)")
    _add_common(pose)
    pose.set_defaults(run=run_pose)
    rgb = stages.add_parser("rgb", help="RGB stage: bootstrap triplets, warm-started from the pose LoRA")
    rgb.add_argument("--manifest", type=Path, required=True, help="manifest.jsonl written by 'train bootstrap'")
    rgb.add_argument("--init-lora", required=True, help="loras/: the pose stage's LoRA (paper: warm start)")
    _add_common(rgb)
    rgb.set_defaults(run=run_rgb)
    bootstrap_cli.add_command(stages)


def _config(args: argparse.Namespace) -> TrainConfig:
    file_values = read_config_file(args.config) if args.config else {}
    base = {**(TINY_SETTINGS if args.tiny else {}), **file_values}
    return make_config(base, {setting.name: getattr(args, setting.name) for setting in fields(TrainConfig)})


def _run(args: argparse.Namespace, make_stage: Callable[[TrainConfig, Path], Any]) -> int:
    from ..train.loop import train

    config = _config(args)
    cache_dir = args.cache_dir or args.out.parent / ".dreamactor_cache"
    init_lora = find_model(args.init_lora, "loras", args.models_dir) if args.init_lora else None
    with tempfile.TemporaryDirectory(prefix="dreamactor-train-") as scratch:
        paths = model_files(args, Path(scratch))
        stage = make_stage(config, cache_dir)
        train(stage, paths, config, args.out, cache_dir=cache_dir, init_lora=init_lora, resume=args.resume)
    return 0


def run_pose(args: argparse.Namespace) -> int:
    from ..train.loop import run_report
    from ..train.stages import pose_stage

    return _run(args, lambda config, cache_dir: pose_stage(args.videos, config, cache_dir, report=run_report(args.out)))


def run_rgb(args: argparse.Namespace) -> int:
    from ..train.stages import rgb_stage

    return _run(args, lambda config, cache_dir: rgb_stage(args.manifest, config))
