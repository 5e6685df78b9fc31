"""The self-bootstrapped data of the RGB-driven stage (paper): for each source clip V_src and each
new identity, the pose-based model animates the identity with V_src's motion (V_o); V_o is scored
and the pairs above the threshold become triplets (driving V_o, reference V_src[0], target V_src).

Output folder layout: ``manifest.jsonl`` (kept triplets, ``train.manifest``), ``report.jsonl``
(every outcome, ``report``), ``contact_sheet_NNN.png`` (the manual check), ``identities/`` (the
identity pictures as the model saw them, shrunk to the panel, so the folder is self-contained),
``clips/<video>/<clip name>/`` (``target.mp4``, ``reference.png``, and per pair one
``<identity>.mp4`` V_o and ``<identity>_row.png``).

Safe to interrupt and re-run: every file is written under a temporary name and renamed when
complete; a pair's manifest line is written before its report line, both appended and flushed
before the next pair starts; a re-run skips the pairs either file already holds. A video that
cannot be decoded, is shorter than one clip, or shows nobody, and a clip that shows nobody, is
skipped with its reason in the report (and tried again by the next run); everything else that is
wrong stops the run with a ``DreamActorError``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ...conditioning.prompt import fuse_prompt
from ...errors import DreamActorError
from ...pipeline import AnimationModels, AnimationSettings, animate
from ...pose import augment, extract
from ...pose.types import PoseSequence
from ...video_io import read_clip, to_uint8_frames, to_unit_frames, write_video
from ..captions import ClipCaptions, UnreadableClip
from ..manifest import Triplet, append_triplet, read_manifest
from . import contact_sheet
from .inputs import ClipOptions, Identity, find_videos, load_identities, sidecar_text
from .report import Outcome, append_outcome, read_report
from .scoring import HIGHEST, LOWEST, ScoringInputs, WeightedScorer, run_scorers

MANIFEST, REPORT = "manifest.jsonl", "report.jsonl"


@dataclass(frozen=True)
class BootstrapJob:
    """One bootstrap run. ``motion`` describes the source videos' motion ("a person is dancing"),
    unless a video has a ``<video name>.txt`` beside it; it is fused with each identity's appearance
    text into V_o's prompt, and is the triplet's prompt (it describes V_src). With ``captions``, the
    captioner describes the motion of a video without a ``.txt`` and the look of an identity without
    one, before any generation (cached; the captioner is freed before the models load)."""

    sources: Path
    identities: Path
    out: Path
    scorers: tuple[WeightedScorer, ...]
    motion: str = "a person is dancing"
    captions: ClipCaptions | None = None
    settings: AnimationSettings = AnimationSettings()
    clips: ClipOptions = ClipOptions()
    threshold: float = 4.5  # kept when the combined score is above it (the paper: Video-Bench > 4.5)
    thumb: int = 96
    sheet_frames: int = 4
    rows_per_sheet: int = 50

    def __post_init__(self) -> None:
        if not LOWEST <= self.threshold <= HIGHEST:
            raise DreamActorError(f"threshold: expected a score on the {LOWEST:g}-{HIGHEST:g} scale, "
                                  f"got {self.threshold}")
        if not self.scorers or sum(s.weight for s in self.scorers) <= 0:
            raise DreamActorError("scorers: at least one scorer with a positive weight is needed")
        if self.thumb < 16 or self.sheet_frames < 1 or self.rows_per_sheet < 1:
            raise DreamActorError(f"contact sheet: thumbnails of at least 16 px, 1 frame and 1 row per sheet "
                                  f"needed, got {self.thumb} px, {self.sheet_frames} frames, "
                                  f"{self.rows_per_sheet} rows")


@dataclass
class Summary:
    """Counts of this run (pairs done by earlier runs are ``already_done``) and the sheets drawn."""

    kept: int = 0
    rejected: int = 0
    skipped: int = 0
    already_done: int = 0
    sheets: list[Path] = field(default_factory=list)


Log = Callable[[str], None]


def _write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Write through a temporary file in the same folder, renamed when complete: an interrupt never
    leaves a half-written file under a name the manifest may point at."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".partial-{path.name}")
    write(partial)
    os.replace(partial, path)
    return path


def _save_picture(picture: torch.Tensor, path: Path) -> Path:
    from PIL import Image

    return _write_atomically(path, lambda target: Image.fromarray(to_uint8_frames(picture)).save(target, format="PNG"))


def _done_pairs(out: Path) -> set[tuple[str, str]]:
    """(source clip, identity) pairs an earlier run scored: in the report, or kept in the manifest
    (an interrupt between the two lines leaves the pair in the manifest only)."""
    done = {(o.source, o.identity) for o in read_report(out / REPORT) if o.status != "skipped"}
    manifest = out / MANIFEST
    if manifest.is_file() and manifest.read_text(encoding="utf-8").strip():
        done |= {(t.source, t.identity.stem) for t in read_manifest(manifest) if t.identity is not None}
    return done


def _pose_extractor(settings: AnimationSettings) -> Callable[[torch.Tensor], PoseSequence]:
    """Pose extraction with the settings' estimator (a fresh one per clip: trackers carry state)."""
    def extract_poses(frames: torch.Tensor) -> PoseSequence:
        estimator = extract.make_estimator(settings.pose_backend, settings.pose_model_dirs, video=len(frames) > 1)
        return extract.extract_poses(frames, estimator, settings.min_confidence)

    return extract_poses


