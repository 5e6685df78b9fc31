"""Scoring finished animations, AW-Bench style: per (reference, driving, result) and averaged.

Model-free measures (always, unless their model is absent, in which case they are reported as
skipped with the reason):
- ``pose_agreement`` (1-5): the bootstrap filter's scorer, the result's body joints against the
  driving clip's after the clip-level box normalisation (result frame i against driving frame i);
  with a multi-person backend both clips are tracked and scored person by person
  (``tracked_pose_agreement``), so the order a detector lists people in does not matter;
- ``siglip_similarity`` (-1..1, higher is closer): cosine similarity of the SigLIP embedding
  (mean of the last hidden state's tokens) of the reference and of each sampled result frame,
  whole frames (no subject crop); its mean and its minimum (the worst frame);
- ``temporal_flicker`` (0..1, lower is steadier): mean absolute change of the frames' mean
  brightness from one frame to the next, i.e. global light flicker, not motion;
- ``motion_smoothness`` (0..1, higher is smoother): VBench's frame-interpolation idea with the
  linear blend as interpolator: 1 - mean |f_t - (f_{t-1} + f_{t+1}) / 2| on 64 x 64 grey frames.

With a judge (``conditioning/judge.py``), the four Video-Bench qualities 1-5 and their mean; an
unreadable aspect is reported with its answers and left out of the averages (never guessed).

Files pair by name: a result ``NAME.mp4`` uses the reference picture and driving video whose stem
is ``NAME``; a result ``REF__DRIVE.mp4`` uses reference ``REF`` and driving ``DRIVE``. A result
without both is skipped with the reason, as is a video that cannot be read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..conditioning.captioner import Captioner, sample_indices
from ..conditioning.image_encoder import ImageEncoder
from ..conditioning.judge import judge_video
from ..errors import DreamActorError
from ..pose.types import PoseSequence, empty_people
from ..train.bootstrap.contact_sheet import render_row, write_sheets
from ..train.bootstrap.inputs import PICTURE_SUFFIXES, VIDEO_SUFFIXES
from ..train.bootstrap.scorers import pose_agreement
from ..train.bootstrap.scoring import ScoringInputs
from ..video_io import read_clip, read_image, to_uint8_frames, to_unit_frames

SMALL = 64  # flicker and smoothness compare 64 x 64 grey frames: sizes do not matter, noise averages out
SIGLIP_FRAMES = 16  # result frames embedded for the appearance similarity
REPORT = "report.json"
PAIR_SEPARATOR = "__"


@dataclass(frozen=True)
class Triple:
    name: str
    result: Path
    reference: Path
    driving: Path


@dataclass
class Evaluators:
    """What to measure with: each None is skipped and reported as such."""

    extract_poses: Callable[[torch.Tensor], PoseSequence] | None = None
    people_tracked: bool = False  # extract_poses tracks people: a frame's row k is person id k
    image_encoder: ImageEncoder | None = None
    judge: Captioner | None = None
    judge_frames: int = 8
    skipped: dict[str, str] = field(default_factory=dict)  # measure -> why it is not measured


def _files(folder: Path, suffixes: frozenset, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DreamActorError(f"{what} folder '{folder}' does not exist or is not a folder")
    return {path.stem: path for path in sorted(folder.iterdir()) if path.is_file() and path.suffix.lower() in suffixes}


def pair_files(results: Path, references: Path, driving: Path) -> tuple[list[Triple], list[dict]]:
    """The triples to score and the results skipped (with why), by the naming rule above."""
    found = _files(results, VIDEO_SUFFIXES, "results")
    if not found:
        raise DreamActorError(f"results folder '{results}' holds no video ({', '.join(sorted(VIDEO_SUFFIXES))})")
    pictures = _files(references, PICTURE_SUFFIXES, "references")
    videos = _files(driving, VIDEO_SUFFIXES, "driving")
    triples, skipped = [], []
    for name, path in found.items():
        reference_stem, _, driving_stem = name.partition(PAIR_SEPARATOR)
        reference = pictures.get(name) or pictures.get(reference_stem)
        drive = videos.get(name) or videos.get(driving_stem or reference_stem)
        if reference is None or drive is None:
            lacking = [what for what, item in (("reference picture", reference), ("driving video", drive)) if item is None]
            skipped.append({"name": name, "reason": f"no {' and no '.join(lacking)} named '{name}' or by "
                                                    f"'REF{PAIR_SEPARATOR}DRIVE'"})
            continue
        triples.append(Triple(name, path, reference, drive))
    return triples, skipped


def _small_grey(frames: torch.Tensor) -> torch.Tensor:
    grey = frames[..., :3].float().mean(dim=-1, keepdim=True).permute(0, 3, 1, 2)
    return torch.nn.functional.interpolate(grey, size=(SMALL, SMALL), mode="area")[:, 0]


def temporal_flicker(frames: torch.Tensor) -> float | None:
    """Mean |change| of the mean brightness between consecutive frames (None below 2 frames)."""
    if len(frames) < 2:
        return None
    brightness = frames[..., :3].float().mean(dim=(1, 2, 3))
    return float((brightness[1:] - brightness[:-1]).abs().mean())


def motion_smoothness(frames: torch.Tensor) -> float | None:
    """1 - mean |frame - blend of its neighbours| (None below 3 frames)."""
    if len(frames) < 3:
        return None
    small = _small_grey(frames)
    return 1.0 - float((small[1:-1] - (small[:-2] + small[2:]) / 2).abs().mean())


@torch.inference_mode()
def siglip_similarity(encoder: ImageEncoder, reference: torch.Tensor, frames: torch.Tensor) -> dict[str, float]:
    """Cosine similarity of the reference's and sampled frames' mean SigLIP tokens (mean and min).
    Straight through the model, not the embedding cache: frames are not worth keeping."""
    pictures = [to_uint8_frames(reference[..., :3])] + [to_uint8_frames(frames[i, ..., :3])
                                                          for i in sample_indices(len(frames), SIGLIP_FRAMES)]
    parameter = next(encoder.model.parameters())
    inputs = encoder.processor.preprocess(images=pictures, do_resize=True, return_tensors="pt", do_convert_rgb=True)
    features = encoder.model(**inputs.to(device=parameter.device, dtype=parameter.dtype)).last_hidden_state.mean(dim=1)
    similarity = torch.nn.functional.cosine_similarity(features[:1].float(), features[1:].float(), dim=-1)
    return {"mean": float(similarity.mean()), "min": float(similarity.min())}


def _person(poses: PoseSequence, row: int) -> PoseSequence:
    """Person id ``row`` of a tracked clip alone (an empty frame where the clip has no such row)."""
    return PoseSequence(tuple(people[row:row + 1] if row < len(people) else empty_people(0) for people in poses.frames),
                        poses.width, poses.height)


def tracked_pose_agreement(driving_poses: PoseSequence, result_poses: PoseSequence, reference: torch.Tensor,
                           result: torch.Tensor, driving: torch.Tensor, fps: float) -> float:
    """Pose agreement of tracked clips, person by person, averaged over the driving clip's people.

    Driving person id k is paired with result person id k: the tracker ranks ids by first
    appearance, left to right among people seen together, so the ids line up when the result keeps
    the driving layout (the group clip box keeps it). Each pair is scored alone by the bootstrap
    scorer (its own clip box); a driving person the result lacks scores the minimum."""
    scores = []
    for row in range(max((len(people) for people in driving_poses.frames), default=0)):
        mine, theirs = _person(driving_poses, row), _person(result_poses, row)
        if any((people[..., 2] > 0).any() for people in mine.frames):
            scores.append(pose_agreement(ScoringInputs(result, driving, reference, mine,
                                                       lambda _frames, poses=theirs: poses, fps)))
    return float(np.mean(scores))


def _pose_agreement(extract: Callable[[torch.Tensor], PoseSequence], reference: torch.Tensor,
                    result: torch.Tensor, driving: torch.Tensor, fps: float, tracked: bool = False) -> float | str:
    frames = min(len(result), len(driving))
    result, driving = result[:frames], driving[:frames]
    driving_poses = extract(driving)
    if not any(len(people) and (people[..., 2] > 0).any() for people in driving_poses.frames):
        return "no person found in the driving clip"
    if tracked:
        return tracked_pose_agreement(driving_poses, extract(result), reference, result, driving, fps)
    return pose_agreement(ScoringInputs(result, driving, reference, driving_poses, extract, fps))


def measure_frames(reference: torch.Tensor, driving: torch.Tensor | None, result: torch.Tensor, fps: float,
                   evaluators: Evaluators) -> dict:
    """``{"measures": {...}, "skipped": {measure: why}}`` (and ``judge`` with its answers) for one
    result ``[T, H, W, C]``, its reference ``[H, W, C]`` and driving clip (None: no pose agreement)."""
    if not isinstance(result, torch.Tensor) or result.ndim != 4 or len(result) == 0:
        raise DreamActorError("result video: it has no frames")
    entry: dict = {"measures": {}, "skipped": dict(evaluators.skipped)}
    measures = entry["measures"]
    for name, value in (("temporal_flicker", temporal_flicker(result)), ("motion_smoothness", motion_smoothness(result))):
        if value is None:
            entry["skipped"][name] = f"the result has {len(result)} frame(s)"
        else:
            measures[name] = value
    if evaluators.extract_poses is not None and driving is None:
        entry["skipped"]["pose_agreement"] = "no driving clip"
    elif evaluators.extract_poses is not None:
        agreement = _pose_agreement(evaluators.extract_poses, reference, result, driving, fps,
                                    evaluators.people_tracked)
        if isinstance(agreement, str):
            entry["skipped"]["pose_agreement"] = agreement
        else:
            measures["pose_agreement"] = agreement
    if evaluators.image_encoder is not None:
        similarity = siglip_similarity(evaluators.image_encoder, reference, result)
        measures["siglip_similarity"], measures["siglip_similarity_min"] = similarity["mean"], similarity["min"]
    if evaluators.judge is not None:
        verdict = judge_video(evaluators.judge, reference, result, fps=fps, frames=evaluators.judge_frames)
        entry["judge"] = {"scores": verdict.scores, "answers": verdict.answers, "unreadable": verdict.failed}
        measures.update({f"judge_{aspect}": score for aspect, score in verdict.scores.items() if score is not None})
        if verdict.mean is not None:
            measures["judge_mean"] = verdict.mean
        for aspect in verdict.failed:
            entry["skipped"][f"judge_{aspect}"] = f"unreadable answers {verdict.answers[aspect]}"
    return entry


def measure(triple: Triple, evaluators: Evaluators, max_frames: int | None = None) -> tuple[dict, tuple]:
    """One triple's report entry, and what its contact-sheet row needs (reference, driving, result)."""
    result_clip = read_clip(triple.result, max_frames=max_frames)
    result = to_unit_frames(result_clip.frames)
    driving = to_unit_frames(read_clip(triple.driving, max_frames=max_frames).frames)
    reference = to_unit_frames(read_image(triple.reference))
    entry = {"name": triple.name, "result": str(triple.result), "reference": str(triple.reference),
             "driving": str(triple.driving), "frames": len(result), "fps": result_clip.fps,
             **measure_frames(reference, driving, result, result_clip.fps, evaluators)}
    return entry, (reference, driving, result)


