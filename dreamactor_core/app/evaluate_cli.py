"""``python -m dreamactor_core evaluate``: score finished animations (``app/evaluation.py``).

Each result video in --results is paired by name with a reference picture in --references and a
driving video in --driving (``NAME.mp4`` with ``NAME.png`` and ``NAME.mp4``, or ``REF__DRIVE.mp4``
with ``REF.png`` and ``DRIVE.mp4``). Measured per video and averaged: temporal flicker and motion
smoothness (always), pose agreement with the driving clip (--pose-backend, 'none' to skip; the
multi-person backends track people and score them person by person),
SigLIP similarity of each frame to the reference (--image-encoder), and the four Video-Bench
judge scores 1-5 (--model, a Qwen2.5-VL-Instruct). Writes <out>/report.json and contact sheets.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .caption_cli import add_captioner_arguments, load_from_args


def add_command(commands: argparse._SubParsersAction) -> None:
    from ..pose.extract import BACKENDS

    parser = commands.add_parser("evaluate", help="score finished animations (AW-Bench style)",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True, help="folder of result videos")
    parser.add_argument("--references", type=Path, required=True, help="folder of reference pictures")
    parser.add_argument("--driving", type=Path, required=True, help="folder of driving videos")
    parser.add_argument("--out", type=Path, help="report folder (default: <results>/evaluation)")
    parser.add_argument("--max-frames", type=int, default=None, help="read at most this many frames per video")
    parser.add_argument("--pose-backend", choices=(*BACKENDS, "none"), default="mediapipe",
                        help="mediapipe follows one person; the others find several")
    parser.add_argument("--pose-models-dir", action="append", default=[], help="where DWPose/OpenPose weights are")
    parser.add_argument("--image-encoder", type=Path, help="SigLIP file or folder (sigclip_vision_patch14_384)")
    parser.add_argument("--judge-frames", type=int, default=8, help="result frames the judge sees")
    parser.add_argument("--thumb", type=int, default=96, help="contact sheet thumbnail size in pixels")
    add_captioner_arguments(parser, required=False)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..conditioning.image_encoder import load_image_encoder
    from ..pose import extract
    from .cli_options import PRECISIONS
    from .evaluation import Evaluators, evaluate

    evaluators = Evaluators(judge_frames=args.judge_frames)
    if args.pose_backend == "none":
        evaluators.skipped["pose_agreement"] = "--pose-backend none"
    else:
        track = args.pose_backend in extract.MULTI_PERSON_BACKENDS  # as the pipeline tracks them

        def extract_poses(frames):
            estimator = extract.make_estimator(args.pose_backend, args.pose_models_dir, video=len(frames) > 1)
            return extract.extract_poses(frames, estimator, track=track)

        evaluators.extract_poses, evaluators.people_tracked = extract_poses, track
    if args.image_encoder is None:
        evaluators.skipped["siglip_similarity"] = "no --image-encoder"
    else:
        evaluators.image_encoder = load_image_encoder(args.image_encoder, dtype=getattr(torch, PRECISIONS[args.precision]),
                                                      device=args.device)
    if args.model is None:
        evaluators.skipped["judge"] = "no --model (a Qwen2.5-VL-Instruct judge)"
    else:
        evaluators.judge = load_from_args(args)
    out = args.out or args.results / "evaluation"
    report = evaluate(args.results, args.references, args.driving, out, evaluators, max_frames=args.max_frames,
                      thumb=args.thumb, log=lambda message: print(message, file=sys.stderr))
    for item in report["skipped"]:
        print(f"skipped {item['name']}: {item['reason']}", file=sys.stderr)
    print(json.dumps(report["average"], indent=2))
    print(f"wrote {out / 'report.json'}", *(f"wrote {sheet}" for sheet in report["sheets"]), sep="\n")
    return 0
