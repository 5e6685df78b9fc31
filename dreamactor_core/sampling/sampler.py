"""Flow-matching sampling of the DreamActor canvas: Euler, Heun and DPM++ 2M, with text CFG.

The transformer sees [noisy latent | canvas latent | canvas mask] on the channel axis (the adapter
packs them) and predicts the flow velocity v = noise - x0, with x_t = (1 - s) x0 + s noise. The
condition never changes during sampling; only the noisy latent moves from s = 1 (or the denoise
start) to s = 0. Noise comes from a CPU generator, so a seed gives the same video on any device.
Long videos: ``window_frames`` splits the latent frames into overlapping windows (``windows.py``).
Steps, cfg and shift left at None come from the transformer's release (``models/variants.py``); a
step-distilled (MeanFlow) model also gets the level each step lands on (``timestep_r``).
``cache_threshold`` > 0 skips most of a forward when its first block predicts little change
(``step_cache.py``), with one cache state per guidance branch and window.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any, Callable, Mapping

import torch

from ..errors import DreamActorError
from ..models import memory, variants
from ..models.loading import DreamActorModel
from ..models.lora import lora_patches
from ..progress import ProgressHook, report
from .schedules import sigma_schedule
from .solvers import SOLVERS, forwards_per_run, make_solver
from .step_cache import StepCache
from .windows import temporal_windows, window_weights

# How the canvas's empty regions (mask 0: the reference half after frame 0) reach the model:
# "encoded_black" keeps the VAE encoding of black pixels (the paper's canvas); "zero_latent" zeroes
# them in latent space, as diffusers' HunyuanVideo image-to-video pipelines do for missing frames.
EMPTY_REGIONS = ("encoded_black", "zero_latent")


def conditioning_kwargs(conditioning: Any) -> dict[str, torch.Tensor]:
    """Transformer forward kwargs from a conditioning: a mapping of tensors or a dataclass whose
    tensor fields (or dict-of-tensor fields) are named after the forward's arguments."""
    if conditioning is None:
        return {}
    if isinstance(conditioning, Mapping):
        return dict(conditioning)
    if is_dataclass(conditioning):
        out: dict[str, torch.Tensor] = {}
        for field in fields(conditioning):
            value = getattr(conditioning, field.name)
            if isinstance(value, torch.Tensor):
                out[field.name] = value
            elif isinstance(value, Mapping):
                out.update({k: v for k, v in value.items() if isinstance(v, torch.Tensor)})
        return out
    raise DreamActorError(f"conditioning: expected text-encoder output tensors, got {type(conditioning).__name__}")


def _check_inputs(model: DreamActorModel, condition: torch.Tensor, mask: torch.Tensor, steps: int,
                  solver: str, denoise: float, init_latent: torch.Tensor | None, cfg: float, negative: Any,
                  empty_regions: str) -> None:
    adapter = model.adapter
    if steps < 1:
        raise DreamActorError(f"steps: expected at least 1, got {steps}")
    if solver not in SOLVERS:
        raise DreamActorError(f"solver: expected one of {', '.join(SOLVERS)}, got '{solver}'")
    if not 0.0 < denoise <= 1.0:
        raise DreamActorError(f"denoise: expected a value in (0, 1], got {denoise}")
    if condition.ndim != 5 or condition.shape[1] != adapter.latent_channels:
        raise DreamActorError(
            f"canvas latent: expected [batch, {adapter.latent_channels}, frames, height, width] from the "
            f"{adapter.display_name} VAE, got shape {list(condition.shape)}"
        )
    patch = adapter.patch_size(model.transformer)
    if any(size % p for size, p in zip(condition.shape[2:], patch)):
        raise DreamActorError(f"canvas latent: frames/height/width {list(condition.shape[2:])} must be multiples "
                              f"of the patch size {list(patch)}")
    if condition.shape[-1] % (2 * patch[2]):
        raise DreamActorError(f"canvas latent: width {condition.shape[-1]} must split into two halves of whole "
                              f"{patch[2]}-wide patches, so the reference/motion seam falls between tokens")
    expected_mask = (condition.shape[0], adapter.mask_channels(), *condition.shape[2:])
    if tuple(mask.shape) != expected_mask:
        raise DreamActorError(f"mask: expected packed shape {list(expected_mask)} to match the canvas latent, "
                              f"got {list(mask.shape)}")
    if denoise < 1.0 and (init_latent is None or init_latent.shape != condition.shape):
        raise DreamActorError("latent: denoise < 1 refines an existing latent of the canvas latent's shape; "
                              "connect one or set denoise to 1")
    if cfg != 1.0 and negative is None:
        raise DreamActorError("negative: cfg other than 1 needs a negative conditioning (encode an empty prompt)")
    if empty_regions not in EMPTY_REGIONS:
        raise DreamActorError(f"empty_regions: expected one of {', '.join(EMPTY_REGIONS)}, got '{empty_regions}'")


