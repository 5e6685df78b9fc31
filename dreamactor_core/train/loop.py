"""The training loop both stages share, on accelerate: one process or many (DDP by default, FSDP
with ``fsdp``), bf16 autocast on GPUs, gradient accumulation up to ``batch_size`` clips, periodic
resumable checkpoints and LoRA files, and periodic sample renders.

Order of work, so a bad input fails before anything is written or loaded for long: the caller
prepares the clips (``data``), then prompts are encoded once (``text_cache``; the text encoder is
freed before the transformer loads), then the image encoder and the warm-start LoRA are loaded and
checked, and only then does training write anything. ``--out`` is replaced only by a complete file at
the end.

Reference image embedding: with ``ModelFiles.image_encoder`` (the default with --models-dir, and
with --tiny) every forward, the sample render's included, gets the SigLIP embedding of its clip's
reference frame, joined by ``image_encoder.with_reference_embedding`` exactly as ``pipeline.animate``
and the workflows' Reference Image Embed node join it; without one the backbone's zero embedding is
used, said once in the log and recorded in the LoRA's metadata (``image_embeds``). Without
``cache_latents`` the encoder encodes each clip's reference as it is drawn (references are random
frames of random windows, rarely drawn twice); with it, each cached variant keeps its reference's
embedding beside its latents (``latent_cache``), encoded once.

Memory modes (fp8 base weights, block swap, activation offload, 8-bit AdamW): ``memory.py``.

Determinism: step ``n``'s clips, augmentations, noise and noise levels come from generators seeded
with (seed, n, process index x batch size + clip index), so N processes of batch b draw exactly the
clips one process of batch N x b draws (and reach the same weights: gradients are averaged either
way), and a resumed run draws exactly what an uninterrupted one
would have; the checkpoint restores the LoRA, the optimizer, the scheduler, the RNGs and the step.
Clips of different lengths cannot share a tensor, so each process runs one clip at a time and
accumulates gradients over ``batch_size`` clips (effective batch: batch_size x processes).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..conditioning.encoder_files import file_identity
from ..conditioning.image_encoder import load_image_encoder, with_reference_embedding
from ..conditioning.text_encoder import load_text_encoder
from ..conditioning.types import Conditioning
from ..errors import DreamActorError
from ..models.loading import load_transformer, load_vae
from ..pipeline import ModelFiles
from .checkpointing import Progress, register_lora_hooks, resolve_resume, save_checkpoint
from .config import TrainConfig
from .data import Sample
from .latent_cache import LatentCache
from .lora_peft import add_lora, apply_warm_start, lora_metadata, lora_tensors, read_warm_start, save_lora
from .memory import FrozenBlockSwap, activation_context, make_optimizer
from .objective import Example, draw_noise_level, encode_example, flow_matching_loss
from .sample_scores import default_scorers, pose_extractor, write_scores
from .samples import render_sample
from .text_cache import TextEmbeddings

Log = Callable[[str], None]
HELD_CLIP = 2**31 - 1  # the generator stream of the sample render's held clip (never a step number)


@dataclass(frozen=True)
class StageData:
    """A stage's prepared clips and how to turn one into a ``Sample``."""

    name: str  # "pose" or "rgb": recorded in the LoRA's metadata
    items: Sequence[Any]
    make_sample: Callable[[Any, np.random.Generator, TrainConfig, int], Sample]
    prompts: list[str]


@dataclass(frozen=True)
class TrainResult:
    lora: Path
    step: int
    losses: list[float]  # the mean loss of each optimizer step run here (over clips and processes)


def run_folders(out: Path) -> tuple[Path, Path]:
    """(checkpoints, samples) folders that belong to the LoRA file ``out``."""
    return out.parent / f"{out.stem}_checkpoints", out.parent / f"{out.stem}_samples"


def run_report(out: Path) -> Path:
    """The report of the clips a run of ``out`` skipped (one JSON line each, as ``train bootstrap``'s)."""
    return out.parent / f"{out.stem}_report.jsonl"


def _accelerator(config: TrainConfig):
    from accelerate import Accelerator

    kwargs: dict[str, Any] = {}
    if config.fsdp:
        from accelerate.utils import FullyShardedDataParallelPlugin

        kwargs["fsdp_plugin"] = FullyShardedDataParallelPlugin(use_orig_params=True)
    gpu = torch.cuda.is_available()
    # cpu=True: without a GPU, processes started by accelerate launch / torchrun join over gloo
    # (accelerate treats a CPU run as distributed only when told it is a CPU run).
    return Accelerator(mixed_precision=config.mixed_precision if gpu else "no", cpu=not gpu, **kwargs)


