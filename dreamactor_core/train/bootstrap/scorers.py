"""The built-in, offline scorers of the bootstrap filter: cheap stand-ins for the paper's Video-Bench.

Video-Bench asks a multimodal LLM to rate imaging quality, motion smoothness, temporal consistency
and appearance consistency. These three measures only look at what can be computed from pixels and
poses, each mapped from 0..1 to the 1-5 scale:

- ``pose_agreement``: does V_o move like V_src? (PCK of the body joints after the clip-level box
  normalisation the pose stage trains with);
- ``temporal_stability``: does V_o change from frame to frame as much as V_src does (no flicker or
  jumps, no frozen video)?
- ``appearance``: do V_o's colours stay those of the new identity's picture?

None of them judges image quality, anatomy or whether the face is the identity's: the contact
sheet's manual check (the paper's second filter) is still needed, or plug an MLLM scorer in.
"""

from __future__ import annotations

import numpy as np
import torch

from ...pose import augment
from ...pose import skeleton as sk
from ...pose.types import PoseSequence
from .mllm_judge import MllmJudgeScorer
from .scoring import Scorer, ScoringInputs, from_unit

PCK_THRESHOLD = 0.1  # a joint agrees within 10% of the clip box's longer side (common PCK setting)
MOTION_SIZE = 64  # frames are compared as 64 x 64 grey images, so both videos' sizes do not matter
HISTOGRAM_BINS = 8  # per channel: 512 colour bins, coarse enough to ignore lighting noise
APPEARANCE_FRAMES = 8  # V_o frames sampled for the colour comparison


def _main_body(poses: PoseSequence) -> np.ndarray:
    """``[T, BODY_POINTS, 3]``: per frame the body of the person with the most joints found
    (all missing when nobody is), so clips with extra or lost people still line up frame by frame."""
    bodies = np.zeros((len(poses), sk.BODY_POINTS, 3))
    for index, people in enumerate(poses.frames):
        if len(people):
            found = (people[:, sk.BODY, 2] > 0).sum(axis=1)
            bodies[index] = people[int(np.argmax(found)), sk.BODY]
    return bodies


def _box_normalised(poses: PoseSequence) -> np.ndarray:
    """The main body per frame, mapped so the clip's box of body joints fits the unit square
    (aspect kept, centred): translation and scale of the whole clip cancel, per-frame motion stays."""
    bodies = _main_body(poses)
    people = np.zeros((len(bodies), sk.NUM_KEYPOINTS, 3))
    people[:, sk.BODY] = bodies
    clip = PoseSequence(tuple(people[:, None]), poses.width, poses.height)
    box = augment.clip_box(clip)
    if box is None:
        return bodies
    return augment.fit_box(clip, box, (0.0, 0.0, 1.0, 1.0), 1, 1).stacked()[:, sk.BODY]


def pose_agreement(inputs: ScoringInputs) -> float:
    """The fraction of the source's body joints that V_o has within ``PCK_THRESHOLD`` of them, frame
    by frame; a joint V_o lacks is a miss, so a V_o without a person scores the minimum."""
    source = _box_normalised(inputs.source_poses)
    generated = _box_normalised(inputs.generated_poses)
    frames = min(len(source), len(generated))
    source, generated = source[:frames], generated[:frames]
    expected = source[..., 2] > 0
    if not expected.any():
        return from_unit(0.0)
    distance = np.linalg.norm(source[..., :2] - generated[..., :2], axis=-1)
    hits = expected & (generated[..., 2] > 0) & (distance <= PCK_THRESHOLD)
    return from_unit(hits.sum() / expected.sum())


def _motion_energy(frames: torch.Tensor) -> float:
    """Mean absolute change between consecutive frames, as small grey images."""
    grey = frames[..., :3].float().mean(dim=-1, keepdim=True).permute(0, 3, 1, 2)
    small = torch.nn.functional.interpolate(grey, size=(MOTION_SIZE, MOTION_SIZE), mode="area")
    return float((small[1:] - small[:-1]).abs().mean())


def temporal_stability(inputs: ScoringInputs) -> float:
    """The ratio of V_o's frame-to-frame change to V_src's (smaller over larger): 1 when V_o changes
    as much as the motion it copies; flicker and jumps make it change more, a frozen video less."""
    if min(len(inputs.generated), len(inputs.source)) < 2:
        return from_unit(1.0)
    generated, source = _motion_energy(inputs.generated), _motion_energy(inputs.source)
    larger = max(generated, source)
    return from_unit(1.0 if larger < 1e-6 else min(generated, source) / larger)


def _colour_histogram(pixels: torch.Tensor) -> torch.Tensor:
    """Normalised ``HISTOGRAM_BINS``^3 RGB histogram of ``[N, 3]`` pixels in 0..1."""
    bins = (pixels.float() * HISTOGRAM_BINS).long().clamp_(0, HISTOGRAM_BINS - 1)
    index = (bins[:, 0] * HISTOGRAM_BINS + bins[:, 1]) * HISTOGRAM_BINS + bins[:, 2]
    counts = torch.bincount(index, minlength=HISTOGRAM_BINS**3).float()
    return counts / counts.sum().clamp_min(1.0)


def appearance(inputs: ScoringInputs) -> float:
    """Mean histogram intersection of sampled V_o frames with the identity picture (transparent
    pixels of an RGBA picture left out). Colour only: layout, face and shape are not compared."""
    identity = inputs.identity.reshape(-1, inputs.identity.shape[-1])
    if identity.shape[-1] == 4:
        identity = identity[identity[:, 3] >= 0.5]
    reference = _colour_histogram(identity[:, :3])
    picks = np.unique(np.linspace(0, len(inputs.generated) - 1, APPEARANCE_FRAMES).round().astype(int))
    overlaps = [float(torch.minimum(_colour_histogram(inputs.generated[i].reshape(-1, 3)), reference).sum())
                for i in picks]
    return from_unit(float(np.mean(overlaps)))


BUILTIN_SCORERS: dict[str, Scorer] = {
    "pose_agreement": pose_agreement,
    "temporal_stability": temporal_stability,
    "appearance": appearance,
    # The paper's kind of judge (a local Qwen2.5-VL); its model is named by --judge-model, which
    # replaces this unconfigured entry (that one explains the flag when used).
    "mllm_judge": MllmJudgeScorer(None),
}
