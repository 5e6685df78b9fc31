"""Where a LoRA training step's time goes, measured side by side in one run on the tiny
HunyuanVideo 1.5 (CPU) with a real dancer clip.

Prints the time of one step of ``train()`` (from the difference of a short and a longer run, so
model loading and pose extraction cancel out) next to its parts measured alone on the same models
and clips: drawing the sample (window, skeletons), encoding its two canvases with the VAE, the reference's
SigLIP embedding, and the transformer's forward and backward with the LoRA. The ratio step / sum of parts is the training
loop's own overhead (accelerate, optimizer, logging; target <= 1.10x). On the tiny models the VAE
dominates; at real size the transformer does (about 25x the VAE's FLOPs at 480p).

Beside it, a step of ``train()`` on the latent cache (``cache_latents``: examples and reference
embeddings read from disk, measured the same way after a run that filled the cache) against the
transformer's forward and backward alone: what is left of a step once nothing is encoded
(target <= 1.2x).

    .venv/bin/python bench/train.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import torch  # noqa: E402
from train_fixtures import tiny_config, tiny_model_paths, video_folder  # noqa: E402

from dreamactor_core.conditioning.encoder_files import file_identity  # noqa: E402
from dreamactor_core.conditioning.image_encoder import load_image_encoder  # noqa: E402
from dreamactor_core.models.loading import load_transformer, load_vae  # noqa: E402
from dreamactor_core.train.loop import _generator, train  # noqa: E402
from dreamactor_core.train.lora_peft import add_lora  # noqa: E402
from dreamactor_core.train.objective import draw_noise_level, encode_example, flow_matching_loss  # noqa: E402
from dreamactor_core.train.stages import pose_stage  # noqa: E402
from dreamactor_core.train.text_cache import TextEmbeddings  # noqa: E402

SHORT, LONG, REPEATS = 2, 10, 8
CACHED_VARIANTS = 4  # latent-cache variants of the clip
QUIET = lambda message: None  # noqa: E731


def _timed(function, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="dreamactor-bench-train-") as scratch:
        root = Path(scratch)
        paths = tiny_model_paths(root)
        config = tiny_config(max_steps=LONG)
        cache = root / "cache"
        stage = pose_stage(video_folder(root / "videos"), config, cache, QUIET)
        run = lambda steps, name, **more: train(stage, paths, tiny_config(max_steps=steps, **more),  # noqa: E731
                                                root / name, cache_dir=cache, log=QUIET)

        def step_time(**more) -> float:
            """One step of train(): a short and a long run's difference (loading cancels out)."""
            run(1, "warm.safetensors", **more)  # text, pose (and latent) caches filled
            start = time.perf_counter()
            run(SHORT, "short.safetensors", **more)
            short = time.perf_counter() - start
            start = time.perf_counter()
            run(LONG, "long.safetensors", **more)
            return (time.perf_counter() - start - short) / (LONG - SHORT)

        step = step_time()

        model = load_transformer(paths.transformer)
        adapter, transformer = model.adapter, model.transformer
        targets = adapter.visual_ffn_modules(transformer)
        add_lora(transformer, targets, config.rank, config.lora_alpha(), config.seed)
        transformer.train()
        vae = load_vae(paths.vae)
        temporal = adapter.temporal_compression
        rngs = iter([_generator(config, s, 0) for s in range(10 * REPEATS)])
        samples = [stage.make_sample(stage.items[0], next(rngs), config, temporal) for _ in range(REPEATS)]
        draw = _timed(lambda: stage.make_sample(stage.items[0], next(rngs), config, temporal))
        encode = _timed(lambda: encode_example(samples[0], vae, config))
        example = encode_example(samples[0], vae, config)
        # The conditioning a training step uses: the cached prompt embedding with the reference's SigLIP one.
        image_encoder = load_image_encoder(paths.image_encoder)
        prompt = TextEmbeddings(cache, file_identity(Path(paths.text_encoder))).get(samples[0].prompt)
        positive = prompt.with_image_embeds(image_encoder.encode(samples[0].reference))
        text = adapter.prepare_conditioning(transformer, positive.tensors, 1, torch.device("cpu"), torch.float32)
        generator = torch.Generator().manual_seed(0)
        level = draw_noise_level(generator, config, adapter)
        noise = torch.randn(example.clean.shape, generator=generator)

        def forward_backward() -> None:
            flow_matching_loss(transformer, adapter, example, text, level, noise).backward()
            transformer.zero_grad(set_to_none=True)

        learn = _timed(forward_backward)
        # The cached step between two measurements of the bare forward+backward (the machine's load drifts).
        cached_step = step_time(cache_latents=CACHED_VARIANTS)
        learn_around = (learn + _timed(forward_backward)) / 2
        references = iter([sample.reference for sample in samples[1:]])  # each new: the encoder caches repeats
        embed = _timed(lambda: image_encoder.encode(next(references)), REPEATS - 1)
        parts = draw + encode + embed + learn
        frames = samples[0].driving.shape[0]
        print(f"tiny HunyuanVideo 1.5, {config.width}x{config.height} panels, {frames}-frame clips, rank {config.rank}, "
              f"CPU, {torch.get_num_threads()} threads")
        print(f"  train() step                {step * 1000:8.1f} ms")
        print(f"  sample (window, skeletons)  {draw * 1000:8.1f} ms  ({draw / parts:5.1%})")
        print(f"  VAE encode of 2 canvases    {encode * 1000:8.1f} ms  ({encode / parts:5.1%})")
        print(f"  SigLIP reference embedding  {embed * 1000:8.1f} ms  ({embed / parts:5.1%})")
        print(f"  transformer fwd + bwd       {learn * 1000:8.1f} ms  ({learn / parts:5.1%})")
        print(f"  loop overhead: step / parts = {step / parts:.2f}x (target <= 1.10x)")
        print(f"  train() step on the latent cache {cached_step * 1000:8.1f} ms vs transformer fwd + bwd alone "
              f"{learn_around * 1000:8.1f} ms (measured before and after): {cached_step / learn_around:.2f}x "
              "(target <= 1.2x)")


if __name__ == "__main__":
    main()
