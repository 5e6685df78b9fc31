"""The streamed long-video node: a driving VIDEO of any length animated window by window from its
file into an mp4 (``dreamactor_core.long_video``), so neither the clip nor the result is ever one
IMAGE batch. The graph's loaders and encoders feed it; core Save Video / Preview Video take its VIDEO.
As in the Sampler, each model comes onto the device through the pack's ComfyUI memory policy
(``memory.ComfyPolicy``) when the core computes with it, so ComfyUI evicts other models for it and
keeps it loaded afterwards; one ComfyUI progress bar counts every forward of every window, and Cancel
is honoured there and between driving chunks.

Streaming needs ComfyUI's VIDEO type (``comfy_api``) with ``get_stream_source``; where the running
ComfyUI lacks it, or gives a trimmed VIDEO this node cannot stream, it says so instead of decoding
the whole clip.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator

import torch

from ..dreamactor_core.canvas.placement import FIT_MODES
from ..dreamactor_core.errors import DreamActorError
from ..dreamactor_core.long_video.plan import describe_estimate
from ..dreamactor_core.long_video.stream import StreamSettings, animate_stream_encoded
from ..dreamactor_core.long_video.video_stream import VideoSource, open_video
from ..dreamactor_core.models.attention import configured
from ..dreamactor_core.pipeline import MODES, AnimationSettings
from ..dreamactor_core.pose import augment, extract
from ..dreamactor_core.video_io import VideoWriter
from .comfy_bridge import CATEGORY_ROOT, progress_hook
from .conditioning import CONDITIONING_TYPE
from .models import MODEL_TYPE, VAE_TYPE
from .pose import BACKEND_WIDGET, _pose_model_dirs
from .sampling import GUIDANCE_WIDGETS, SPEED_WIDGETS

LOG = logging.getLogger(__name__)
NEEDS = "ComfyUI's VIDEO type with get_stream_source (ComfyUI 0.3.75 has it; update ComfyUI)"
TEMP_FOLDER = "dreamactor_m2"


def _interruptible(chunks: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
    """The driving chunks, with ComfyUI's Cancel honoured between them (the pose pass reads the whole
    clip before the first forward, so the sampler's progress hook alone would answer late)."""
    import comfy.model_management

    for chunk in chunks:
        comfy.model_management.throw_exception_if_processing_interrupted()
        yield chunk


def driving_source(video, max_frames: int, stride: int) -> VideoSource:
    """The VIDEO's file, probed for streaming (``long_video.open_video``): never decoded whole. An
    in-memory VIDEO is written to ComfyUI's temp folder first (it is in memory already)."""
    import folder_paths

    if not hasattr(video, "get_stream_source"):
        raise DreamActorError(f"video: streaming a driving video needs {NEEDS}; got {type(video).__name__}")
    trim = getattr(video, "get_active_trim_window", None)
    if trim is not None and tuple(trim()) != (0.0, 0.0):
        raise DreamActorError("video: a trimmed VIDEO (start/duration set upstream) cannot be streamed from its "
                              "file; use this node's max_frames, or save the trimmed clip and load that")
    source = video.get_stream_source()
    if not isinstance(source, (str, os.PathLike)):
        path = os.path.join(folder_paths.get_temp_directory(), TEMP_FOLDER, f"driving_{uuid.uuid4().hex}.mp4")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as file:
            source.seek(0)
            shutil.copyfileobj(source, file)
        source = path
    return open_video(source, max_frames=max_frames or None, stride=stride)


def _reference_with_alpha(reference: torch.Tensor, reference_mask: torch.Tensor | None) -> torch.Tensor:
    """The reference as the core takes transparency: alpha (1 - LoadImage's MASK) as a fourth channel.
    LoadImage gives an all-zero 64x64 mask for pictures without alpha: that means opaque."""
    if reference_mask is None or not bool(reference_mask.any()):
        return reference
    if reference_mask.shape[-2:] != reference.shape[1:3]:
        raise DreamActorError(f"reference_mask: expected the reference's size {list(reference.shape[1:3])}, "
                              f"got {list(reference_mask.shape[-2:])}")
    alpha = 1.0 - reference_mask.reshape(-1, *reference.shape[1:3])[:1]
    return torch.cat([reference[:1], alpha.unsqueeze(-1).to(reference.dtype)], dim=-1)


def _video_output(path: str):
    try:
        from comfy_api.input_impl import VideoFromFile
    except ImportError as error:
        raise DreamActorError(f"output: the result is a VIDEO, which needs {NEEDS}") from error
    return VideoFromFile(path)


