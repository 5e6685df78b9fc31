"""``python -m dreamactor_core train bootstrap``: make the RGB stage's self-bootstrapped triplets.

For each source video (in --sources, cut into clips) and each new identity picture (in
--identities), the pose-based model (the backbone with the pose-stage LoRA, --lora) animates the
identity with the clip's motion; the result V_o is scored (--scorer, 1-5 scale) and kept above
--threshold as a triplet in <out>/manifest.jsonl. Every outcome goes to <out>/report.jsonl and the
contact sheets <out>/contact_sheet_NNN.png, for the manual check. Re-running resumes. With
--captioner, a local Qwen2.5-VL describes the motion of videos without a VIDEO.txt and the look of
identities without a NAME.txt (cached, so a re-run captions nothing again). A scorer is
a built-in name (pose_agreement, temporal_stability, appearance; mllm_judge, the Video-Bench-style
judge on a local Qwen2.5-VL named by --judge-model) or your own function as an import
string module:function taking a ScoringInputs (dreamactor_core.train.scoring) and returning 1..5;
add =WEIGHT to weigh it in the combined mean. ``--tiny`` runs on tiny random-weight models (a smoke
test: the videos are noise).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ..errors import DreamActorError
from .cli_options import (
    PRECISIONS,
    TINY_BANNER,
    add_model_arguments,
    add_panel_arguments,
    add_sampling_arguments,
    animation_settings,
    model_files,
)

DEFAULT_SCORERS = ("pose_agreement", "temporal_stability", "appearance")


def add_command(stages: argparse._SubParsersAction) -> None:
    """Register ``bootstrap`` on the ``train`` command's subparsers."""
    parser = stages.add_parser("bootstrap", help="make self-bootstrapped triplets for the RGB stage",
                               description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=Path, required=True, help="folder of source videos (subfolders too)")
    parser.add_argument("--identities", type=Path, required=True,
                        help="folder of new identity pictures (a NAME.txt beside one describes its appearance)")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder (manifest, report, videos)")
    parser.add_argument("--motion", default="a person is dancing",
                        help="the source videos' motion description (a VIDEO.txt beside a video overrides it)")
    parser.add_argument("--captioner", type=Path,
                        help="a Qwen2.5-VL-Instruct model folder or single file (models/LLM): describes the motion "
                             "of each video without a VIDEO.txt and the look of each identity without a NAME.txt "
                             "(cached; freed before generation)")
    parser.add_argument("--captioner-tokenizer", type=Path,
                        help="the Qwen2.5 tokenizer folder for a single captioner file without one beside it")
    parser.add_argument("--cache-dir", type=Path, help="the captions cache (default: OUT/.dreamactor_cache)")
    add_model_arguments(parser, lora_help="loras/: the pose-stage DreamActor LoRA (required except with --tiny; "
                                          "repeat to stack)")
    clips = parser.add_argument_group("clips")
    add_panel_arguments(clips)
    clips.add_argument("--clip-frames", type=int, default=49, help="frames per clip (4k+1 suits the VAE)")
    add_sampling_arguments(parser)
    quality = parser.add_argument_group("filter and manual check")
    quality.add_argument("--scorer", action="append", default=[], metavar="NAME[=WEIGHT]",
                         help="a built-in scorer or module:function; repeat (default: the three built-ins)")
    quality.add_argument("--judge-model", type=Path,
                         help="--scorer mllm_judge: a Qwen2.5-VL-Instruct model folder or single file (models/LLM)")
    quality.add_argument("--judge-tokenizer", type=Path,
                         help="the Qwen2.5 tokenizer folder for a single judge file without one beside it")
    quality.add_argument("--threshold", type=float, default=4.5, help="keep combined scores above this (1-5)")
    quality.add_argument("--thumb", type=int, default=96, help="contact sheet thumbnail size in pixels")
    quality.add_argument("--sheet-frames", type=int, default=4, help="V_src and V_o frames per contact sheet row")
    quality.add_argument("--sheet-rows", type=int, default=50, help="rows per contact sheet picture")
    parser.set_defaults(run=run)


def _model_files(args: argparse.Namespace, scratch: Path):
    """The model files, chosen as ``animate`` chooses them (paths, names in --models-dir, its
    defaults, or tiny ones written to ``scratch``); the pose-stage LoRA is required except on tiny
    models, where the random transformer stands in for the pose-based model."""

    if not args.tiny and not args.lora:
        raise DreamActorError("--lora: the pose-stage LoRA is required (the pose-based model makes V_o: train it "
                              "with 'train pose'), or --tiny for a smoke test on tiny models")
    return model_files(args, scratch)


def run(args: argparse.Namespace) -> int:
    """Build the job from the arguments, load the models, run it and print the summary."""
    import torch

    from ..pipeline import load_models
    from ..train.bootstrap.inputs import ClipOptions
    from ..train.bootstrap.job import BootstrapJob, run_bootstrap
    from ..train.bootstrap.mllm_judge import MllmJudgeScorer
    from ..train.bootstrap.scorers import BUILTIN_SCORERS
    from ..train.bootstrap.scoring import resolve_scorer
    from ..train.captions import ClipCaptions

    dtype = getattr(torch, PRECISIONS[args.precision])
    registry = {**BUILTIN_SCORERS, "mllm_judge": MllmJudgeScorer(args.judge_model, tokenizer_dir=args.judge_tokenizer,
                                                                 dtype=dtype, device=args.device)}

    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    captions = (ClipCaptions(args.captioner, args.cache_dir or args.out / ".dreamactor_cache",
                             tokenizer_dir=args.captioner_tokenizer, device=args.device, dtype=dtype, log=log)
                if args.captioner else None)
    job = BootstrapJob(
        sources=args.sources, identities=args.identities, out=args.out, motion=args.motion, captions=captions,
        scorers=tuple(resolve_scorer(spec, registry) for spec in args.scorer or DEFAULT_SCORERS),
        settings=animation_settings(args),
        clips=ClipOptions(args.clip_frames, args.stride, args.max_frames),
        threshold=args.threshold, thumb=args.thumb, sheet_frames=args.sheet_frames, rows_per_sheet=args.sheet_rows,
    )
    with tempfile.TemporaryDirectory(prefix="dreamactor-tiny-") as scratch:
        files = _model_files(args, Path(scratch))  # a missing file stops the run before any work
        summary = run_bootstrap(job, lambda: load_models(files, dtype=dtype, device=args.device), log=log)
    print(f"kept {summary.kept}, rejected {summary.rejected}, skipped {summary.skipped}, "
          f"already done {summary.already_done}; manifest {args.out / 'manifest.jsonl'}, "
          f"report {args.out / 'report.jsonl'}")
    for sheet in summary.sheets:
        print(f"wrote {sheet}")
    if args.tiny:
        print(TINY_BANNER, file=sys.stderr)
    return 0
