"""Animate a driving video of any length with memory that does not grow with it.

Per window of latent frames (``plan.py``): the driving frames it covers are taken from the stream
(``driving.py``), put on a canvas of their own ([reference | driving] on the window's frame 0, as on
the whole clip's), encoded, sampled, decoded, and the window's new frames handed to ``write``. The
motion context is the last ``context_frames`` latent frames already generated: they take the left
half of the window's canvas latent right after the reference frame and are marked given in its mask
(1, like the reference), so the model continues them instead of inventing a new start; their values
in the output are the earlier window's (each frame is generated once). Everything a window holds is
released before the next, so host and device memory stay flat; only the poses (a few kB a frame)
are kept for the whole clip in pose mode, because tracking and the clip box need the whole clip.

A clip that fits one window runs exactly the whole-clip computation of ``pipeline.animate``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from ..canvas.composite import build_canvas, frame_corrections
from ..canvas.masks import canvas_mask, pack_latent_mask
from ..canvas.result import extract_result
from ..conditioning.image_encoder import with_reference_embedding
from ..conditioning.types import Conditioning
from ..errors import DreamActorError
from ..models.loading import DreamActorModel, DreamActorVAE
from ..models.vae import decode_latent, encode_video
from ..models.variants import resolved_settings
from ..pipeline import MODES, AnimationModels, AnimationSettings, Mode, augment_driving_poses, driving_poses
from ..pose import render
from ..pose.types import PoseSequence
from ..progress import ProgressHook, report
from ..sampling import sample
from ..sampling.solvers import forwards_per_run
from .driving import DrivingFrames
from .plan import Window, describe_estimate, estimate_forwards, plan_windows

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamSettings:
    """``window_frames``: latent frames per window, the reference frame included (31 = 121 pixel
    frames at 4x, the longest clip the paper trains on); ``context_frames``: latent frames of motion
    context each window continues; ``chunk_frames``: driving frames decoded or rendered at a time."""

    window_frames: int = 31
    context_frames: int = 3
    chunk_frames: int = 16


@dataclass(frozen=True)
class StreamChunk:
    """What one window adds: ``result`` frames (the animation, in order, the transition second cut),
    ``driving`` (the driving panel at the same frames) and ``canvas`` (its new canvas frames)."""

    window: int
    result: torch.Tensor
    driving: torch.Tensor
    canvas: torch.Tensor


@dataclass(frozen=True)
class StreamReport:
    fps: float
    frames: int  # result frames written
    windows: list[Window]
    forwards: int
    seconds_per_forward: float | None
    poses: PoseSequence | None


def _pixel_range(window: Window, temporal: int) -> tuple[int, int]:
    """Global canvas frames covered by the window's latent frames after the reference frame."""
    body = window.context + window.new
    if not body:
        return 1, 1
    return temporal * (body[0] - 1) + 1, temporal * body[-1] + 1


