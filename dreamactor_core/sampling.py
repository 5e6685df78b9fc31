"""Flow-matching sampling of the DreamActor canvas: Euler, Heun and DPM++ 2M, with text CFG.

The transformer sees [noisy latent | canvas latent | canvas mask] on the channel axis (the adapter
packs them) and predicts the flow velocity v = noise - x0, with x_t = (1 - s) x0 + s noise. The
condition never changes during sampling; only the noisy latent moves from s = 1 (or the denoise
start) to s = 0. Noise comes from a CPU generator, so a seed gives the same video on any device.

Long videos: ``window_frames`` splits the latent frames into overlapping temporal windows, each
prefixed with latent frame 0 (the reference frame of the canvas, so every window sees the identity);
window velocities are blended with linear ramps over the overlaps at every step.
"""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from typing import Any, Callable, Mapping

import torch

from .errors import DreamActorError
from .lora import lora_patches
from .model_loading import DreamActorModel
from .progress import ProgressHook, report

SOLVERS = ("euler", "heun", "dpmpp_2m")
# How the canvas's empty regions (mask 0: the reference half after frame 0) reach the model:
# "encoded_black" keeps the VAE encoding of black pixels (the paper's canvas); "zero_latent" zeroes
# them in latent space, as diffusers' HunyuanVideo image-to-video pipelines do for missing frames.
EMPTY_REGIONS = ("encoded_black", "zero_latent")


def sigma_schedule(steps: int, shift: float, denoise: float = 1.0) -> list[float]:
    """``steps + 1`` noise levels from the start level down to 0, time-shifted.

    denoise < 1 runs the last ``steps`` of a ``steps / denoise`` schedule (ComfyUI's convention).
    shift > 1 spends more steps at high noise: s' = shift s / (1 + (shift - 1) s).
    """
    total = steps if denoise >= 1.0 else max(steps, int(round(steps / denoise)))
    raw = [1.0 - i / total for i in range(total + 1)][total - steps:]
    return [shift * s / (1.0 + (shift - 1.0) * s) for s in raw]


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


def temporal_windows(frames: int, window: int, overlap: int) -> list[list[int]]:
    """Latent frame indices of each window; each starts with frame 0 (the reference)."""
    if window <= 0 or frames <= window:
        return [list(range(frames))]
    if not 0 <= overlap < window - 1:
        raise DreamActorError(f"window_overlap: expected 0..{window - 2} latent frames, got {overlap}")
    body, stride = window - 1, window - 1 - overlap
    starts = list(range(1, frames - body + 1, stride))
    if starts[-1] + body < frames:
        starts.append(frames - body)
    return [[0, *range(start, start + body)] for start in starts]


def _window_weights(windows: list[list[int]], frames: int) -> list[torch.Tensor]:
    """Per-frame blend weights: linear ramps where windows overlap, normalised to sum to 1."""
    raw = []
    for index, window in enumerate(windows):
        weight = torch.ones(len(window))
        body = window[1:]
        if index > 0:
            shared = len(set(body) & set(windows[index - 1][1:]))
            weight[1:1 + shared] = torch.arange(1, shared + 1) / (shared + 1)
        if index < len(windows) - 1:
            shared = len(set(body) & set(windows[index + 1][1:]))
            if shared:
                weight[len(window) - shared:] = torch.arange(shared, 0, -1) / (shared + 1)
        raw.append(weight)
    total = torch.zeros(frames)
    for window, weight in zip(windows, raw):
        total[window] += weight
    return [weight / total[window] for window, weight in zip(windows, raw)]


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


