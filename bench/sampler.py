"""Generation engine costs, measured side by side in one run on the tiny HunyuanVideo 1.5 (CPU).

Prints:
 1. per-step time of the pack's sampler over bare transformer forwards on the same inputs
    (target <= 1.03x);
 2. the pack against diffusers' HunyuanVideo15ImageToVideoPipeline denoising the same model with the
    same steps and CFG, both timed from the first transformer call to the last (target <= 1.0x);
 3. peak memory added by applying a rank-256 LoRA during sampling over the LoRA's own size
    (target <= 1.1x), fp32 and bf16 model;
 4. tiled decode peak working memory (peak minus the returned video) at 4x the frames over 1x
    (target <= 1.2x), next to diffusers' untiled decode;
 5. transformer throughput: FLOPs of one forward (torch's flop counter) over its time. On a GPU the
    full-size HunyuanVideo 1.5 (random bf16 weights) at a 480p canvas (33 frames, two 480x480 panels)
    and its MFU against the GPU's dense bf16 peak; on CPU the tiny model, for information only.
Memory is the peak of live tensor storage allocated during the measured call (a dispatch-mode
counter), so allocator reuse cannot hide it.

    .venv/bin/python bench/sampler.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import weakref  # noqa: E402

import torch  # noqa: E402
from engine_fixtures import canvas_mask  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_flatten  # noqa: E402

from dreamactor_core import sampling  # noqa: E402
from dreamactor_core.models import lora  # noqa: E402
from dreamactor_core.models import vae as video_vae  # noqa: E402
from dreamactor_core.models.backbones import get_adapter  # noqa: E402
from dreamactor_core.models.loading import DreamActorModel, DreamActorVAE  # noqa: E402
from dreamactor_core.testing.tiny_models import build_tiny_transformer, build_tiny_vae, tiny_text_conditioning  # noqa: E402

ADAPTER = get_adapter("hunyuan_video_15")
LATENT = (1, 32, 3, 4, 8)
STEPS = 8
ROUNDS = 7


class PeakTensorBytes(TorchDispatchMode):
    """Peak bytes of tensor storage allocated inside the block (weights made before are not counted).

    Every op's new output storage is counted until its last tensor is collected; views and in-place
    results share their input's storage and are not counted twice.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}
        self.total = self.peak = 0

    def _release(self, key: int) -> None:
        entry = self.live[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.total -= entry[0]
            del self.live[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
            if key in inputs and key not in self.live:
                continue
            if key not in self.live:
                self.live[key] = [storage.nbytes(), 0]
                self.total += storage.nbytes()
                self.peak = max(self.peak, self.total)
            self.live[key][1] += 1
            weakref.finalize(tensor, self._release, key)
        return out


def peak_bytes(function) -> tuple[int, object]:
    """Peak tensor bytes allocated while ``function`` runs, and its result."""
    with PeakTensorBytes() as meter:
        result = function()
    return meter.peak, result


def median_seconds(function, rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def forward_window(transformer: torch.nn.Module, function) -> float:
    """Seconds from the first transformer call's start to the last call's end during ``function``."""
    marks: list[float] = []
    pre = transformer.register_forward_pre_hook(lambda *_: marks.append(time.perf_counter()))
    post = transformer.register_forward_hook(lambda *_: marks.append(time.perf_counter()))
    try:
        function()
    finally:
        pre.remove()
        post.remove()
    return marks[-1] - marks[0]


def bench_step_overhead(model: DreamActorModel, condition: torch.Tensor, mask: torch.Tensor) -> None:
    text = ADAPTER.prepare_conditioning(model.transformer, tiny_text_conditioning(), 1, torch.device("cpu"), torch.float32)
    model_input = ADAPTER.pack_input(torch.randn(LATENT), condition, mask)

    def bare():
        with torch.inference_mode():
            for _ in range(STEPS):
                ADAPTER.predict_velocity(model.transformer, model_input, torch.tensor([500.0]), text)

    def pack():
        sampling.sample(model, text, condition, mask, steps=STEPS, cfg=1.0)

    pairs = [(median_seconds(pack, 1), median_seconds(bare, 1)) for _ in range(ROUNDS)]
    ours, reference = statistics.median(p for p, _ in pairs), statistics.median(b for _, b in pairs)
    print(f"1. sampler step / bare forward: {ours / reference:.3f}x "
          f"({ours / STEPS * 1e3:.2f} ms vs {reference / STEPS * 1e3:.2f} ms a step; target <= 1.03x)")


def bench_against_diffusers(model: DreamActorModel, vae: torch.nn.Module, condition: torch.Tensor,
                            mask: torch.Tensor) -> None:
    from diffusers import ClassifierFreeGuidance, FlowMatchEulerDiscreteScheduler, HunyuanVideo15ImageToVideoPipeline
    from PIL import Image
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    encoder = SiglipVisionModel(SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                   num_attention_heads=2, image_size=32, patch_size=16))
    pipe = HunyuanVideo15ImageToVideoPipeline(
        text_encoder=None, tokenizer=None, transformer=model.transformer, vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0), text_encoder_2=None, tokenizer_2=None,
        guider=ClassifierFreeGuidance(guidance_scale=3.0), image_encoder=encoder,
        feature_extractor=SiglipImageProcessor(size={"height": 32, "width": 32}))
    pipe.set_progress_bar_config(disable=True)
    pipe.video_processor.calculate_default_height_width = lambda height, width, target_size: (64, 128)
    positive, negative = tiny_text_conditioning(), tiny_text_conditioning(seed=1)
    embeds = {
        "prompt_embeds": positive["encoder_hidden_states"], "prompt_embeds_mask": positive["encoder_attention_mask"],
        "prompt_embeds_2": positive["encoder_hidden_states_2"], "prompt_embeds_mask_2": positive["encoder_attention_mask_2"],
        "negative_prompt_embeds": negative["encoder_hidden_states"],
        "negative_prompt_embeds_mask": negative["encoder_attention_mask"],
        "negative_prompt_embeds_2": negative["encoder_hidden_states_2"],
        "negative_prompt_embeds_mask_2": negative["encoder_attention_mask_2"],
    }
    image = Image.new("RGB", (128, 64))

    def theirs():
        pipe(image=image, num_frames=9, num_inference_steps=STEPS, output_type="latent",
             generator=torch.Generator().manual_seed(0), **embeds)

    def ours():
        sampling.sample(model, positive, condition, mask, negative=negative, steps=STEPS, cfg=3.0, shift=5.0)

    pairs = [(forward_window(model.transformer, ours), forward_window(model.transformer, theirs)) for _ in range(ROUNDS)]
    mine, reference = statistics.median(p for p, _ in pairs), statistics.median(d for _, d in pairs)
    print(f"2. pack / diffusers HunyuanVideo15ImageToVideoPipeline denoising: {mine / reference:.3f}x "
          f"({mine * 1e3:.1f} ms vs {reference * 1e3:.1f} ms for {STEPS} CFG steps; target <= 1.0x)")


def bench_lora_memory(dtype: torch.dtype) -> None:
    cls = ADAPTER.transformer_cls()
    torch.manual_seed(0)
    transformer = cls(in_channels=65, out_channels=32, num_attention_heads=8, attention_head_dim=64, num_layers=2,
                      num_refiner_layers=1, mlp_ratio=4.0, text_embed_dim=32, text_embed_2_dim=16,
                      image_embed_dim=16, rope_axes_dim=(16, 24, 24)).to(dtype).eval()
    model = DreamActorModel(transformer, ADAPTER, "bench")
    rank, layers = 256, {}
    for name in ADAPTER.visual_ffn_modules(transformer):
        module = transformer.get_submodule(name)
        layers[name] = lora.LoraLayer(torch.randn(rank, module.in_features) * 0.01,
                                      torch.randn(module.out_features, rank) * 0.01, 1.0)
    weights = lora.LoraWeights("bench", layers)
    lora_bytes = sum(layer.down.nbytes + layer.up.nbytes for layer in layers.values())
    condition = torch.randn(LATENT)
    mask = canvas_mask(condition)
    text = tiny_text_conditioning()

    def run(m):
        return lambda: sampling.sample(m, text, condition, mask, steps=1, cfg=1.0)

    base = peak_bytes(run(model))[0]
    patched = peak_bytes(run(model.with_lora(weights, 1.0)))[0]
    print(f"3. LoRA peak memory added / LoRA size ({str(dtype)[6:]} model, rank {rank}, {lora_bytes / 2**20:.1f} MiB): "
          f"{max(0, patched - base) / lora_bytes:.3f}x (target <= 1.1x)")


def bench_decode_memory() -> None:
    vae = build_tiny_vae()
    model = DreamActorVAE(vae, ADAPTER, "bench")

    def measure(latent_frames: int, tiled: bool) -> int:
        latent = torch.randn(1, 32, latent_frames, 8, 16)
        if tiled:
            added, video = peak_bytes(lambda: video_vae.decode_latent(model, latent, tile_size=0))
        else:
            with torch.inference_mode():
                added, video = peak_bytes(lambda: vae.decode(latent).sample)
        return added - video.nbytes

    for tiled, label in ((True, "pack, tiled"), (False, "diffusers, untiled")):
        one, four = measure(9, tiled), measure(33, tiled)
        print(f"4. decode working memory at 4x frames / 1x ({label}, 33 -> 129 frames at 128x256): "
              f"{four / max(one, 1):.2f}x ({one / 2**20:.0f} -> {four / 2**20:.0f} MiB)"
              + ("; target <= 1.2x" if tiled else ""))


# Dense bf16 tensor-core peak FLOP/s by GPU name (vendor datasheets, SXM parts).
GPU_PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "4090": 165e12}


