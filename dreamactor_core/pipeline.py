"""One call from a reference picture and a driving clip to the animation, outside ComfyUI.

The same core steps the shipped workflows wire as nodes, in the same order: driving signal (pose
extraction, augmentation and skeleton rendering in pose mode; the raw frames in RGB mode) ->
canvas -> VAE encode -> target-oriented text -> sampler (transformer + LoRAs) -> VAE decode ->
result. The command line (``python -m dreamactor_core animate``) and the training's bootstrap stage
(which animates new identities with the pose-based LoRA) are built on it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from .canvas.composite import build_canvas
from .canvas.masks import canvas_mask, pack_latent_mask
from .canvas.result import extract_result
from .conditioning.image_encoder import ImageEncoder, load_image_encoder, with_reference_embedding
from .conditioning.text_encoder import HunyuanVideo15TextEncoder, load_text_encoder
from .errors import DreamActorError
from .models.loading import DreamActorModel, DreamActorVAE, load_transformer, load_vae
from .models.lora import load_lora
from .models.vae import decode_latent, encode_video
from .pose import augment, extract, render
from .pose.types import PoseSequence
from .progress import ProgressHook
from .sampling import sample

Mode = Literal["pose", "rgb"]
MODES: tuple[str, ...] = ("pose", "rgb")


@dataclass(frozen=True)
class ModelFiles:
    """Where the weights are: the files or diffusers folders the loader nodes take."""

    transformer: Path
    vae: Path
    text_encoder: Path
    glyph_encoder: Path | None = None
    image_encoder: Path | None = None  # SigLIP: the reference's embedding joins the text conditioning
    loras: tuple[tuple[Path, float], ...] = ()


@dataclass(frozen=True)
class AnimationModels:
    """The loaded transformer (with its LoRAs), VAE, text encoder and optional image encoder."""

    model: DreamActorModel
    vae: DreamActorVAE
    text_encoder: HunyuanVideo15TextEncoder
    image_encoder: ImageEncoder | None = None


@dataclass(frozen=True)
class AnimationSettings:
    """Everything the graph's widgets set. ``width``/``height`` are the panel (the canvas is twice
    as wide); ``steps``/``cfg``/``shift`` None take the model release's defaults (``models.variants``);
    ``cache_threshold`` > 0 turns the sampler's step cache on."""

    width: int = 512
    height: int = 512
    fit: str = "pad"
    transition: bool = True
    steps: int | None = None
    cfg: float | None = None
    shift: float | None = None
    cache_threshold: float = 0.0
    solver: str = "euler"
    seed: int = 0
    negative_prompt: str = ""
    pose_backend: str = "mediapipe"
    pose_model_dirs: tuple[str, ...] = ()
    min_confidence: float = 0.3
    bone_scale: tuple[float, float] | None = None  # (low, high): scale bones by factors drawn from U(low, high)
    pose_seed: int = 0
    track_people: bool = True  # stable person ids across frames (the backends of pose.extract.MULTI_PERSON_BACKENDS)
    pose_box: str = "group"  # "group": one clip box over everyone (paper); "person": one per person id
    tile_frames: int = 16
    tile_size: int = 256


@dataclass(frozen=True)
class Animation:
    """The result frames ``[T, H, W, 3]`` (0..1) at ``fps``, and the intermediate videos the
    workflows preview: the driving signal (skeletons in pose mode) and the canvas."""

    frames: torch.Tensor
    fps: float
    driving: torch.Tensor
    canvas: torch.Tensor
    poses: PoseSequence | None = field(default=None)


def load_models(files: ModelFiles, *, dtype: torch.dtype = torch.float32,
                device: str | torch.device = "cpu") -> AnimationModels:
    """Load the three models and attach the LoRAs (a missing file names the folder it belongs in)."""
    model = load_transformer(files.transformer, dtype=dtype, device=device)
    for path, strength in files.loras:
        model = model.with_lora(load_lora(path, model), strength)
    return AnimationModels(
        model=model,
        vae=load_vae(files.vae, dtype=dtype, device=device),
        text_encoder=load_text_encoder(files.text_encoder, files.glyph_encoder, dtype=dtype, device=device),
        image_encoder=(load_image_encoder(files.image_encoder, dtype=dtype, device=device)
                       if files.image_encoder is not None else None),
    )


def driving_poses(chunks: Iterable[torch.Tensor], settings: AnimationSettings, video: bool = True) -> PoseSequence:
    """The driving clip's poses from frame chunks (one pass, so a stream of any length works), with
    people tracked across frames when ``settings.track_people`` and the backend finds several."""
    estimator = extract.make_estimator(settings.pose_backend, settings.pose_model_dirs, video=video)
    track = settings.track_people and settings.pose_backend in extract.MULTI_PERSON_BACKENDS
    return extract.extract_pose_chunks(chunks, estimator, settings.min_confidence, track=track)


