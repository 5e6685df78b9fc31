"""The reference image's SigLIP embedding (HunyuanVideo 1.5's ``image_embeds``), made as diffusers'
``HunyuanVideo15ImageToVideoPipeline._get_image_embeds`` makes it: the RGB image through
``SiglipImageProcessor`` (resize to the model's size, rescale, normalize) and ``SiglipVisionModel``,
keeping ``last_hidden_state`` [1, 729, 1152] for the released so400m-patch14-384 model.

Files: a diffusers pipeline folder (``image_encoder/`` + ``feature_extractor/``), a SigLIP model
folder, or one ``.safetensors`` in ComfyUI's ``clip_vision/`` folder (transformers key names, e.g.
``sigclip_vision_patch14_384.safetensors``) with ``<stem>.json`` beside it or the shipped config.

``with_reference_embedding`` is the one place the embedding joins the text conditioning: the
Reference Image Embed node, ``pipeline.animate`` and the LoRA training all call it, so the model is
trained on the conditioning it is given at inference.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..canvas.composite import to_rgb
from ..errors import DreamActorError
from ..models import memory
from ..models.precision import encoder_dtype
from .embedding_cache import SHARED_CACHE, EmbeddingCache
from .encoder_files import (
    build,
    config_for,
    file_identity,
    file_submodel,
    from_pretrained,
    must_exist,
    transformers_class,
)
from .types import Conditioning

FOLDER = "clip_vision"
BLACK = (0.0, 0.0, 0.0)
_ANCHOR = "embeddings.patch_embedding.weight"


class ImageEncoder:
    """A SigLIP vision tower and its preprocessing; embeddings cached by (identity, image bytes)."""

    def __init__(self, model: torch.nn.Module, processor: Any, identity: str, cache: EmbeddingCache | None = None) -> None:
        self.model, self.processor, self.identity = model.eval(), processor, identity
        self.cache = cache if cache is not None else SHARED_CACHE

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """[1, tokens, width] embedding of the first frame of an IMAGE [T, H, W, C] (or [H, W, C]) in 0..1."""
        pixels = to_uint8_rgb(image)
        key = (self.identity, "image", pixels.shape, hashlib.sha1(pixels.tobytes()).hexdigest())
        return self.cache.get_or_compute(key, lambda: self._encode(pixels))

    @torch.inference_mode()
    def _encode(self, pixels: np.ndarray) -> torch.Tensor:
        inputs = self.processor.preprocess(images=pixels, do_resize=True, return_tensors="pt", do_convert_rgb=True)
        with memory.resident(self.model, "image encoder (SigLIP)") as device:
            inputs = inputs.to(device=device, dtype=next(self.model.parameters()).dtype)
            return self.model(**inputs).last_hidden_state.cpu()


def with_reference_embedding(encoder: ImageEncoder | None, reference: torch.Tensor, positive: Conditioning,
                             negative: Conditioning | None = None) -> tuple[Conditioning, Conditioning | None]:
    """``positive`` with the SigLIP embedding of ``reference``'s first frame, and ``negative`` (when
    given) with the same embedding: diffusers' image-to-video pipeline gives both guidance branches
    the reference's ``image_embeds``. Without an encoder both come back unchanged, and the backbone
    adapter fills its zero placeholder embedding."""
    if encoder is None:
        return positive, negative
    positive = positive.with_image_embeds(encoder.encode(reference))
    return positive, (positive.unconditional_like(negative) if negative is not None else None)


def to_uint8_rgb(image: torch.Tensor) -> np.ndarray:
    """The first frame as the 8-bit RGB array diffusers' pipeline gets from a PIL image.

    Any channel count Build Canvas takes is taken here, converted as the canvas converts it
    (``canvas.composite.to_rgb``): gray (1) is expanded to RGB, and an alpha channel (gray + alpha,
    RGBA) is composited over black, Build Canvas's default background."""
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4) or image.shape[-1] not in (1, 2, 3, 4):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise DreamActorError(f"image: expected an IMAGE [frames, height, width, channels] in 0..1 with 1 (gray), "
                              f"2 (gray + alpha), 3 (RGB) or 4 (RGBA) channels, got {shape}")
    frame = image[:1] if image.ndim == 4 else image[None]
    rgb = to_rgb(frame.float(), BLACK)[0]
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def load_image_encoder(path: str | Path, *, dtype: torch.dtype = torch.float32,
                       device: str | torch.device = "cpu", compute_device: str | torch.device | None = None) -> ImageEncoder:
    """SigLIP from a diffusers pipeline folder, a SigLIP model folder or a single .safetensors file
    (read one tensor at a time). ``compute_device`` (default ``device``) decides the dtype: ``dtype``
    on an accelerator, fp32 on the CPU (``models.precision.encoder_dtype``)."""
    path = Path(path)
    must_exist(path, FOLDER)
    dtype = encoder_dtype(dtype, device if compute_device is None else compute_device)
    if path.is_dir():
        model_dir = path / "image_encoder" if (path / "image_encoder").is_dir() else path
        model = from_pretrained("SiglipVisionModel", model_dir, dtype, device, FOLDER)
        processor_dir = next((d for d in (path / "feature_extractor", model_dir)
                              if (d / "preprocessor_config.json").is_file()), None)
        processor = (transformers_class("SiglipImageProcessor").from_pretrained(str(processor_dir), local_files_only=True)
                     if processor_dir else _default_processor(model.config.image_size))
    else:
        with file_submodel(path, _ANCHOR, "a SigLIP vision model") as (state, scales):
            config = config_for(path, "siglip_so400m_patch14_384.json")
            config["vision_use_head"] = any(key.startswith("head.") for key in state)
            model = build("SiglipVisionModel", "SiglipVisionConfig", config, state, path, device, dtype, scales)
        processor = _default_processor(model.config.image_size)
    return ImageEncoder(model, processor, f"{file_identity(path)}|{dtype}|{device}")


def _default_processor(size: int) -> Any:
    """SigLIP's released preprocessing (bicubic resize to the model size, mean/std 0.5)."""
    return transformers_class("SiglipImageProcessor")(size={"height": size, "width": size})