def averages(entries: list[dict]) -> dict[str, dict[str, float]]:
    """Per measure: the mean over the videos that have it, and how many do."""
    names = sorted({name for entry in entries for name in entry["measures"]})
    out = {}
    for name in names:
        values = [entry["measures"][name] for entry in entries if name in entry["measures"]]
        out[name] = {"mean": float(np.mean(values)), "videos": len(values)}
    return out


def _row_lines(entry: dict) -> list[str]:
    return [entry["name"][:36], *(f"{name[:24]}: {value:.3f}" for name, value in entry["measures"].items()),
            *(f"{name[:24]}: skipped" for name in entry["skipped"])][:12]


def evaluate(results: Path, references: Path, driving: Path, out: Path, evaluators: Evaluators, *,
             max_frames: int | None = None, thumb: int = 96, log: Callable[[str], None] = print) -> dict:
    """Score every triple, write ``out/report.json`` and ``out/contact_sheet_NNN.png``; the report."""
    triples, skipped = pair_files(Path(results), Path(references), Path(driving))
    out.mkdir(parents=True, exist_ok=True)
    entries, rows = [], []
    for index, triple in enumerate(triples):
        log(f"[{index + 1}/{len(triples)}] {triple.name}")
        try:
            entry, (reference, drive, result) = measure(triple, evaluators, max_frames)
        except DreamActorError as error:
            skipped.append({"name": triple.name, "reason": str(error)})
            continue
        entries.append(entry)
        row = out / f".row_{index:04d}.png"
        render_row(reference, drive, result, _row_lines(entry), kept=not entry["skipped"], thumb=thumb).save(row)
        rows.append(row)
    report = {"videos": entries, "average": averages(entries), "skipped": skipped}
    (out / REPORT).write_text(json.dumps(report, indent=2, allow_nan=False, default=_json_number))
    report["sheets"] = [str(path) for path in write_sheets(rows, out)] if rows else []
    for row in rows:
        row.unlink()
    return report


def _json_number(value: object) -> float:
    if isinstance(value, (np.floating, np.integer)) and math.isfinite(float(value)):
        return float(value)
    raise TypeError(f"not JSON: {value!r}")