def _row_lines(source: str, identity: str, kept: bool, score: float, scores: dict[str, float]) -> list[str]:
    return [source, identity, f"{'KEPT' if kept else 'rejected'}  {score:.2f}",
            *(f"{name[-22:]}: {value:.2f}" for name, value in scores.items())]


@dataclass(frozen=True)
class _SourceClip:
    """One clip of a source video, as every pair made from it needs it."""

    key: str  # "<video>#<clip name>"
    frames: torch.Tensor
    fps: float
    poses: PoseSequence
    prompt: str  # the motion description
    target: Path  # V_src as written
    reference: Path  # V_src[0] as written


class _Run:
    """The state of one run: the job, the models, the output files and the counts."""

    def __init__(self, job: BootstrapJob, load_models: Callable[[], AnimationModels], log: Log,
                 motions: dict[Path, str]) -> None:
        self.job, self.log, self.motions = job, log, motions
        self._load_models, self._models = load_models, None
        self.summary = Summary()
        self.extract_poses = _pose_extractor(job.settings)
        self.manifest, self.report = job.out / MANIFEST, job.out / REPORT

    def models(self) -> AnimationModels:
        """The models, loaded for the first pair that needs them (a finished dataset loads none)."""
        if self._models is None:
            self._models = self._load_models()
        return self._models

    def relative(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.job.out)).as_posix()

    def skip(self, source: str, reason: str) -> None:
        append_outcome(self.report, Outcome(source, "", "skipped", reason=reason))
        self.summary.skipped += 1
        self.log(f"skipped {source}: {reason}")

    def pair(self, clip: _SourceClip, identity: Identity, identity_copy: Path) -> None:
        """Generate, score and record one (clip, identity) pair."""
        job, folder = self.job, clip.target.parent
        result = animate(self.models(), identity.picture, clip.frames, clip.fps, mode="pose",
                         prompt=fuse_prompt(clip.prompt, identity.appearance), settings=job.settings,
                         poses=clip.poses)
        driving = _write_atomically(folder / f"{identity.name}.mp4",
                                    lambda target: write_video(target, result.frames, result.fps))
        inputs = ScoringInputs(result.frames, clip.frames, identity.picture, clip.poses, self.extract_poses,
                               clip.fps, clip.key, identity.name)
        score, scores = run_scorers(job.scorers, inputs)
        kept = score > job.threshold
        status = "kept" if kept else "rejected"
        row = contact_sheet.render_row(identity.picture, clip.frames, result.frames,
                                       _row_lines(clip.key, identity.name, kept, score, scores), kept,
                                       job.thumb, job.sheet_frames)
        row_path = _write_atomically(folder / f"{identity.name}_row.png", lambda target: row.save(target, format="PNG"))
        if kept:
            append_triplet(self.manifest, Triplet(driving, clip.target, clip.reference, clip.prompt, score, scores,
                                                  identity_copy, clip.key))
            self.summary.kept += 1
        else:
            self.summary.rejected += 1
        append_outcome(self.report, Outcome(clip.key, identity.name, status, score, scores, self.relative(driving),
                                            self.relative(clip.target), self.relative(row_path)))
        self.log(f"{clip.key} x {identity.name}: {score:.2f} {status} "
                 + " ".join(f"{name}={value:.2f}" for name, value in scores.items()))

    def video(self, video: Path, identities: Sequence[Identity], done: set[tuple[str, str]],
              copies: dict[str, Path]) -> None:
        """Every pending pair of one source video; poses are extracted once for the whole video."""
        job = self.job
        name = video.relative_to(job.sources).as_posix()
        try:
            decoded = read_clip(video, max_frames=job.clips.max_frames, stride=job.clips.stride)
        except DreamActorError as error:
            return self.skip(name, f"unreadable: {error}")
        spans = job.clips.spans(len(decoded.frames))
        if not spans:
            return self.skip(name, f"{len(decoded.frames)} frames (after stride), fewer than one clip of "
                                   f"{job.clips.clip_frames}")
        clips = [(span, job.clips.clip_name(span)) for span in spans]
        todo = {clip_name: [i for i in identities if (f"{name}#{clip_name}", i.name) not in done]
                for _, clip_name in clips}
        self.summary.already_done += len(clips) * len(identities) - sum(map(len, todo.values()))
        if not any(todo.values()):
            return None
        frames = to_unit_frames(decoded.frames)
        poses = self.extract_poses(frames)
        if augment.clip_box(poses) is None:
            return self.skip(name, f"no person found in any frame by the {job.settings.pose_backend} pose estimator")
        for span, clip_name in clips:
            if not todo[clip_name]:
                continue
            key = f"{name}#{clip_name}"
            clip_poses = PoseSequence(poses.frames[span.start:span.stop], poses.width, poses.height)
            if augment.clip_box(clip_poses) is None:
                self.skip(key, "no person found in these frames")
                continue
            folder = job.out / "clips" / name.replace("/", "__") / clip_name
            clip = _SourceClip(key, frames[span.start:span.stop], decoded.fps, clip_poses,
                               sidecar_text(video) or self.motions.get(video, job.motion), folder / "target.mp4",
                               folder / "reference.png")
            if not clip.target.is_file():
                _write_atomically(clip.target, lambda target: write_video(target, clip.frames, clip.fps))  # noqa: B023 (called at once)
            if not clip.reference.is_file():
                _save_picture(clip.frames[0], clip.reference)
            for identity in todo[clip_name]:
                self.pair(clip, identity, copies[identity.name])
        return None