def noised(clean: torch.Tensor, noise: torch.Tensor, s: float) -> torch.Tensor:
    """The flow-matching path x_s = (1 - s) x0 + s noise, on EVERY cell of the canvas latent.

    The one rule sampling and training (``train/objective.py``) share: the given cells (the
    reference on latent frame 0, the driving half) are not pinned to the condition latent. The
    sampler starts a partial denoise here and moves every cell with the model's velocity, as
    ComfyUI's and diffusers' samplers do; training puts the whole target latent on this path and
    supervises every cell (the paper's plain denoising loss), so each cell follows at inference the
    path it was trained on. The model still sees the given cells exactly in the condition channels.
    """
    return (1.0 - s) * clean + s * noise


class GuidedVelocity:
    """The model's velocity for the whole latent at one noise level: classifier-free guidance over
    the text branches, blended over temporal windows. Counts transformer forwards for ``progress``."""

    def __init__(self, model: DreamActorModel, texts: list[Any], cfg: float, condition: torch.Tensor,
                 mask: torch.Tensor, windows: list[list[int]], progress: ProgressHook | None, total: int,
                 cache: StepCache | None = None, landing: Mapping[float, float] | None = None) -> None:
        self.adapter, self.transformer = model.adapter, model.transformer
        self.texts, self.cfg = texts, cfg
        self.cache = cache or StepCache(model.transformer, 0.0)
        # MeanFlow models: noise level -> the level its step lands on (fed as timestep_r).
        self.landing = landing
        self.condition, self.mask = condition, mask
        self.dtype, device = condition.dtype, condition.device
        # Per window: frame indices, blend weight, and the fixed condition and mask slices (cut once).
        self.parts = [
            (index, weight.to(device).view(1, 1, -1, 1, 1), condition[:, :, index], mask[:, :, index])
            for index, weight in ((torch.tensor(w, device=device), wt)
                                  for w, wt in zip(windows, window_weights(windows, condition.shape[2])))
        ]
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, latent: torch.Tensor, sigma: float) -> torch.Tensor:
        timestep = torch.full((latent.shape[0],), sigma * 1000.0, device=latent.device, dtype=self.dtype)
        extra = {} if self.landing is None else {"timestep_r": torch.full_like(timestep, self.landing[sigma] * 1000.0)}
        if len(self.parts) == 1:
            model_input = self.adapter.pack_input(latent.to(self.dtype), self.condition, self.mask)
            return self._guided(model_input, timestep, extra, 0)
        blended = torch.zeros_like(latent)
        for window, (index, weight, window_condition, window_mask) in enumerate(self.parts):
            window_input = self.adapter.pack_input(latent[:, :, index].to(self.dtype), window_condition, window_mask)
            blended.index_add_(2, index, weight * self._guided(window_input, timestep, extra, window))
        return blended

    def _guided(self, model_input: torch.Tensor, timestep: torch.Tensor, extra: dict[str, torch.Tensor],
                window: int) -> torch.Tensor:
        predictions = []
        for branch, text in enumerate(self.texts):
            with self.cache.context(f"branch{branch}-window{window}"):
                velocity = self.adapter.predict_velocity(self.transformer, model_input, timestep, {**text, **extra})
            predictions.append(velocity.float())
            self.done += 1
            report(self.progress, self.done, self.total)
        if len(predictions) == 1:
            return predictions[0]
        return predictions[1] + self.cfg * (predictions[0] - predictions[1])