class AnimateLongVideo:
    DESCRIPTION = (
        "Animates the reference with a driving video of any length, streamed from its file: the clip is cut "
        "into windows of latent frames, each continuing the last frames of the one before (motion context), "
        "and each window is decoded, put on the canvas, sampled, decoded and appended to an mp4 before the "
        "next starts. Memory stays that of one window however long the clip; the result is a VIDEO for "
        "Save Video. The log (and the report output) gives the window and forward counts before sampling "
        "and the time estimate after the first forward."
    )
    CATEGORY = f"{CATEGORY_ROOT}/sampling"
    RETURN_TYPES = ("VIDEO", "STRING")
    RETURN_NAMES = ("video", "report")
    OUTPUT_TOOLTIPS = ("The animation (the generated half, lead-in second cut) at the driving video's frame rate, "
                       "an mp4 in ComfyUI's temp folder: connect Save Video to keep it.",
                       "Frames, windows, transformer forwards and the measured seconds per forward.")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "model": (MODEL_TYPE, {"tooltip": "The transformer (with the LoRA of the mode)."}),
                "vae": (VAE_TYPE, {"tooltip": "The backbone's VAE."}),
                "positive": (CONDITIONING_TYPE, {"tooltip": "The encoded target-oriented prompt (with the "
                                                 "reference embedding from Reference Image Embed)."}),
                "reference": ("IMAGE", {"tooltip": "The reference picture (the character to animate)."}),
                "video": ("VIDEO", {"tooltip": "The driving video from core Load Video: read from its file a "
                                    "chunk at a time, never decoded whole."}),
                "mode": (list(MODES), {"default": "pose", "tooltip": "pose: skeletons extracted from the video "
                                       "drive (the pose LoRA); rgb: the video's own frames drive (the RGB LoRA)."}),
                "width": ("INT", {"default": 512, "min": 32, "max": 4096, "step": 16,
                                  "tooltip": "Panel width in pixels (the canvas is twice as wide)."}),
                "height": ("INT", {"default": 512, "min": 32, "max": 4096, "step": 16,
                                   "tooltip": "Panel height in pixels."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                                 "tooltip": "Noise seed of the first window (window i uses seed + i)."}),
                **GUIDANCE_WIDGETS,
                "window_frames": ("INT", {"default": 31, "min": 4, "max": 64, "tooltip": "Latent frames per "
                                          "window, the reference frame included (31 = 121 video frames at 4x, "
                                          "the longest clip the paper trains on). Memory follows this, not the "
                                          "clip's length."}),
                "context_frames": ("INT", {"default": 3, "min": 0, "max": 61, "tooltip": "Latent frames of the "
                                           "previous window each window continues (motion context); at most "
                                           "window_frames - 3."}),
            },
            "optional": {
                "negative": (CONDITIONING_TYPE, {"tooltip": "The encoded negative prompt, needed when cfg > 1."}),
                "reference_mask": ("MASK", {"tooltip": "LoadImage's MASK of the reference (1 = transparent)."}),
                "fit": (list(FIT_MODES), {"default": "pad", "tooltip": "pad: scale to fit inside the panel; "
                                          "crop: scale to cover it and cut the overflow."}),
                "transition": ("BOOLEAN", {"default": True, "tooltip": "Lead in with one second of black driving "
                                           "frames (the paper's inference setting); cut from the result."}),
                "pose_backend": BACKEND_WIDGET,
                "pose_box": (list(augment.BOX_MODES), {"default": "group", "tooltip": "group: one clip box over "
                             "everyone (the paper); person: one per tracked person."}),
                "max_frames": ("INT", {"default": 0, "min": 0, "max": 10_000_000,
                                       "tooltip": "Driving frames to use; 0 = the whole video."}),
                "stride": ("INT", {"default": 1, "min": 1, "max": 64,
                                   "tooltip": "Keep every n-th driving frame (the frame rate drops with it)."}),
                **SPEED_WIDGETS,
            },
        }

    def run(self, model, vae, positive, reference, video, mode, width, height, seed, steps, cfg, shift, solver,
            window_frames, context_frames, negative=None, reference_mask=None, fit="pad", transition=True,
            pose_backend="mediapipe", pose_box="group", max_frames=0, stride=1, attention="auto", compile=False,
            cache_threshold=0.0) -> tuple:
        import folder_paths

        source = driving_source(video, max_frames, stride)
        settings = AnimationSettings(
            width=width, height=height, fit=fit, transition=transition,
            steps=steps or None, cfg=cfg or None, shift=shift or None,  # 0: the model file's default
            cache_threshold=cache_threshold, solver=solver, seed=seed, pose_backend=pose_backend,
            pose_model_dirs=() if pose_backend in extract.OFFLINE_BACKENDS else tuple(_pose_model_dirs()),
            pose_box=pose_box)
        stream = StreamSettings(window_frames=window_frames, context_frames=context_frames)
        path = os.path.join(folder_paths.get_temp_directory(), TEMP_FOLDER, f"long_video_{uuid.uuid4().hex}.mp4")
        LOG.info("DreamActor-M2 long video: %s, %d frames at %.3g fps, streamed to %s", source.path, source.frames,
                 source.fps, path)
        try:
            with VideoWriter(path, source.fps) as writer, configured(model.transformer, attention, compile):
                report = animate_stream_encoded(
                    model, vae, _reference_with_alpha(reference, reference_mask),
                    _interruptible(source.chunks(stream.chunk_frames)), source.frames, source.fps, mode=mode,
                    positive=positive, negative=negative, write=lambda chunk: writer.write(chunk.result),
                    settings=settings, stream=stream, progress=progress_hook(1))
        except BaseException:  # Cancel or an error: no half-written video is left behind
            if os.path.exists(path):
                os.remove(path)
            raise
        summary = (f"{describe_estimate(source.frames, report.windows, report.forwards, report.seconds_per_forward)}"
                   f"; wrote {report.frames} frames at {round(source.fps)} fps")
        LOG.info("DreamActor-M2 long video: %s", summary)
        return (_video_output(path), summary)


NODE_CLASS_MAPPINGS = {
    "DreamActorM2_AnimateLongVideo": AnimateLongVideo,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "DreamActorM2_AnimateLongVideo": "DreamActor-M2 Animate Long Video (streamed)",
}