def _weights_dtype(accelerator) -> torch.dtype:
    """The frozen weights' dtype: the autocast dtype on GPUs (halves their memory), else float32."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(accelerator.mixed_precision, torch.float32)


def _generator(config: TrainConfig, step: int, index: int) -> np.random.Generator:
    """The draws of step ``step``'s ``index``-th clip over all processes (process x batch_size + clip):
    two processes of batch 1 draw exactly the clips one process of batch 2 draws."""
    return np.random.default_rng([config.seed, step, index])


def train(stage: StageData, paths: ModelFiles, config: TrainConfig, out: str | Path, *, cache_dir: Path,
          init_lora: Path | None = None, resume: str | None = None, log: Log = print) -> TrainResult:
    """Train one stage's LoRA and write it to ``out``; returns the final step and the losses."""
    if not stage.items:
        raise DreamActorError(f"{stage.name} stage: no training clips")
    out = Path(out)
    checkpoint_root, samples_dir = run_folders(out)
    accelerator = _accelerator(config)
    main = accelerator.is_main_process
    say: Log = log if main else (lambda _: None)
    if config.fsdp and accelerator.distributed_type.value != "FSDP":
        # accelerate applies its FSDP plugin to GPU processes only; CPU processes get DDP.
        say(f"--fsdp: not sharding ({accelerator.distributed_type.value} run; accelerate shards on GPUs only), "
            "every process holds the whole backbone")
    # Multi-process CPU runs report "cpu:0", which safetensors refuses as a load device.
    device = torch.device("cpu") if accelerator.device.type == "cpu" else accelerator.device
    dtype = _weights_dtype(accelerator)
    texts = TextEmbeddings(cache_dir, file_identity(Path(paths.text_encoder)))
    with accelerator.main_process_first():
        texts.prepare([*stage.prompts, ""], lambda: load_text_encoder(paths.text_encoder, paths.glyph_encoder,
                                                                       dtype=dtype, device=device), say)
    image_encoder = None
    if paths.image_encoder is not None:
        image_encoder = load_image_encoder(paths.image_encoder, dtype=dtype, device=device)
        say(f"reference image embeddings: {Path(paths.image_encoder).name} (SigLIP), as at inference")
    else:
        say("no image encoder: training with zero reference image embeddings; inference that adds the reference's "
            "SigLIP embedding (--image-encoder, the Reference Image Embed node) will not match")
    image_embeds = "siglip" if image_encoder is not None else "none"
    model = load_transformer(paths.transformer, dtype=dtype, device="cpu" if config.block_swap else device,
                             fp8_weights=True if config.fp8_weights else None)
    adapter = model.adapter
    if adapter.name != config.backbone:
        raise DreamActorError(f"--transformer '{Path(paths.transformer).name}' is a {adapter.display_name} model, "
                              f"but the config trains backbone '{config.backbone}'")
    targets = adapter.visual_ffn_modules(model.transformer)
    warm = (read_warm_start(init_lora, model, targets, config.rank, image_embeds, say)
            if init_lora is not None else None)
    transformer = model.transformer
    add_lora(transformer, targets, config.rank, config.lora_alpha(), config.seed)
    if warm is not None:
        apply_warm_start(transformer, warm, config.rank, config.lora_alpha())
        say(f"warm start from {Path(init_lora).name}")
    if config.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    if config.block_swap:
        swap = FrozenBlockSwap(transformer, device)
        # The swapped weights are the same file on every process: DDP must neither broadcast nor bucket them.
        torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            transformer, swap.frozen_names(transformer))
    transformer.train()
    vae = load_vae(paths.vae, dtype=dtype, device=device)
    temporal = adapter.temporal_compression
    trainable = [p for p in transformer.parameters() if p.requires_grad]
    optimizer = make_optimizer(trainable, config)
    warmup = max(1, config.warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    # The scheduler stays unprepared: accelerate would step it once per process per call.
    ddp_model, optimizer = accelerator.prepare(transformer, optimizer)
    progress = Progress()
    accelerator.register_for_checkpointing(progress, scheduler)
    register_lora_hooks(accelerator)
    if resume is not None:
        folder = resolve_resume(resume, checkpoint_root)
        accelerator.load_state(str(folder))
        say(f"resumed from {folder} at step {progress.step}")
    say(f"{stage.name} stage: {len(stage.items)} clips, {sum(p.numel() for p in trainable):,} LoRA parameters on "
        f"{len(targets)} layers, {accelerator.num_processes} process(es) on {device}, precision "
        f"{accelerator.mixed_precision}, {config.max_steps - progress.step} steps to go")

    def conditioning(example: Example, negative_prompt: str | None = None) -> tuple[Conditioning, Conditioning | None]:
        """The example's prompt (and ``negative_prompt``'s) conditioning with its reference's embedding."""
        negative = texts.get(negative_prompt) if negative_prompt is not None else None
        if example.image_embeds is None:
            return with_reference_embedding(image_encoder, example.reference, texts.get(example.prompt), negative)
        positive = texts.get(example.prompt).with_image_embeds(example.image_embeds)  # from the latent cache
        return positive, (positive.unconditional_like(negative) if negative is not None else None)

    def forward_kwargs(example: Example) -> dict[str, torch.Tensor]:
        positive, _ = conditioning(example)
        return adapter.prepare_conditioning(transformer, positive.tensors, 1, device, dtype)

    def encoded(sample: Sample) -> Example:
        """The sample in latent space with its reference's embedding (what the latent cache keeps)."""
        example = encode_example(sample, vae, config)
        if image_encoder is None:
            return example
        return replace(example, image_embeds=image_encoder.encode(example.reference))

    latents, cached = None, []
    if config.cache_latents > 0:
        encoder_files = [paths.vae] + ([paths.image_encoder] if paths.image_encoder is not None else [])
        latents = LatentCache(cache_dir, config, "|".join([*(file_identity(Path(f)) for f in encoder_files), str(dtype)]))
        with accelerator.main_process_first():
            cached = latents.fill(list(stage.items), config.cache_latents,
                                  lambda item, rng: stage.make_sample(item, rng, config, temporal), encoded, say)

    held: tuple[Example, Sample] | None = None
    if main and config.sample_every > 0 and not config.fsdp:
        held_sample = stage.make_sample(stage.items[0], _generator(config, HELD_CLIP, 0), config, temporal)
        held = (encode_example(held_sample, vae, config), held_sample)
        scorers = default_scorers(stage.name)

    losses: list[float] = []
    while progress.step < config.max_steps:
        step_loss = 0.0
        for clip in range(config.batch_size):
            rng = _generator(config, progress.step, accelerator.process_index * config.batch_size + clip)
            if latents is not None:
                example = latents.read(cached[int(rng.integers(len(cached)))])
            else:
                item = stage.items[int(rng.integers(len(stage.items)))]
                example = encode_example(stage.make_sample(item, rng, config, temporal), vae, config)
            noise_rng = torch.Generator().manual_seed(int(rng.integers(2**63)))
            level = draw_noise_level(noise_rng, config, adapter)
            noise = torch.randn(example.clean.shape, generator=noise_rng)
            syncing = clip == config.batch_size - 1
            with nullcontext() if syncing else accelerator.no_sync(ddp_model), activation_context(config, device):
                loss = flow_matching_loss(ddp_model, adapter, example, forward_kwargs(example), level, noise)
                accelerator.backward(loss / config.batch_size)
            step_loss += loss.item() / config.batch_size
        if config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        progress.step += 1
        mean = accelerator.reduce(torch.tensor(step_loss, device=device), reduction="mean").item()
        losses.append(mean)
        if progress.step % max(1, config.log_every) == 0 or progress.step == config.max_steps:
            say(f"step {progress.step}/{config.max_steps} loss {mean:.4f} lr {scheduler.get_last_lr()[0]:.2e}")
        if config.checkpoint_every > 0 and progress.step % config.checkpoint_every == 0:
            folder = save_checkpoint(accelerator, checkpoint_root, progress.step, config.keep_checkpoints)
            _save(accelerator, ddp_model, checkpoint_root / f"{out.stem}-step{progress.step:08d}.safetensors",
                  config, stage.name, progress.step, targets, image_embeds)
            say(f"checkpoint {folder}")
        if held is not None and progress.step % config.sample_every == 0:
            example, held_sample = held
            positive, negative = conditioning(example, "")
            path, frames = render_sample(transformer, adapter, vae, example, positive, negative, held_sample.fps,
                                         config.sample_steps, config.sample_cfg,
                                         samples_dir / f"step_{progress.step:08d}.mp4")
            write_scores(path.with_suffix(".json"), frames, held_sample, progress.step, scorers, pose_extractor(config))
            say(f"sample {path}")
        accelerator.wait_for_everyone()
    _save(accelerator, ddp_model, out, config, stage.name, progress.step, targets, image_embeds)
    say(f"wrote {out} (step {progress.step})")
    accelerator.end_training()
    return TrainResult(out, progress.step, losses)


def _save(accelerator, ddp_model: torch.nn.Module, path: Path, config: TrainConfig, stage: str, step: int,
          targets: list[str], image_embeds: str) -> None:
    """Gather the LoRA (every process takes part: FSDP shards it) and write it from the main process."""
    tensors = lora_tensors(accelerator.get_state_dict(ddp_model))
    if accelerator.is_main_process:
        save_lora(path, tensors, lora_metadata(config.backbone, config.rank, config.lora_alpha(), stage, step, targets,
                                                     image_embeds))
    accelerator.wait_for_everyone()
