"""Video VAE encode/decode in temporal and spatial tiles, so working memory does not grow with length.

Time is cut into chunks of pixel frames (a multiple of the VAE's temporal factor, plus the causal
first frame in the first chunk), each encoded or decoded with the VAE's own spatial tiling (and
its overlap blending) inside and written straight into the output. Only one chunk is ever on the
device; the output (latent, or video frames on the CPU) is the only thing that grows.

HunyuanVideo 1.5's VAE is chunked exactly: each chunk continues the causal state of the one
before (``vae_carry.py``), so the result equals encoding or decoding the whole clip at once. Other
VAEs restart at every chunk, with overlapping chunks cross-faded linearly: an approximation.
The progress hook is called once per tile (every encoder/decoder call).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator

import torch

from ..errors import DreamActorError
from ..progress import ProgressHook, report
from . import memory
from .loading import DreamActorVAE
from .vae_carry import carry_causal_state, supports_carry


@contextmanager
def _tiling(model: DreamActorVAE, tile_size: int, progress: ProgressHook | None, total: int,
            part: str) -> Iterator[None]:
    """Spatial tiling of the diffusers VAE plus a per-tile progress count, restored afterwards."""
    vae = model.vae
    saved = {name: value for name, value in vars(vae).items() if name == "use_tiling" or name.startswith("tile_")}
    count = 0

    def tick(*_):
        nonlocal count
        count += 1
        report(progress, min(count, total), total)

    handle = getattr(vae, part).register_forward_hook(tick)
    try:
        if tile_size > 0 and hasattr(vae, "enable_tiling"):
            vae.enable_tiling(**model.adapter.spatial_tiling_kwargs(tile_size))
        yield
    finally:
        handle.remove()
        for name, value in saved.items():
            setattr(vae, name, value)


def _spatial_tiles(height: int, width: int, tile: int) -> int:
    if tile <= 0 or (height <= tile and width <= tile):
        return 1
    stride = int(tile * 0.75)
    return len(range(0, height, stride)) * len(range(0, width, stride))


def _chunk_starts(length: int, tile: int, stride: int) -> list[int]:
    """Starts of chunks [start, start + tile] (inclusive end, the causal frame) covering 0..length-1."""
    starts = [0]
    while starts[-1] + tile < length - 1:
        starts.append(starts[-1] + stride)
    return starts


def _temporal_chunks(vae: torch.nn.Module, length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """[begin, end) of each chunk along time. Carried (exact): the first chunk holds the causal
    frame plus ``tile``, the rest ``tile`` each. Restarted: every chunk repeats the frame before it
    (its causal first frame, dropped from the output) and overlaps the previous by ``overlap``."""
    if supports_carry(vae):
        return [(0, min(1 + tile, length))] + [(begin, min(begin + tile, length)) for begin in range(1 + tile, length, tile)]
    return [(start, start + tile + 1) for start in _chunk_starts(length, tile, tile - overlap)]


@contextmanager
def _chunk_state(vae: torch.nn.Module) -> Iterator[Callable[[], None]]:
    """Yields the call that ends a chunk: the carry's advance, or nothing for VAEs that restart."""
    if not supports_carry(vae):
        with nullcontext():
            yield lambda: None
        return
    with carry_causal_state(vae) as carry:
        yield carry.next_chunk


def _blend_into(out: torch.Tensor, start: int, chunk: torch.Tensor, overlap: int, dim: int) -> None:
    """Write ``chunk`` at ``start`` along ``dim``, cross-fading its first ``overlap`` entries."""
    overlap = min(overlap, chunk.shape[dim], out.shape[dim] - start)
    chunk = chunk[(slice(None),) * dim + (slice(0, out.shape[dim] - start),)]
    if overlap > 0:
        shape = [1] * chunk.ndim
        shape[dim] = overlap
        ramp = ((torch.arange(overlap, dtype=chunk.dtype) + 1) / (overlap + 1)).view(shape).to(chunk.device)
        head = out.narrow(dim, start, overlap)
        head.copy_(head.to(chunk.device) * (1 - ramp) + chunk.narrow(dim, 0, overlap) * ramp)
    out.narrow(dim, start + overlap, chunk.shape[dim] - overlap).copy_(
        chunk.narrow(dim, overlap, chunk.shape[dim] - overlap))


def _check_tiles(ratio: int, tile_frames: int, overlap_frames: int) -> None:
    if tile_frames % ratio or overlap_frames % ratio or not 0 <= overlap_frames < tile_frames:
        raise DreamActorError(f"tile_frames/tile_overlap_frames: expected multiples of {ratio} with overlap "
                              f"< tile, got {tile_frames}/{overlap_frames}")