def bench_throughput() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    if torch.cuda.is_available():
        device, dtype = torch.device("cuda"), torch.bfloat16
        from accelerate import init_empty_weights

        config = ADAPTER.shipped_config(ADAPTER.transformer_config_file)
        with init_empty_weights():  # allocate straight in bf16 on the GPU (16.6 GB), never in fp32
            transformer = ADAPTER.transformer_cls()(**config).to(dtype)
        transformer = transformer.to_empty(device=device).eval()
        with torch.no_grad():
            for parameter in transformer.parameters():
                parameter.normal_(0.0, 0.02)
        latent = (1, 65, 9, 480 // 16, 960 // 16)
        text = {"encoder_hidden_states": torch.randn(1, 256, config["text_embed_dim"]),
                "encoder_attention_mask": torch.ones(1, 256)}
        label = "full-size HunyuanVideo 1.5, 480p canvas"
    else:
        device, dtype = torch.device("cpu"), torch.float32
        transformer, latent, text = build_tiny_transformer(), (1, 65, 3, 4, 8), tiny_text_conditioning()
        label = "tiny model, CPU"
    kwargs = ADAPTER.prepare_conditioning(transformer, text, 1, device, dtype)
    hidden = torch.randn(latent, device=device, dtype=dtype)
    timestep = torch.tensor([500.0], device=device, dtype=dtype)

    def forward():
        with torch.inference_mode():
            ADAPTER.predict_velocity(transformer, hidden, timestep, kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize()

    with FlopCounterMode(display=False) as counter:
        forward()
    forward()
    seconds = median_seconds(forward, 3)
    achieved = counter.get_total_flops() / seconds
    line = f"5. transformer throughput ({label}, {latent[2] * latent[3] * latent[4]} tokens): {achieved / 1e12:.3f} TFLOP/s"
    if device.type == "cuda":
        name = torch.cuda.get_device_name()
        peak = next((value for key, value in GPU_PEAK_BF16.items() if key in name), None)
        line += f", MFU {achieved / peak:.1%} of {name}'s bf16 peak" if peak else f" on {name} (peak unknown)"
    print(line)


def main() -> None:
    torch.set_num_threads(4)
    model = DreamActorModel(build_tiny_transformer(), ADAPTER, "tiny")
    condition = torch.randn(LATENT, generator=torch.Generator().manual_seed(1))
    mask = canvas_mask(condition)
    bench_step_overhead(model, condition, mask)
    bench_against_diffusers(model, build_tiny_vae(), condition, mask)
    bench_lora_memory(torch.float32)
    bench_lora_memory(torch.bfloat16)
    bench_decode_memory()
    bench_throughput()


if __name__ == "__main__":
    main()
