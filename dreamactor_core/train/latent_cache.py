"""Training examples encoded once and kept on disk (``--cache-latents N``), so a step costs the
transformer's forward and backward instead of two VAE encodes and a SigLIP pass.

What is cached: per clip, ``N`` sample variants, each a fixed draw of what ``make_sample`` draws
at random (the window's start and length, the bone-scaling decision and factors, hence the
reference frame): its condition latent, packed mask, target latent and the reference's SigLIP
embedding. What stays random every step: which variant, the noise and the noise level. So caching
FREEZES the augmentation to N draws per clip: bone scaling still reaches about
``bone_scale_probability`` of the variants (each variant draws it as an uncached sample would),
but a clip shows only N windows and N factor sets for the whole run; raise N for more variety.

Keys: a variant's key is the clip's content digest (videos and prompt), the variant number, every
setting that changes a sample (panel, fit, frame range, stride, masking, pose and augmentation
settings, seed) and the identity of the VAE and image-encoder files and their dtype. The variant's
random draws are seeded from the key itself, so an entry is a pure function of its key. The
settings are also written into the file and compared on reading: an entry made otherwise is an
error, never reused silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import DreamActorError
from .config import TrainConfig
from .data import PoseVideo, RgbItem, Sample
from .files import file_digest, replacing, settings_key
from .objective import Example

LATENT_FORMAT = "dreamactor-latents-1"
# TrainConfig fields that change a drawn sample or its encoding (the rest: optimizer, schedule, logging).
SAMPLE_SETTINGS = ("backbone", "width", "height", "fit", "min_frames", "max_frames", "frame_stride",
                   "driving_mask_seconds", "pose_backend", "pose_model_dirs", "min_confidence",
                   "bone_scale_probability", "bone_scale_range", "seed")


def item_digest(item: Any) -> str:
    """The content of one training clip: its video files' bytes and its prompt."""
    if isinstance(item, PoseVideo):
        return settings_key(file_digest(item.path), item.prompt)
    if isinstance(item, RgbItem):
        return settings_key(file_digest(item.triplet.driving), file_digest(item.triplet.target), item.triplet.prompt)
    raise DreamActorError(f"latent cache: cannot key a clip of type {type(item).__name__}")


class LatentCache:
    """Encoded variants under ``cache_dir/latents``; ``encoders`` names the VAE and image-encoder
    files and the dtype (``encoder_files.file_identity``), so other models never reuse entries."""

    def __init__(self, cache_dir: Path, config: TrainConfig, encoders: str) -> None:
        self.folder = Path(cache_dir) / "latents"
        self.settings = json.dumps({"format": LATENT_FORMAT, "encoders": encoders,
                                    **{name: getattr(config, name) for name in SAMPLE_SETTINGS}},
                                   sort_keys=True, default=str)

    def key(self, digest: str, variant: int) -> str:
        return settings_key(self.settings, digest, variant)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.safetensors"

    def fill(self, items: list[Any], variants: int, make: Callable[[Any, np.random.Generator], Sample],
             encode: Callable[[Sample], Example], log: Callable[[str], None] = print) -> list[str]:
        """Encode the missing variants of every clip (``make`` draws a sample, ``encode`` turns it
        into an example with its ``image_embeds``); returns every entry's key, clip by clip."""
        keys, made = [], 0
        for item in items:
            digest = item_digest(item)
            for variant in range(variants):
                key = self.key(digest, variant)
                keys.append(key)
                if not self.path(key).is_file():
                    self._write(key, encode(make(item, np.random.default_rng(int(key[:16], 16)))))
                    made += 1
        log(f"latent cache: {len(keys)} variant(s) of {len(items)} clip(s), {made} encoded now, "
            f"{len(keys) - made} read from {self.folder}")
        return keys

    def _write(self, key: str, example: Example) -> None:
        from safetensors.torch import save_file

        tensors = {"condition": example.condition, "mask": example.mask, "clean": example.clean}
        if example.image_embeds is not None:
            tensors["image_embeds"] = example.image_embeds
        tensors = {name: value.detach().cpu().contiguous() for name, value in tensors.items()}
        with replacing(self.path(key)) as temporary:
            save_file(tensors, str(temporary), metadata={"settings": self.settings, "prompt": example.prompt})

    def read(self, key: str) -> Example:
        """One cached example; an entry written with other settings is an error naming the file."""
        from safetensors import safe_open

        path = self.path(key)
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("settings") != self.settings:
                raise DreamActorError(f"latent cache '{path}' was made with other settings; delete it or use another "
                                      "--cache-dir")
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        return Example(tensors["condition"], tensors["mask"], tensors["clean"], metadata["prompt"],
                       torch.zeros(1, 1, 1, 3), tensors.get("image_embeds"))