def encode_video(model: DreamActorVAE, frames: torch.Tensor, *, tile_frames: int = 16, tile_overlap_frames: int = 4,
                 tile_size: int = 256, progress: ProgressHook | None = None) -> torch.Tensor:
    """Frames [T, H, W, 3] in 0..1 -> normalised latent [1, C, T', H', W'] (float32, CPU).

    T must be 4k + 1 (one causal first frame plus whole groups) and H, W multiples of the spatial
    factor: the canvas builder prepares frames that way. ``tile_frames`` pixel frames go through
    the VAE at a time; ``tile_overlap_frames`` is the cross-fade between restarted chunks, for VAEs
    chunked by restarting (HunyuanVideo 1.5's exact chunks need none and ignore it).
    """
    vae, adapter = model.vae, model.adapter
    ratio, spatial = adapter.temporal_compression, adapter.spatial_compression
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise DreamActorError(f"frames: expected an IMAGE batch [T, H, W, 3], got shape {list(frames.shape)}")
    count, height, width = frames.shape[:3]
    if (count - 1) % ratio or height % spatial or width % spatial:
        raise DreamActorError(f"frames: expected {ratio}k+1 frames of a size divisible by {spatial}, "
                              f"got {count} frames of {height}x{width}")
    _check_tiles(ratio, tile_frames, tile_overlap_frames)
    device, dtype = memory.compute_device(vae), next(vae.parameters()).dtype
    chunks = _temporal_chunks(vae, count, tile_frames, tile_overlap_frames)
    restart = not supports_carry(vae)
    total = len(chunks) * _spatial_tiles(height, width, tile_size)
    out = torch.zeros(1, adapter.latent_channels, (count - 1) // ratio + 1, height // spatial, width // spatial)
    with (torch.inference_mode(), memory.resident(vae, "VAE"), _tiling(model, tile_size, progress, total, "encoder"),
          _chunk_state(vae) as end_chunk):
        for begin, end in chunks:
            pixels = frames[begin:end].to(device, dtype).permute(3, 0, 1, 2).unsqueeze(0) * 2 - 1
            latent = vae.encode(pixels).latent_dist.mode().float()
            end_chunk()
            if restart and begin > 0:
                latent = latent[:, :, 1:]  # the chunk's causal first frame belongs to the previous chunk
            overlap = tile_overlap_frames // ratio if restart and begin else 0
            _blend_into(out, begin // ratio + (begin > 0), latent.cpu(), overlap, 2)
    return adapter.normalize_latent(vae, out)


def decode_latent(model: DreamActorVAE, latent: torch.Tensor, *, tile_frames: int = 16, tile_overlap_frames: int = 4,
                  tile_size: int = 256, progress: ProgressHook | None = None) -> torch.Tensor:
    """Normalised latent [1, C, T', H', W'] -> frames [T, H, W, 3] in 0..1 (float32, CPU); tiles as
    ``encode_video``'s, in pixel frames."""
    vae, adapter = model.vae, model.adapter
    ratio, spatial = adapter.temporal_compression, adapter.spatial_compression
    if latent.ndim == 4:
        latent = latent.unsqueeze(0)
    if latent.ndim != 5 or latent.shape[1] != adapter.latent_channels:
        raise DreamActorError(f"latent: expected [1, {adapter.latent_channels}, T, H, W] for the "
                              f"{adapter.display_name} VAE, got shape {list(latent.shape)}")
    _check_tiles(ratio, tile_frames, tile_overlap_frames)
    device, dtype = memory.compute_device(vae), next(vae.parameters()).dtype
    latent_frames, lat_h, lat_w = latent.shape[2:]
    chunks = _temporal_chunks(vae, latent_frames, tile_frames // ratio, tile_overlap_frames // ratio)
    restart = not supports_carry(vae)
    total = len(chunks) * _spatial_tiles(lat_h, lat_w, tile_size // spatial if tile_size else 0)
    out = torch.zeros((latent_frames - 1) * ratio + 1, lat_h * spatial, lat_w * spatial, 3)
    latent = adapter.denormalize_latent(vae, latent.float())
    with (torch.inference_mode(), memory.resident(vae, "VAE"), _tiling(model, tile_size, progress, total, "decoder"),
          _chunk_state(vae) as end_chunk):
        for begin, end in chunks:
            pixels = vae.decode(latent[:, :, begin:end].to(device, dtype)).sample.float()
            end_chunk()
            video = ((pixels[0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1)
            if restart and begin > 0:
                video, begin = video[1:], begin + 1  # the causal first frame belongs to the previous chunk
            overlap = tile_overlap_frames if restart and begin else 0
            _blend_into(out, max(begin - 1, 0) * ratio + (begin > 0), video.cpu(), overlap, 0)
    return out