def augment_driving_poses(poses: PoseSequence, settings: AnimationSettings) -> PoseSequence:
    """Optional bone scaling (one factor set per person id, the paper's one set for one person), then
    the clip box (``settings.pose_box``) fitted into the panel."""
    factors = (augment.person_bone_factors(settings.pose_seed, poses, *settings.bone_scale)
               if settings.bone_scale is not None else None)
    return augment.augment_clip(poses, factors, (settings.width, settings.height), box=settings.pose_box)


def pose_driving(frames: torch.Tensor, settings: AnimationSettings,
                 poses: PoseSequence | None = None) -> tuple[torch.Tensor, PoseSequence]:
    """The pose-mode driving signal: extract (unless ``poses`` are given), augment and render
    skeletons at panel size."""
    if poses is None:
        poses = driving_poses([frames], settings, video=len(frames) > 1)
    return render.render_poses(augment_driving_poses(poses, settings), settings.width, settings.height), poses


# The whole-clip path holds the float32 canvas, the decoded canvas and the result at once: about
# three canvases. Longer clips go through ``long_video.animate_stream`` (memory flat in the length).
WHOLE_CLIP_CANVASES = 3


def available_memory() -> int | None:
    """Memory a new allocation can get, in bytes: Linux's MemAvailable (free plus reclaimable page
    cache), else the free pages; None where the OS does not say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_whole_clip_memory(frames: int, fps: float, settings: AnimationSettings, available: int | None = None) -> None:
    """Refuse a clip whose whole canvas would not fit in half the free memory, naming the streamed path,
    instead of letting the machine run out of memory part way through."""
    total = frames + (round(fps) if settings.transition else 0)
    needed = WHOLE_CLIP_CANVASES * total * settings.height * 2 * settings.width * 3 * 4
    available = available_memory() if available is None else available
    if available is not None and needed > available // 2:
        raise DreamActorError(
            f"driving: {frames} frames at a {settings.width}x{settings.height} panel need about "
            f"{needed / 2**30:.1f} GiB at once on the whole-clip path, more than half the {available / 2**30:.1f} GiB "
            "free; use the streamed path (long_video.animate_stream; the command line streams), or fewer frames")


def animate(models: AnimationModels, reference: torch.Tensor, driving: torch.Tensor, fps: float, *,
            mode: Mode, prompt: str, settings: AnimationSettings = AnimationSettings(),
            poses: PoseSequence | None = None, progress: ProgressHook | None = None) -> Animation:
    """Animate ``reference`` ([1, H, W, C] or [H, W, C], 0..1, C = 3 or 4 with alpha) with
    ``driving`` frames ([T, H, W, 3]) in ``mode``. ``poses``: the driving clip's poses when already
    extracted (pose mode)."""
    if mode not in MODES:
        raise DreamActorError(f"mode: expected one of {', '.join(MODES)}, got '{mode}'")
    check_whole_clip_memory(len(driving), fps, settings)
    transparency = None
    if reference.shape[-1] == 4:  # an RGBA picture: transparent pixels show the canvas background
        reference, transparency = reference[..., :3], 1.0 - reference[..., 3]
    extracted = None
    if mode == "pose":
        driving, extracted = pose_driving(driving, settings, poses)
    adapter = models.model.adapter
    canvas, layout = build_canvas(
        reference, driving, width=settings.width, height=settings.height, fit=settings.fit,
        temporal=adapter.temporal_compression, transition=settings.transition, fps=fps,
        reference_transparency=transparency,
    )
    condition = encode_video(models.vae, canvas, tile_frames=settings.tile_frames, tile_size=settings.tile_size)
    mask = pack_latent_mask(canvas_mask(layout), adapter.spatial_compression, adapter.temporal_compression,
                            adapter.mask_layout).unsqueeze(0)
    positive, negative = models.text_encoder.encode_pair(prompt, settings.negative_prompt)
    positive, negative = with_reference_embedding(models.image_encoder, reference, positive, negative)
    latent = sample(
        models.model, positive, condition, mask, negative=negative if settings.cfg != 1.0 else None,
        seed=settings.seed, steps=settings.steps, cfg=settings.cfg, shift=settings.shift, solver=settings.solver,
        cache_threshold=settings.cache_threshold, progress=progress,
    )
    decoded = decode_latent(models.vae, latent, tile_frames=settings.tile_frames, tile_size=settings.tile_size)
    return Animation(frames=extract_result(decoded, layout), fps=layout.fps, driving=driving, canvas=canvas,
                     poses=extracted)

