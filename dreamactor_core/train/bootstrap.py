"""``python -m dreamactor_core train bootstrap``: make the RGB stage's self-bootstrapped triplets.

For each source video (in --sources, cut into clips) and each new identity picture (in
--identities), the pose-based model (the backbone with the pose-stage LoRA, --lora) animates the
identity with the clip's motion; the result V_o is scored (--scorer, 1-5 scale) and kept above
--threshold as a triplet in <out>/manifest.jsonl. Every outcome goes to <out>/report.jsonl and the
contact sheets <out>/contact_sheet_NNN.png, for the manual check. Re-running resumes. A scorer is
a built-in name (pose_agreement, temporal_stability, appearance) or your own function as an import
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

DEFAULT_SCORERS = ("pose_agreement", "temporal_stability", "appearance")


def add_command(stages: argparse._SubParsersAction) -> None:
    """Register ``bootstrap`` on the ``train`` command's subparsers."""
    from ..cli import PRECISIONS  # imported when called: the top-level cli imports the train commands

    parser = stages.add_parser("bootstrap", help="make self-bootstrapped triplets for the RGB stage",
                               description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=Path, required=True, help="folder of source videos (subfolders too)")
    parser.add_argument("--identities", type=Path, required=True,
                        help="folder of new identity pictures (a NAME.txt beside one describes its appearance)")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder (manifest, report, videos)")
    parser.add_argument("--motion", default="a person is dancing",
                        help="the source videos' motion description (a VIDEO.txt beside a video overrides it)")
    models = parser.add_argument_group("models (paths, or names inside --models-dir; defaults as for animate)")
    models.add_argument("--models-dir", type=Path, help="a ComfyUI models folder")
    models.add_argument("--transformer", help="diffusion_models/: the transformer file or diffusers folder")
    models.add_argument("--vae", help="vae/: the VAE file or diffusers folder")
    models.add_argument("--text-encoder", help="text_encoders/: Qwen2.5-VL file or pipeline folder")
    models.add_argument("--glyph-encoder", help="text_encoders/: the ByT5 glyph encoder (optional)")
    models.add_argument("--image-encoder", help="clip_vision/: SigLIP, embeds the reference (optional)")
    models.add_argument("--lora", action="append", default=[], metavar="NAME[:STRENGTH]",
                        help="loras/: the pose-stage DreamActor LoRA (required; repeat to stack)")
    models.add_argument("--tiny", action="store_true",
                        help="tiny random-weight models (smoke test; the videos are noise; --lora optional)")
    models.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32")
    models.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    video = parser.add_argument_group("clips")
    video.add_argument("--width", type=int, default=512, help="panel width (the canvas is twice as wide)")
    video.add_argument("--height", type=int, default=512, help="panel height")
    video.add_argument("--clip-frames", type=int, default=49, help="frames per clip (4k+1 suits the VAE)")
    video.add_argument("--stride", type=int, default=1, help="keep every n-th source frame")
    video.add_argument("--max-frames", type=int, default=None, help="read at most this many frames per video")
    video.add_argument("--no-transition", action="store_true", help="no black lead-in second")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--steps", type=int, default=30)
    sampling.add_argument("--cfg", type=float, default=6.0)
    sampling.add_argument("--shift", type=float, default=None, help="default: the backbone's")
    sampling.add_argument("--solver", choices=("euler", "heun", "dpmpp_2m"), default="euler")
    sampling.add_argument("--seed", type=int, default=0)
    sampling.add_argument("--pose-backend", choices=("mediapipe", "dwpose", "openpose"), default="mediapipe")
    sampling.add_argument("--pose-models-dir", action="append", default=[], help="where DWPose/OpenPose weights are")
    quality = parser.add_argument_group("filter and manual check")
    quality.add_argument("--scorer", action="append", default=[], metavar="NAME[=WEIGHT]",
                         help="a built-in scorer or module:function; repeat (default: the three built-ins)")
    quality.add_argument("--threshold", type=float, default=4.5, help="keep combined scores above this (1-5)")
    quality.add_argument("--thumb", type=int, default=96, help="contact sheet thumbnail size in pixels")
    quality.add_argument("--sheet-frames", type=int, default=4, help="V_src and V_o frames per contact sheet row")
    quality.add_argument("--sheet-rows", type=int, default=50, help="rows per contact sheet picture")
    parser.set_defaults(run=run)


def _model_files(args: argparse.Namespace, scratch: Path):
    """The model files, chosen as ``animate`` chooses them (paths, names in --models-dir, its
    defaults, or tiny ones written to ``scratch``); the pose-stage LoRA is required except on tiny
    models, where the random transformer stands in for the pose-based model."""
    from ..cli import _model_files as animate_model_files

    if not args.tiny and not args.lora:
        raise DreamActorError("--lora: the pose-stage LoRA is required (the pose-based model makes V_o: train it "
                              "with 'train pose'), or --tiny for a smoke test on tiny models")
    return animate_model_files(args, scratch)


def run(args: argparse.Namespace) -> int:
    """Build the job from the arguments, load the models, run it and print the summary."""
    import torch

    from ..cli import PRECISIONS, TINY_BANNER
    from ..pipeline import AnimationSettings, load_models
    from .bootstrap_inputs import ClipOptions
    from .bootstrap_job import BootstrapJob, run_bootstrap
    from .scorers import BUILTIN_SCORERS
    from .scoring import resolve_scorer

    job = BootstrapJob(
        sources=args.sources, identities=args.identities, out=args.out, motion=args.motion,
        scorers=tuple(resolve_scorer(spec, BUILTIN_SCORERS) for spec in args.scorer or DEFAULT_SCORERS),
        settings=AnimationSettings(
            width=args.width, height=args.height, transition=not args.no_transition, steps=args.steps, cfg=args.cfg,
            shift=args.shift, solver=args.solver, seed=args.seed, pose_backend=args.pose_backend,
            pose_model_dirs=tuple(args.pose_models_dir)),
        clips=ClipOptions(args.clip_frames, args.stride, args.max_frames),
        threshold=args.threshold, thumb=args.thumb, sheet_frames=args.sheet_frames, rows_per_sheet=args.sheet_rows,
    )
    dtype = getattr(torch, PRECISIONS[args.precision])
    with tempfile.TemporaryDirectory(prefix="dreamactor-tiny-") as scratch:
        files = _model_files(args, Path(scratch))  # a missing file stops the run before any work
        summary = run_bootstrap(job, lambda: load_models(files, dtype=dtype, device=args.device),
                                log=lambda message: print(message, file=sys.stderr))
    print(f"kept {summary.kept}, rejected {summary.rejected}, skipped {summary.skipped}, "
          f"already done {summary.already_done}; manifest {args.out / 'manifest.jsonl'}, "
          f"report {args.out / 'report.jsonl'}")
    for sheet in summary.sheets:
        print(f"wrote {sheet}")
    if args.tiny:
        print(TINY_BANNER, file=sys.stderr)
    return 0
