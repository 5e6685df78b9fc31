"""Every training setting in one dataclass, with the paper's recipe as the defaults.

DreamActor-M2 (arXiv 2601.21716) trains each stage with AdamW, lr 5e-5, weight decay 0.01, batch 2,
50,000 steps, clips of 49..121 frames (4k+1 for a 4x temporal VAE), a rank-256 LoRA on the visual
FFN layers, bone scaling U(0.8, 1.2) on 30% of pose samples, and the driving signal masked for the
first second. Settings come from the defaults, then a TOML or JSON file, then command-line flags
(``app/train_cli.py`` generates one flag per field from the ``help`` metadata here).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomllib

from ..errors import DreamActorError

TIMESTEP_SAMPLINGS = ("logit_normal", "uniform")
MIXED_PRECISIONS = ("bf16", "fp16", "no")
FITS = ("pad", "crop")
OPTIMIZERS = ("adamw", "adamw8bit")


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    """One stage's settings (pose or RGB). ``alpha`` None means alpha = rank (LoRA scale 1)."""

    backbone: str = _setting("hunyuan_video_15", "backbone of the transformer (checked against the file)")
    rank: int = _setting(256, "LoRA rank (paper: 256)")
    alpha: float | None = _setting(None, "LoRA alpha; default: the rank (scale 1)")
    learning_rate: float = _setting(5e-5, "AdamW learning rate (paper: 5e-5)")
    weight_decay: float = _setting(0.01, "AdamW weight decay (paper: 0.01)")
    warmup_steps: int = _setting(0, "linear learning-rate warm-up steps (then constant)")
    max_grad_norm: float = _setting(1.0, "gradient clipping norm (0: off)")
    batch_size: int = _setting(2, "clips per optimizer step and process, by gradient accumulation (paper: 2)")
    max_steps: int = _setting(50_000, "optimizer steps of the stage (paper: 50,000)")
    min_frames: int = _setting(49, "shortest training clip in frames (4k+1; paper: 49)")
    max_frames: int = _setting(121, "longest training clip in frames (4k+1; paper: 121)")
    frame_stride: int = _setting(1, "keep every n-th video frame")
    width: int = _setting(512, "panel width in pixels (the canvas is twice as wide)")
    height: int = _setting(512, "panel height in pixels")
    fit: str = _setting("pad", "how frames fit the panel: pad or crop (as at inference)")
    driving_mask_seconds: float = _setting(1.0, "seconds of driving signal blacked out at each clip's start (paper: 1)")
    pose_backend: str = _setting("mediapipe", "pose estimator: mediapipe, dwpose or openpose")
    pose_model_dirs: tuple[str, ...] = _setting((), "folders holding DWPose/OpenPose weights")
    min_confidence: float = _setting(0.3, "keypoints below this confidence are dropped")
    bone_scale_probability: float = _setting(0.3, "share of pose samples with bone scaling (paper: 0.3)")
    bone_scale_range: tuple[float, float] = _setting((0.8, 1.2), "bone factors drawn from U(low, high) (paper)")
    prompt: str = _setting("", "fixed prompt for videos without a caption")
    captioner: str = _setting("", "train pose: a Qwen2.5-VL-Instruct model folder or single file that writes the "
                                  "prompt of each video without a caption file (cached; freed before training)")
    captioner_tokenizer: str = _setting("", "the Qwen2.5 tokenizer folder for a single captioner file without one "
                                            "beside it")
    timestep_sampling: str = _setting("logit_normal", "noise levels: logit_normal or uniform, then shifted")
    timestep_shift: float | None = _setting(None, "noise-level shift; default: the backbone's sampling shift")
    mixed_precision: str = _setting("bf16", "bf16, fp16 or no; applies on GPU only (CPU trains in fp32)")
    gradient_checkpointing: bool = _setting(True, "recompute transformer blocks in the backward pass")
    offload_activations: bool = _setting(False, "keep the activations saved for the backward pass in CPU memory "
                                               "(with checkpointing: the blocks' inputs)")
    optimizer: str = _setting("adamw", "adamw, or adamw8bit (bitsandbytes: 8-bit moments, 2 instead of 8 bytes "
                                       "per LoRA parameter)")
    fp8_weights: bool = _setting(False, "store the frozen transformer's linear weights in fp8 (the LoRA stays fp32)")
    block_swap: bool = _setting(False, "keep the frozen blocks' weights in CPU memory, one block on the GPU at a "
                                       "time (needs gradient checkpointing)")
    fsdp: bool = _setting(False, "shard the frozen backbone with FSDP instead of replicating it (DDP)")
    cache_latents: int = _setting(0, "encode N sample variants per clip once (latents, reference embedding) "
                                     "and train on them; freezes each clip's windows and bone scaling to N draws "
                                     "(0: draw and encode every step)")
    seed: int = _setting(0, "seed of the clip, augmentation, noise and timestep draws")
    checkpoint_every: int = _setting(1000, "save a resumable checkpoint and a LoRA every N steps (0: off)")
    keep_checkpoints: int = _setting(3, "resumable checkpoints kept (oldest removed)")
    sample_every: int = _setting(1000, "render a sample video on a held clip every N steps (0: off)")
    sample_steps: int = _setting(30, "sampler steps of the sample render")
    sample_cfg: float = _setting(6.0, "text guidance of the sample render")
    log_every: int = _setting(10, "print the loss every N steps")

    def lora_alpha(self) -> float:
        return float(self.rank if self.alpha is None else self.alpha)

    def clip_lengths(self, temporal: int) -> list[int]:
        """The allowed clip lengths: ``temporal``k+1 frames between ``min_frames`` and ``max_frames``."""
        lengths = [n for n in range(max(1, self.min_frames), self.max_frames + 1) if (n - 1) % temporal == 0]
        if not lengths:
            raise DreamActorError(f"min_frames/max_frames: no {temporal}k+1 length lies in "
                                  f"{self.min_frames}..{self.max_frames}")
        return lengths

    def check(self) -> "TrainConfig":
        """Raise on settings that cannot train; returns self for chaining."""
        problems = []
        if self.rank < 1:
            problems.append(f"rank must be positive, got {self.rank}")
        if self.batch_size < 1 or self.max_steps < 1:
            problems.append(f"batch_size and max_steps must be positive, got {self.batch_size}, {self.max_steps}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got '{self.optimizer}'")
        if self.block_swap and not self.gradient_checkpointing:
            problems.append("block_swap needs gradient_checkpointing (else every block's weights stay alive "
                            "until the backward pass)")
        if self.cache_latents < 0:
            problems.append(f"cache_latents must be 0 (off) or a number of variants per clip, got {self.cache_latents}")
        if self.frame_stride < 1:
            problems.append(f"frame_stride must be at least 1, got {self.frame_stride}")
        if self.width < 1 or self.height < 1:
            problems.append(f"width/height must be positive, got {self.width}x{self.height}")
        if self.fit not in FITS:
            problems.append(f"fit must be one of {', '.join(FITS)}, got '{self.fit}'")
        if self.timestep_sampling not in TIMESTEP_SAMPLINGS:
            problems.append(f"timestep_sampling must be one of {', '.join(TIMESTEP_SAMPLINGS)}, "
                            f"got '{self.timestep_sampling}'")
        if self.mixed_precision not in MIXED_PRECISIONS:
            problems.append(f"mixed_precision must be one of {', '.join(MIXED_PRECISIONS)}, got '{self.mixed_precision}'")
        if not 0.0 <= self.bone_scale_probability <= 1.0:
            problems.append(f"bone_scale_probability must be in 0..1, got {self.bone_scale_probability}")
        if problems:
            raise DreamActorError("training config: " + "; ".join(problems))
        return self

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _coerce(name: str, value: Any, default: Any) -> Any:
    """File values to the field's type (TOML/JSON have lists where the dataclass has tuples)."""
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if default is not None and not isinstance(value, type(default)):
        raise DreamActorError(f"training config: '{name}' expects {type(default).__name__}, got {value!r}")
    return value


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a .toml or .json file (a flat table of field names); unknown names are errors."""
    path = Path(path)
    if not path.is_file():
        raise DreamActorError(f"config '{path}' does not exist")
    try:
        data = tomllib.loads(path.read_text()) if path.suffix.lower() == ".toml" else json.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise DreamActorError(f"config '{path}' could not be parsed: {error}") from error
    if not isinstance(data, dict):
        raise DreamActorError(f"config '{path}': expected a table of settings")
    return data


def make_config(file_values: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults, then ``file_values``, then ``overrides`` (None values are ignored: flags not given)."""
    known = {f.name: f.default for f in fields(TrainConfig)}
    values: dict[str, Any] = {}
    for source in (file_values or {}, {k: v for k, v in (overrides or {}).items() if v is not None}):
        unknown = sorted(set(source) - set(known))
        if unknown:
            raise DreamActorError(f"training config: unknown setting(s) {', '.join(unknown)}; "
                                  f"known: {', '.join(sorted(known))}")
        values.update({name: _coerce(name, value, known[name]) for name, value in source.items()})
    return replace(TrainConfig(), **values).check()
