"""Video VAE encode/decode in temporal and spatial tiles, so working memory does not grow with length.

Time is cut into overlapping chunks of pixel frames (a multiple of the VAE's temporal factor, plus
the causal first frame); each chunk is encoded or decoded on its own, with the VAE's own spatial
tiling inside, and written straight into the output with a linear cross-fade over the overlap.
Only one chunk is ever on the device; the output (latent, or video frames on the CPU) is the only
thing that grows. The progress hook is called once per tile (every encoder/decoder call).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from ..errors import DreamActorError
from ..progress import ProgressHook, report
from . import memory
from .loading import DreamActorVAE


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
    factor: the canvas builder prepares frames that way.
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
    starts = _chunk_starts(count, tile_frames, tile_frames - tile_overlap_frames)
    total = len(starts) * _spatial_tiles(height, width, tile_size)
    out = torch.zeros(1, adapter.latent_channels, (count - 1) // ratio + 1, height // spatial, width // spatial)
    with torch.inference_mode(), memory.resident(vae, "VAE"), _tiling(model, tile_size, progress, total, "encoder"):
        for start in starts:
            chunk = frames[start:start + tile_frames + 1].to(device, dtype)
            pixels = chunk.permute(3, 0, 1, 2).unsqueeze(0) * 2 - 1
            latent = vae.encode(pixels).latent_dist.mode().float()
            if start > 0:
                latent = latent[:, :, 1:]  # the chunk's causal first frame belongs to the previous chunk
            _blend_into(out, start // ratio + (start > 0), latent.cpu(), tile_overlap_frames // ratio if start else 0, 2)
    return adapter.normalize_latent(vae, out)


def decode_latent(model: DreamActorVAE, latent: torch.Tensor, *, tile_frames: int = 16, tile_overlap_frames: int = 4,
                  tile_size: int = 256, progress: ProgressHook | None = None) -> torch.Tensor:
    """Normalised latent [1, C, T', H', W'] -> frames [T, H, W, 3] in 0..1 (float32, CPU)."""
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
    tile, stride = tile_frames // ratio, (tile_frames - tile_overlap_frames) // ratio
    starts = _chunk_starts(latent_frames, tile, stride)
    total = len(starts) * _spatial_tiles(lat_h, lat_w, tile_size // spatial if tile_size else 0)
    out = torch.zeros((latent_frames - 1) * ratio + 1, lat_h * spatial, lat_w * spatial, 3)
    latent = adapter.denormalize_latent(vae, latent.float())
    with torch.inference_mode(), memory.resident(vae, "VAE"), _tiling(model, tile_size, progress, total, "decoder"):
        for start in starts:
            pixels = vae.decode(latent[:, :, start:start + tile + 1].to(device, dtype)).sample.float()
            video = ((pixels[0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1)
            if start > 0:
                video = video[1:]
            _blend_into(out, start * ratio + (start > 0), video.cpu(), tile_overlap_frames if start else 0, 0)
    return out