def sample(
    model: DreamActorModel,
    positive: Any,
    condition: torch.Tensor,
    mask: torch.Tensor,
    *,
    negative: Any = None,
    seed: int = 0,
    steps: int | None = None,
    cfg: float | None = None,
    shift: float | None = None,
    solver: str = "euler",
    denoise: float = 1.0,
    init_latent: torch.Tensor | None = None,
    window_frames: int = 0,
    window_overlap: int = 2,
    empty_regions: str = "encoded_black",
    cache_threshold: float = 0.0,
    progress: ProgressHook | None = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Denoise a canvas; returns the latent [B, C, T, H, W] (float32) for the VAE to decode.

    condition: the canvas latent (normalised, from ``models.vae.encode_video``); mask: the canvas mask
    packed to latent resolution ([B, mask channels, T, H, W]). ``progress`` is called after every
    transformer forward (it may raise to interrupt); ``on_step(step, x0)`` after every step with
    the current clean-latent estimate (for previews). ``empty_regions``: see ``EMPTY_REGIONS``.
    LoRAs on ``model`` are applied for the run and removed on the way out, also on error or interrupt.
    ``steps``/``cfg``/``shift`` None: the model release's defaults (``models.variants``).
    ``cache_threshold``: 0 runs every forward whole; above 0 the step cache skips forwards whose first
    block changed less than that (relative), state reset for every run.
    """
    variant = variants.model_variant(model)
    steps, cfg, shift = variants.resolve(variant, steps, cfg, shift)
    _check_inputs(model, condition, mask, steps, solver, denoise, init_latent, cfg, negative, empty_regions)
    cache = StepCache(model.transformer, cache_threshold)
    adapter, transformer = model.adapter, model.transformer
    device, dtype = memory.compute_device(transformer), next(transformer.parameters()).dtype
    sigmas = sigma_schedule(steps, shift, denoise)
    generator = torch.Generator("cpu").manual_seed(int(seed))
    noise = torch.randn(condition.shape, generator=generator, dtype=torch.float32).to(device)
    x = noise if init_latent is None or denoise >= 1.0 else noised(init_latent.to(device, torch.float32), noise, sigmas[0])
    condition = condition.to(device, dtype)
    mask = mask.to(device, dtype)
    if empty_regions == "zero_latent":
        condition = condition * (mask.amax(dim=1, keepdim=True) > 0).to(dtype)
    batch = condition.shape[0]
    texts = [adapter.prepare_conditioning(transformer, conditioning_kwargs(c), batch, device, dtype)
             for c in ([positive, negative] if cfg != 1.0 else [positive])]
    windows = temporal_windows(condition.shape[2], window_frames, window_overlap)
    total = len(texts) * len(windows) * forwards_per_run(solver, steps)
    landing = dict(zip(sigmas[:-1], sigmas[1:])) if variant.meanflow else None
    velocity = GuidedVelocity(model, texts, cfg, condition, mask, windows, progress, total, cache, landing)
    stepper = make_solver(solver)
    with torch.inference_mode(), memory.resident(transformer, "transformer"), lora_patches(model), cache:
        for step, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
            v = velocity(x, s)
            if on_step is not None:
                on_step(step, x - s * v)
            x = stepper.step(x, v, s, s_next, velocity)
    return x