class _ForwardClock:
    """Global progress over all windows, and the time of the first transformer forward: timed from the
    moment the first window starts sampling, so its canvas and VAE encode do not inflate the estimate."""

    def __init__(self, progress: ProgressHook | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0
        self.first: float | None = None

    def window_hook(self) -> ProgressHook:
        """The progress hook of the window about to be sampled (made right before its sampler starts)."""
        base = self.done
        if self.first is None:
            self.started = time.perf_counter()

        def hook(done: int, _total: int) -> None:
            if self.first is None:
                self.first = time.perf_counter() - self.started
                LOG.info("DreamActor-M2 long video: first forward took %.2f s; about %.1f min of sampling in all",
                         self.first, self.first * self.total / 60)
            self.done = base + done
            report(self.progress, self.done, self.total)
        return hook


def _pose_chunks(poses: PoseSequence, settings: AnimationSettings, chunk: int) -> Iterator[torch.Tensor]:
    """Skeletons rendered at panel size, ``chunk`` frames at a time."""
    for start in range(0, len(poses), chunk):
        part = PoseSequence(poses.frames[start:start + chunk], poses.width, poses.height)
        yield render.render_poses(part, settings.width, settings.height)


def _check_inputs(mode: str, count: int) -> None:
    if mode not in MODES:
        raise DreamActorError(f"mode: expected one of {', '.join(MODES)}, got '{mode}'")
    if count < 1:
        raise DreamActorError(f"driving: expected at least one frame, got {count}")


def animate_stream(models: AnimationModels, reference: torch.Tensor, chunks: Iterable[torch.Tensor], count: int,
                   fps: float, *, mode: Mode, prompt: str, write: Callable[[StreamChunk], None],
                   settings: AnimationSettings = AnimationSettings(), stream: StreamSettings = StreamSettings(),
                   progress: ProgressHook | None = None) -> StreamReport:
    """Animate ``reference`` with ``count`` driving frames arriving as ``chunks`` (float ``[n, H, W, 3]``
    in 0..1, in order), handing each window's frames to ``write`` as they are done (module doc): the
    prompt and the reference's SigLIP embedding are encoded, then ``animate_stream_encoded`` runs."""
    _check_inputs(mode, count)
    positive, negative = models.text_encoder.encode_pair(prompt, settings.negative_prompt)
    positive, negative = with_reference_embedding(models.image_encoder, reference[..., :3], positive, negative)
    return animate_stream_encoded(models.model, models.vae, reference, chunks, count, fps, mode=mode,
                                  positive=positive, negative=negative, write=write, settings=settings,
                                  stream=stream, progress=progress)


def animate_stream_encoded(model: DreamActorModel, vae: DreamActorVAE, reference: torch.Tensor,
                           chunks: Iterable[torch.Tensor], count: int, fps: float, *, mode: Mode, positive: Conditioning,
                           negative: Conditioning | None, write: Callable[[StreamChunk], None],
                           settings: AnimationSettings = AnimationSettings(),
                           stream: StreamSettings = StreamSettings(),
                           progress: ProgressHook | None = None) -> StreamReport:
    """``animate_stream`` with the conditioning already encoded (the ComfyUI graph's Text Encode and
    Reference Image Embed): ``positive``/``negative`` as ``sampling.sample`` takes them (``negative``
    is used when cfg is not 1). ``reference`` may carry alpha as a fourth channel (1 = opaque)."""
    _check_inputs(mode, count)
    if reference.ndim == 3:
        reference = reference.unsqueeze(0)
    transparency = None
    if reference.shape[-1] == 4:
        reference, transparency = reference[..., :3], 1.0 - reference[..., 3]
    poses = None
    if mode == "pose":
        poses = augment_driving_poses(driving_poses(chunks, settings), settings)
        chunks = _pose_chunks(poses, settings, stream.chunk_frames)
    settings = resolved_settings(settings, model)  # steps, cfg, shift left at None: the release's
    adapter = model.adapter
    temporal = adapter.temporal_compression
    transition = round(fps) if settings.transition else 0
    if settings.transition and not fps >= 0.5:
        raise DreamActorError(f"fps: the transition is one second of frames, so fps must be at least 0.5, got {fps}")
    _, padded = frame_corrections(transition, count, temporal, "pad")
    total = transition + count + padded
    windows = plan_windows((total - 1) // temporal + 1, stream.window_frames, stream.context_frames)
    texts = 2 if settings.cfg != 1.0 else 1
    forwards = estimate_forwards(windows, texts * forwards_per_run(settings.solver, settings.steps))
    LOG.info("DreamActor-M2 long video: %s", describe_estimate(count, windows, forwards, None))
    driving = DrivingFrames(chunks, count, transition)
    clock = _ForwardClock(progress, forwards)
    keep = range(transition, total - padded)
    carried: dict[int, torch.Tensor] = {}  # global latent frame -> generated latent, for the next context
    written = 0
    for index, window in enumerate(windows):
        start, stop = _pixel_range(window, temporal)
        frames = torch.cat([driving.first, driving.get(start, stop)]) if stop > start else driving.first
        canvas, layout = build_canvas(reference, frames, width=settings.width, height=settings.height,
                                      fit=settings.fit, temporal=temporal, fps=fps,
                                      reference_transparency=transparency)
        condition = encode_video(vae, canvas, tile_frames=settings.tile_frames, tile_size=settings.tile_size)
        mask = pack_latent_mask(canvas_mask(layout), adapter.spatial_compression, temporal,
                                adapter.mask_layout).unsqueeze(0)
        given = len(window.context)
        if given:
            context = torch.cat([carried[j] for j in window.context], dim=2)
            half = condition.shape[-1] // 2
            condition[:, :, 1:1 + given, :, :half] = context[..., :half]
            mask[:, :, 1:1 + given, :, :half] = 1.0
        latent = sample(model, positive, condition, mask, negative=negative if texts == 2 else None,
                        seed=settings.seed + index, steps=settings.steps, cfg=settings.cfg, shift=settings.shift,
                        solver=settings.solver, cache_threshold=settings.cache_threshold,
                        progress=clock.window_hook())
        if given:
            latent = torch.cat([latent[:, :, :1], context, latent[:, :, 1 + given:]], dim=2)  # as written before
        carried.update({j: latent[:, :, position:position + 1].clone()
                        for position, j in enumerate(window.latent_frames) if j})
        carried = {j: carried[j] for j in sorted(carried)[max(0, len(carried) - stream.context_frames):]}
        decoded = decode_latent(vae, latent, tile_frames=settings.tile_frames, tile_size=settings.tile_size)
        # Mini-canvas frame i is global frame 0 (i = 0) or start + i - 1; the new ones follow the context.
        first_new = 0 if index == 0 else 1 + temporal * given
        positions = [i for i in range(first_new, len(canvas)) if (0 if i == 0 else start + i - 1) in keep]
        result = extract_result(decoded, layout, cut_transition=False)[positions]
        write(StreamChunk(index, result, canvas[positions, :, layout.panel_width:], canvas[first_new:]))
        written += len(result)
        del canvas, condition, mask, latent, decoded
    return StreamReport(float(fps), written, windows, forwards, clock.first, poses)
