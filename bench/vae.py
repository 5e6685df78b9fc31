"""VAE temporal chunking with the causal state carried, measured side by side on the tiny HunyuanVideo 1.5 VAE (CPU).

Prints, for encode and for decode (16-frame chunks, no spatial tiling, 64 x 64 pixels):
 1. peak working memory (peak live tensor bytes minus the returned tensor) at 4x the frames over 1x
    (17 -> 65 pixel frames), the pack's carried chunks (target <= 1.2x) next to diffusers' whole-clip call;
 2. the largest difference from the whole-clip result, relative to its largest value: the pack's
    carried chunks (exact up to float32 summation order) and chunks that restart the VAE (what the
    pack did before; random weights exaggerate it).
Memory is counted with bench/sampler.py's dispatch-mode meter (every new storage until collected).

    .venv/bin/python bench/vae.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import torch  # noqa: E402
from sampler import peak_bytes  # noqa: E402

from dreamactor_core.models import vae as video_vae  # noqa: E402
from dreamactor_core.models.backbones import get_adapter  # noqa: E402
from dreamactor_core.models.loading import DreamActorVAE  # noqa: E402
from dreamactor_core.testing.tiny_models import build_tiny_vae  # noqa: E402

SIZE, TILE = 64, 16


def restarted(function, video: torch.Tensor, tile: int) -> torch.Tensor:
    """Chunks of ``tile`` (after the causal frame) run independently, each with the frame before it."""
    parts = [function(video[:, :, : 1 + tile])]
    for begin in range(1 + tile, video.shape[2], tile):
        parts.append(function(video[:, :, begin - 1: begin + tile])[:, :, 1:])
    return torch.cat(parts, dim=2)


def main() -> None:
    torch.set_num_threads(2)
    vae = build_tiny_vae()
    model = DreamActorVAE(vae, get_adapter("hunyuan_video_15"), "bench")
    scale = vae.config.scaling_factor
    generator = torch.Generator().manual_seed(0)

    def encode_pack(frames: torch.Tensor) -> torch.Tensor:
        return video_vae.encode_video(model, frames, tile_frames=TILE, tile_size=0)

    def encode_whole(frames: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return vae.encode(frames.permute(3, 0, 1, 2).unsqueeze(0) * 2 - 1).latent_dist.mode() * scale

    def decode_pack(latent: torch.Tensor) -> torch.Tensor:
        return video_vae.decode_latent(model, latent, tile_frames=TILE, tile_size=0)

    def decode_whole(latent: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return ((vae.decode(latent / scale).sample[0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1)

    def working(function, data) -> int:
        added, result = peak_bytes(lambda: function(data))
        return added - result.nbytes

    frames = {n: torch.rand(n, SIZE, SIZE, 3, generator=generator) for n in (17, 65)}
    latents = {n: torch.randn(1, 32, (n - 1) // 4 + 1, SIZE // 16, SIZE // 16, generator=generator) for n in (17, 65)}
    for label, pack, whole, inputs in (("encode", encode_pack, encode_whole, frames),
                                       ("decode", decode_pack, decode_whole, latents)):
        for name, function, target in (("pack, carried chunks", pack, "; target <= 1.2x"), ("diffusers, whole clip", whole, "")):
            one, four = working(function, inputs[17]), working(function, inputs[65])
            print(f"1. {label} working memory at 4x frames / 1x ({name}, 17 -> 65 frames at {SIZE}x{SIZE}): "
                  f"{four / max(one, 1):.2f}x ({one / 2**20:.1f} -> {four / 2**20:.1f} MiB){target}")
    reference = encode_whole(frames[65])
    with torch.inference_mode():
        restart = restarted(lambda x: vae.encode(x).latent_dist.mode() * scale,
                            frames[65].permute(3, 0, 1, 2).unsqueeze(0) * 2 - 1, TILE)
    for name, result in (("pack, carried chunks", encode_pack(frames[65])), ("restarted chunks", restart)):
        print(f"2. encode, 65 frames, max |chunked - whole| / max |whole| ({name}): "
              f"{float((result - reference).abs().max() / reference.abs().max()):.2e}")
    reference = decode_whole(latents[65])
    with torch.inference_mode():
        restart = restarted(lambda z: vae.decode(z / scale).sample, latents[65], TILE // 4)
    restart = ((restart[0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1)
    for name, result in (("pack, carried chunks", decode_pack(latents[65])), ("restarted chunks", restart)):
        print(f"2. decode, 65 frames, max |chunked - whole| / max |whole| ({name}): "
              f"{float((result - reference).abs().max() / reference.abs().max()):.2e}")


if __name__ == "__main__":
    main()