def sample(
    model: DreamActorModel,
    positive: Any,
    condition: torch.Tensor,
    mask: torch.Tensor,
    *,
    negative: Any = None,
    seed: int = 0,
    steps: int = 20,
    cfg: float = 6.0,
    shift: float | None = None,
    solver: str = "euler",
    denoise: float = 1.0,
    init_latent: torch.Tensor | None = None,
    window_frames: int = 0,
    window_overlap: int = 2,
    empty_regions: str = "encoded_black",
    progress: ProgressHook | None = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Denoise a canvas; returns the latent [B, C, T, H, W] (float32) for the VAE to decode.

    condition: the canvas latent (normalised, from ``vae.encode_video``); mask: the canvas mask
    packed to latent resolution ([B, mask channels, T, H, W]). ``progress`` is called after every
    transformer forward (it may raise to interrupt); ``on_step(step, x0)`` after every step with
    the current clean-latent estimate (for previews). ``empty_regions``: see ``EMPTY_REGIONS``.
    LoRAs on ``model`` are applied for the run and removed on the way out, also on error or interrupt.
    """
    _check_inputs(model, condition, mask, steps, solver, denoise, init_latent, cfg, negative, empty_regions)
    adapter, transformer = model.adapter, model.transformer
    device, dtype = next(transformer.parameters()).device, next(transformer.parameters()).dtype
    sigmas = sigma_schedule(steps, adapter.default_shift if shift is None else shift, denoise)
    generator = torch.Generator("cpu").manual_seed(int(seed))
    noise = torch.randn(condition.shape, generator=generator, dtype=torch.float32).to(device)
    x = noise if init_latent is None or denoise >= 1.0 else (
        sigmas[0] * noise + (1.0 - sigmas[0]) * init_latent.to(device, torch.float32))
    condition = condition.to(device, dtype)
    mask = mask.to(device, dtype)
    if empty_regions == "zero_latent":
        condition = condition * (mask.amax(dim=1, keepdim=True) > 0).to(dtype)
    guided = cfg != 1.0
    batch = condition.shape[0]
    texts = [adapter.prepare_conditioning(transformer, conditioning_kwargs(c), batch, device, dtype)
             for c in ([positive, negative] if guided else [positive])]
    windows = temporal_windows(condition.shape[2], window_frames, window_overlap)
    weights = _window_weights(windows, condition.shape[2])
    # Per window: frame indices, blend weight, and the fixed condition and mask slices (cut once).
    parts = [
        (index, weight.to(device).view(1, 1, -1, 1, 1), condition[:, :, index], mask[:, :, index])
        for index, weight in ((torch.tensor(w, device=device), wt) for w, wt in zip(windows, weights))
    ]
    heun_extra = steps - 1 if solver == "heun" else 0  # Heun's last step (to s = 0) is an Euler step
    total = len(texts) * len(windows) * (steps + heun_extra)
    done = 0

    def guided_velocity(model_input: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        nonlocal done
        predictions = []
        for text in texts:
            predictions.append(adapter.predict_velocity(transformer, model_input, timestep, text).float())
            done += 1
            report(progress, done, total)
        return predictions[0] if not guided else predictions[1] + cfg * (predictions[0] - predictions[1])

    def velocity(latent: torch.Tensor, sigma: float) -> torch.Tensor:
        timestep = torch.full((batch,), sigma * 1000.0, device=device, dtype=dtype)
        if len(parts) == 1:
            return guided_velocity(adapter.pack_input(latent.to(dtype), condition, mask), timestep)
        blended = torch.zeros_like(latent)
        for index, weight, window_condition, window_mask in parts:
            window_input = adapter.pack_input(latent[:, :, index].to(dtype), window_condition, window_mask)
            blended.index_add_(2, index, weight * guided_velocity(window_input, timestep))
        return blended

    with torch.inference_mode(), lora_patches(model):
        previous_x0: torch.Tensor | None = None
        previous_h: float | None = None
        for step, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
            v = velocity(x, s)
            if on_step is not None:
                on_step(step, x - s * v)
            if solver == "euler" or (solver == "heun" and s_next == 0.0):
                x = x + (s_next - s) * v
            elif solver == "heun":
                x_euler = x + (s_next - s) * v
                x = x + (s_next - s) * 0.5 * (v + velocity(x_euler, s_next))
            else:
                x0 = x - s * v
                x, previous_h = _dpmpp_2m_step(x, x0, previous_x0, previous_h, s, s_next)
                previous_x0 = x0
    return x


def _lambda(s: float) -> float:
    """log-SNR of flow matching: log((1 - s) / s)."""
    if s <= 0.0:
        return math.inf
    if s >= 1.0:
        return -math.inf
    return math.log(1.0 - s) - math.log(s)


def _dpmpp_2m_step(x: torch.Tensor, x0: torch.Tensor, previous_x0: torch.Tensor | None,
                   previous_h: float | None, s: float, s_next: float) -> tuple[torch.Tensor, float]:
    """One DPM-Solver++(2M) step in flow-matching form (alpha = 1 - s, sigma = s, data prediction).

    First order on the first step (no history) and the last (s_next = 0 returns x0).
    """
    if s_next == 0.0:
        return x0, math.inf
    h = _lambda(s_next) - _lambda(s)
    denoised = x0
    if previous_x0 is not None and previous_h is not None and math.isfinite(previous_h):
        r = previous_h / h
        denoised = x0 + (x0 - previous_x0) / (2.0 * r)
    x_next = (s_next / s) * x - (1.0 - s_next) * math.expm1(-h) * denoised
    return x_next, h