def _captioned(job: BootstrapJob, captions: ClipCaptions, videos: Sequence[Path], identities: list[Identity],
               log: Log) -> tuple[list[Identity], dict[Path, str]]:
    """Identities with the captioner's appearance where they have no ``NAME.txt``, and the motion of
    every video without a ``VIDEO.txt`` (an undecodable one is left to the run, which skips it)."""
    with captions:
        identities = [identity if identity.appearance else
                      replace(identity, appearance=captions.appearance(identity.path, identity.picture))
                      for identity in identities]
        motions = {}
        for video in videos:
            if sidecar_text(video):
                continue
            try:
                motions[video] = captions.motion(video, job.clips.stride, job.clips.max_frames)
            except UnreadableClip as error:
                log(f"not captioned {video.name}: {error}")
    return identities, motions


def run_bootstrap(job: BootstrapJob, load_models: Callable[[], AnimationModels],
                  log: Log = lambda message: None) -> Summary:
    """Make, score and record every pending (source clip, identity) pair, then redraw the contact
    sheets from every scored pair so far (this run's and earlier ones'), best score first.

    ``load_models`` is called once, when the first pair is generated: bad inputs are found before
    loading anything, and a re-run with nothing left to do loads nothing."""
    videos = find_videos(job.sources)
    identities = load_identities(job.identities, (job.settings.width, job.settings.height))
    done = _done_pairs(job.out)
    copies = {i.name: job.out / "identities" / f"{i.name}.png" for i in identities}
    for identity in identities:
        if not copies[identity.name].is_file():
            _save_picture(identity.picture, copies[identity.name])
    motions: dict[Path, str] = {}
    if job.captions is not None:
        identities, motions = _captioned(job, job.captions, videos, identities, log)
    run = _Run(job, load_models, log, motions)
    for video in videos:
        run.video(video, identities, done, copies)
    scored = sorted((o for o in read_report(run.report) if o.sheet_row and (job.out / o.sheet_row).is_file()),
                    key=lambda o: -(o.score or 0.0))
    run.summary.sheets = contact_sheet.write_sheets([job.out / o.sheet_row for o in scored], job.out,
                                                    job.rows_per_sheet)
    return run.summary
