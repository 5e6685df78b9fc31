"""``python -m dreamactor_core caption motion|reference|fuse``: target-oriented prompts from a local
Qwen2.5-VL-Instruct (``conditioning/captioner.py``), offline.

``motion`` describes a driving video (``--skeleton`` when it is rendered pose skeletons),
``reference`` a picture, ``fuse`` joins a motion and an appearance description into the prompt
(without ``--model`` it falls back to the template fusion, and says so). ``--model`` is a
Qwen2.5-VL-Instruct folder (e.g. ComfyUI's models/LLM/Qwen2.5-VL-7B-Instruct) or one .safetensors
file holding the vision tower and the LM head (``--tokenizer`` for a file without a tokenizer
folder beside it). Decoding is greedy unless --temperature is set (then seeded by --seed);
``--instruction`` replaces the built-in instruction and ``--show-prompt`` prints the exact text sent.
The answer goes to stdout, everything else to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_options import PRECISIONS


def add_captioner_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """The model options the caption and evaluate commands share."""
    group = parser.add_argument_group("captioner model")
    group.add_argument("--model", type=Path, required=required,
                       help="a Qwen2.5-VL-Instruct folder, or a .safetensors file with vision tower and LM head")
    group.add_argument("--tokenizer", type=Path, help="Qwen2.5 tokenizer folder for a single file without one beside it")
    group.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32")
    group.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")


def load_from_args(args: argparse.Namespace, **settings):
    """The captioner the options name."""
    import torch

    from ..conditioning.captioner import GenerationSettings, load_captioner

    return load_captioner(args.model, tokenizer_dir=args.tokenizer, dtype=getattr(torch, PRECISIONS[args.precision]),
                          device=args.device, settings=GenerationSettings(**settings))


def add_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("caption", help="describe motion / reference, fuse the prompt (local Qwen2.5-VL)",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    jobs = parser.add_subparsers(dest="job", required=True)
    motion = jobs.add_parser("motion", help="describe the motion of a driving video")
    motion.add_argument("video", type=Path)
    motion.add_argument("--frames", type=int, default=8, help="frames sampled evenly over the clip")
    motion.add_argument("--max-frames", type=int, default=None, help="read at most this many frames")
    motion.add_argument("--skeleton", action="store_true", help="the video shows rendered pose skeletons")
    reference = jobs.add_parser("reference", help="describe a reference picture's subject and look")
    reference.add_argument("picture", type=Path)
    fuse = jobs.add_parser("fuse", help="fuse a motion and an appearance description into the prompt")
    fuse.add_argument("--motion", required=True, help="e.g. 'a person is waving both hands'")
    fuse.add_argument("--appearance", required=True, help="e.g. 'a gray bird with colorful feathers'")
    for job in (motion, reference, fuse):
        add_captioner_arguments(job, required=job is not fuse)
        job.add_argument("--instruction", help="replace the built-in instruction (fuse: the system message)")
        job.add_argument("--show-prompt", action="store_true", help="print the exact text sent to the model")
        job.add_argument("--max-new-tokens", type=int, default=64)
        job.add_argument("--temperature", type=float, default=0.0, help="0: greedy (deterministic)")
        job.add_argument("--seed", type=int, default=0)
        job.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..conditioning.prompt import fuse_prompt
    from ..video_io import read_clip, read_image, to_unit_frames

    if args.job == "fuse" and args.model is None:
        print("no --model: template fusion (the subject word replaced), not an LLM", file=sys.stderr)
        print(fuse_prompt(args.motion, args.appearance))
        return 0
    captioner = load_from_args(args, max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
    if args.job == "motion":
        clip = read_clip(args.video, max_frames=args.max_frames)
        reply = captioner.describe_motion(to_unit_frames(clip.frames), fps=clip.fps, count=args.frames,
                                          skeleton=args.skeleton, instruction=args.instruction)
    elif args.job == "reference":
        reply = captioner.describe_reference(to_unit_frames(read_image(args.picture)), instruction=args.instruction)
    else:
        reply = captioner.fuse(args.motion, args.appearance, instruction=args.instruction)
    if args.show_prompt:
        print(f"--- prompt sent ---\n{reply.prompt}\n--- answer ---", file=sys.stderr)
    print(reply.text)
    return 0
