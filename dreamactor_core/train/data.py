"""Training clips for both stages: which videos, which frames, and the driving signal of each sample.

Pose stage (paper): a folder of human videos; a sample is a 4k+1-frame window of one video; the
reference is the window's first frame, the target is the window itself, the driving signal is its
rendered skeletons (poses extracted once per video, ``pose_cache``), with one bounding box per clip
fitted into the panel and, on a share of samples, bone lengths scaled by U(0.8, 1.2) per group.
RGB stage (paper): manifest triplets; the driving signal is V_o's raw frames, the target is V_src
over the same window and the reference the window's first V_src frame (V_src[0] for a window at the
start: a window elsewhere needs its own first frame, or frame 0 of the canvas would not match it).
Both: the driving signal is black for the first ``driving_mask_seconds`` of every clip, as the
paper trains the transition the inference's black lead-in second relies on.

All randomness comes from the ``numpy.random.Generator`` passed in, so a seed and a step number
fix the sample (the training loop derives one generator per step; resuming replays nothing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import DreamActorError
from ..pose import augment, render
from ..pose.types import PoseSequence
from ..video_io import read_clip, to_unit_frames
from .bootstrap.report import Outcome, append_outcome
from .captions import caption_pose_videos
from .config import TrainConfig
from .manifest import Triplet, read_manifest
from .pose_cache import cached_poses

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".webp", ".gif")
CAPTIONS_FILE = "captions.json"
Log = Callable[[str], None]


@dataclass(frozen=True)
class Sample:
    """One training clip, frames float [T, H, W, 3] in 0..1 at their source size."""

    reference: torch.Tensor  # [1, H, W, 3]: the target's first frame
    driving: torch.Tensor  # [T, H', W', 3]: skeletons or V_o frames, the first second black
    target: torch.Tensor  # [T, H, W, 3]: what the left half of the canvas must become
    prompt: str
    fps: float
    source: str  # file name and frame window, for logs


@dataclass(frozen=True)
class PoseVideo:
    path: Path
    prompt: str
    poses: PoseSequence  # the whole video (with the stride)


@dataclass(frozen=True)
class RgbItem:
    triplet: Triplet
    frames: int  # usable frames: the shorter of V_o and V_src


def list_videos(folder: str | Path) -> list[Path]:
    """The videos directly inside ``folder``, sorted by name (so runs see the same order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DreamActorError(f"--videos '{folder}' is not a folder")
    videos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise DreamActorError(f"--videos '{folder}' holds no videos ({', '.join(VIDEO_SUFFIXES)})")
    return videos


def written_captions(folder: Path, videos: list[Path]) -> dict[Path, str]:
    """The videos' hand-written target-oriented prompts: ``<stem>.txt`` beside a video, else its
    entry in ``captions.json`` (keyed by file name or stem); a video with neither is absent."""
    table: dict[str, str] = {}
    captions = folder / CAPTIONS_FILE
    if captions.is_file():
        try:
            table = json.loads(captions.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise DreamActorError(f"'{captions}' is not valid JSON: {error}") from error
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise DreamActorError(f"'{captions}': expected an object of video name -> prompt")
    prompts = {}
    for video in videos:
        text_file = video.with_suffix(".txt")
        if text_file.is_file():
            prompts[video] = text_file.read_text(encoding="utf-8").strip()
        elif video.name in table or video.stem in table:
            prompts[video] = table.get(video.name, table.get(video.stem))
    return prompts


def _keep_long_enough(lengths: dict[str, int], config: TrainConfig, what: str, log: Log) -> set[str]:
    kept = {name for name, count in lengths.items() if count >= config.min_frames}
    for name in sorted(set(lengths) - kept):
        log(f"skipping {name}: {lengths[name]} frames (stride {config.frame_stride}), fewer than "
            f"min_frames {config.min_frames}")
    if not kept:
        shown = ", ".join(f"{name}: {count}" for name, count in sorted(lengths.items())[:5])
        raise DreamActorError(f"{what}: every clip is shorter than min_frames {config.min_frames} (after frame "
                              f"stride {config.frame_stride}): {shown}; lower --min-frames or add longer videos")
    return kept


def prepare_pose_videos(folder: str | Path, config: TrainConfig, cache_dir: Path, log: Log = print,
                        report: Path | None = None) -> list[PoseVideo]:
    """Every usable video of the folder with its prompt and (cached) poses. The prompt is the
    written caption (``written_captions``), else, with ``config.captioner``, the captioner's (cached,
    ``captions``), else ``config.prompt``.

    A video that cannot be decoded, is shorter than ``min_frames`` or shows nobody is skipped with
    a message (an undecodable one also with a ``skipped`` line in ``report``, as ``train bootstrap``
    writes, so one corrupt file among thousands does not stop a run); none left is an error.
    """
    folder = Path(folder)
    videos = list_videos(folder)
    written = written_captions(folder, videos)
    found: dict[str, PoseVideo] = {}
    unreadable = []
    for video in videos:
        try:
            poses, extracted = cached_poses(video, lambda: read_clip(video, stride=config.frame_stride).frames,  # noqa: B023 (called at once)
                                            config, cache_dir)
        except DreamActorError as error:
            log(f"skipping {video.name}: {error}")
            unreadable.append(video.name)
            if report is not None:
                append_outcome(report, Outcome(video.name, "", "skipped", reason=str(error)))
            continue
        log(f"{'extracted' if extracted else 'cached'} poses of {video.name}: {len(poses)} frames")
        if augment.clip_box(poses) is None:
            log(f"skipping {video.name}: nobody detected in any frame")
            continue
        found[video.name] = PoseVideo(video, written.get(video, config.prompt), poses)
    if not found:
        problem = "no video could be decoded" if len(unreadable) == len(videos) else "no person was detected in any video"
        raise DreamActorError(f"--videos '{folder}': {problem}")
    kept = _keep_long_enough({name: len(item.poses) for name, item in found.items()}, config, f"--videos '{folder}'", log)
    items = [found[name] for name in sorted(kept)]
    if not config.captioner:
        return items
    captioned = caption_pose_videos([item.path for item in items if item.path not in written], config.captioner,
                                    cache_dir, config.frame_stride, tokenizer_dir=config.captioner_tokenizer or None,
                                    log=log)
    return [replace(item, prompt=captioned.get(item.path, item.prompt)) for item in items]


def prepare_rgb_items(manifest: str | Path, config: TrainConfig, log: Log = print) -> list[RgbItem]:
    """Every manifest triplet long enough to train on (both videos decoded once to count frames)."""
    items: dict[str, RgbItem] = {}
    for index, triplet in enumerate(read_manifest(manifest)):
        frames = min(len(read_clip(triplet.driving, stride=config.frame_stride).frames),
                     len(read_clip(triplet.target, stride=config.frame_stride).frames))
        items[f"{index:06d} {triplet.target.name}"] = RgbItem(triplet, frames)
    kept = _keep_long_enough({name: item.frames for name, item in items.items()}, config, f"manifest '{manifest}'", log)
    return [items[name] for name in sorted(kept)]


def draw_window(rng: np.random.Generator, available: int, config: TrainConfig, temporal: int) -> tuple[int, int]:
    """(start, length): a ``temporal``k+1 length drawn uniformly from the allowed ones that fit, and
    a uniform start."""
    lengths = [n for n in config.clip_lengths(temporal) if n <= available]
    if not lengths:
        raise DreamActorError(f"a clip of {available} frames is shorter than min_frames {config.min_frames}")
    length = int(rng.choice(lengths))
    return int(rng.integers(0, available - length + 1)), length


def _window(path: Path, start: int, length: int, stride: int) -> tuple[torch.Tensor, float]:
    clip = read_clip(path, max_frames=start + length, stride=stride)
    frames = clip.frames[start:start + length]
    if len(frames) < length:
        raise DreamActorError(f"video '{path}' decoded to {len(clip.frames)} frames, expected at least {start + length}")
    return to_unit_frames(frames), clip.fps


def mask_first_second(driving: torch.Tensor, fps: float, seconds: float) -> torch.Tensor:
    """The driving frames with the first ``round(fps * seconds)`` blacked out (at least the first
    frame stays black when ``seconds`` > 0, matching the inference's lead-in)."""
    count = min(len(driving), max(1, round(fps * seconds))) if seconds > 0 else 0
    masked = driving.clone()
    masked[:count] = 0.0
    return masked


def skeleton_poses(poses: PoseSequence, rng: np.random.Generator, config: TrainConfig) -> PoseSequence | None:
    """The clip's poses as the panel shows them: on ``bone_scale_probability`` of clips one set of
    bone factors for the whole clip, then one clip-level box fitted into the panel (``pipeline.pose_driving``'s
    steps). None when nobody is seen (the rng is advanced the same either way)."""
    scale = rng.random() < config.bone_scale_probability
    factors = augment.draw_bone_factors(int(rng.integers(2**31)), *config.bone_scale_range) if scale else None
    if augment.clip_box(poses) is None:
        return None
    return augment.augment_clip(poses, factors, (config.width, config.height))


def skeleton_driving(poses: PoseSequence, rng: np.random.Generator, config: TrainConfig) -> torch.Tensor:
    """The clip's rendered skeletons at panel size (``skeleton_poses``); a clip where nobody is seen renders black."""
    placed = skeleton_poses(poses, rng, config)
    if placed is None:
        return torch.zeros(len(poses), config.height, config.width, 3)
    return render.render_poses(placed, config.width, config.height)


def pose_sample(video: PoseVideo, rng: np.random.Generator, config: TrainConfig, temporal: int) -> Sample:
    start, length = draw_window(rng, len(video.poses), config, temporal)
    target, fps = _window(video.path, start, length, config.frame_stride)
    poses = PoseSequence(video.poses.frames[start:start + length], video.poses.width, video.poses.height)
    driving = mask_first_second(skeleton_driving(poses, rng, config), fps, config.driving_mask_seconds)
    return Sample(target[:1], driving, target, video.prompt, fps, f"{video.path.name}[{start}:{start + length}]")


def rgb_sample(item: RgbItem, rng: np.random.Generator, config: TrainConfig, temporal: int) -> Sample:
    start, length = draw_window(rng, item.frames, config, temporal)
    target, fps = _window(item.triplet.target, start, length, config.frame_stride)
    driving, _ = _window(item.triplet.driving, start, length, config.frame_stride)
    driving = mask_first_second(driving, fps, config.driving_mask_seconds)
    return Sample(target[:1], driving, target, item.triplet.prompt, fps,
                  f"{item.triplet.target.name}[{start}:{start + length}]")
