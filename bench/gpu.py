"""HunyuanVideo 1.5 at the real size on one GPU: the pack's sampler against bare forwards, diffusers'
untouched forward and ComfyUI's own model on the same tokens, side by side in one run.

Weights are random, built on the device from the shipped config (meta-device construction, then
``to_empty`` and a normal init per tensor): no file, no download. Speed and memory of the real shapes
are exact; quality is not measured. Shipped defaults: 416x624 panels (832x624 canvas, 39x52 latent
grid), 81 + 24 frames (27 latent frames), cfg 6 (two forwards a step), bf16; and 33 frames.

Rows (per frame count): the pack's sampler step; bare forwards (the pack's prepared inputs straight
into the transformer: the denominator of "sampler step <= 1.05x bare"); diffusers' untouched forward
(its own attention processor with the padded [S, S] mask, the inputs its I2V pipeline pads);
ComfyUI's native HunyuanVideo 1.5 when importable; compiled blocks; block streaming; fp8 weights.
Peak memory is the row's own: torch.cuda.max_memory_allocated minus what other resident models hold.
MFU = transformer FLOPs per step (``step_flops``) / step time / the GPU's dense bf16 peak.

    .venv/bin/python bench/gpu.py            # a CUDA GPU: real size, about 6 minutes on an H100/H200
    .venv/bin/python bench/gpu.py --cpu      # reduced width on the CPU: checks the script in seconds
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import torch  # noqa: E402

from dreamactor_core import sampling  # noqa: E402
from dreamactor_core.models import attention  # noqa: E402
from dreamactor_core.models.backbones import get_adapter  # noqa: E402
from dreamactor_core.models.backbones.hunyuan_video_15 import rope_axes_for  # noqa: E402
from dreamactor_core.models.loading import DreamActorModel  # noqa: E402

ADAPTER = get_adapter("hunyuan_video_15")
COMFYUI = ROOT / ".cache" / "comfyui" / "ComfyUI-0.3.75"
CFG = 6.0
# Dense bf16 tensor-core peaks (no sparsity), by a substring of torch.cuda.get_device_name.
PEAK_BF16 = {"H200": 989e12, "H100 SXM": 989e12, "H100 80GB HBM3": 989e12, "H100 PCIe": 756e12, "H100": 989e12,
             "A100": 312e12, "L40S": 362e12, "RTX 4090": 165e12}


@dataclass(frozen=True)
class Size:
    """One benchmark setting: the model config and the tokens it sees."""

    config: dict
    latents: dict[str, tuple[int, int, int]]  # label -> latent (frames, height, width)
    text: int  # padded text tokens, as the text encoder hands them over
    positive: int  # valid tokens of the prompt and the negative prompt
    negative: int
    glyph: int  # the zero ByT5 tokens diffusers' pipeline passes without quoted text
    image: int  # SigLIP tokens of the reference
    steps: int  # sampler steps per measurement (the first is warm-up)


def real_size() -> Size:
    return Size(config=ADAPTER.shipped_config(ADAPTER.transformer_config_file),
                latents={"81+24 frames": (27, 39, 52), "33 frames": (9, 39, 52)},
                text=1000, positive=120, negative=30, glyph=256, image=729, steps=3)


def cpu_size() -> Size:
    config = dict(ADAPTER.shipped_config(ADAPTER.transformer_config_file), num_attention_heads=2, attention_head_dim=64,
                  num_layers=2, text_embed_dim=64, image_embed_dim=32,  # ComfyUI fixes 2 refiner blocks, ByT5 1472
                  rope_axes_dim=rope_axes_for(64))
    return Size(config=config, latents={"9 frames": (3, 4, 8), "5 frames": (2, 4, 8)},
                text=40, positive=12, negative=5, glyph=16, image=9, steps=3)


# ----- FLOPs -----

def forward_flops(config: dict, video_tokens: int, text_tokens: int) -> int:
    """Multiply-add FLOPs of one transformer forward, counted analytically.

    Per dual-stream block, each stream's token-wise linears (q, k, v, out: 4 h^2; MLP: 2 r h^2) cost
    2 x weights x tokens: 2 h^2 (4 + 2r) (V + L); joint attention costs 4 S^2 h (Q K^T and P V, 2 S^2 h
    each) with S = V + L. Plus the patch embedding and the output projection over the video tokens:
    2 V h (C_in + C_out p_t p^2). Modulation (per sample, not per token), norms, RoPE, softmax and the
    token refiner (text only, L << V) are left out: under 0.1% at the real size.
    """
    h = config["num_attention_heads"] * config["attention_head_dim"]
    ratio = config["mlp_ratio"]
    tokens = video_tokens + text_tokens
    per_block = int(2 * h * h * (4 + 2 * ratio) * tokens) + 4 * tokens * tokens * h
    patch = config.get("patch_size_t", 1) * config["patch_size"] ** 2
    io = 2 * video_tokens * h * (config["in_channels"] * patch + config["out_channels"] * patch)
    return config["num_layers"] * per_block + io


def step_flops(config: dict, video_tokens: int, text_tokens: tuple[int, ...]) -> int:
    """FLOPs of one sampler step: one forward per text branch (cfg != 1: positive and negative)."""
    return sum(forward_flops(config, video_tokens, tokens) for tokens in text_tokens)


# ----- models and inputs -----

def random_init_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Normal weights scaled by 1/sqrt(fan in), norm scales 1, other vectors 0: activations stay finite."""
    generator = torch.Generator(next(module.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.named_parameters():
            if tensor.ndim > 1:
                tensor.normal_(0.0, tensor[0].numel() ** -0.5, generator=generator)
            else:
                tensor.fill_(1.0 if "norm" in name and name.endswith("weight") else 0.0)
    return module


def build_transformer(config: dict, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """The diffusers class at ``config`` with random weights made on ``device`` (no host copy)."""
    with torch.device("meta"):
        model = ADAPTER.transformer_cls()(**config)
    model = torch.nn.Module.to(model, dtype).to_empty(device=device)  # plain cast: no fp32-module warning
    return random_init_(model).eval().requires_grad_(False)


def text_conditioning(size: Size, valid: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """What the text and image encoders hand over: padded text, its mask and a SigLIP embedding."""
    generator = torch.Generator().manual_seed(valid)
    c = size.config
    return {"encoder_hidden_states": torch.randn(1, size.text, c["text_embed_dim"], generator=generator).to(device, dtype),
            "encoder_attention_mask": (torch.arange(size.text) < valid).long()[None].to(device),
            "image_embeds": torch.randn(1, size.image, c["image_embed_dim"], generator=generator).to(device, dtype)}


def diffusers_kwargs(size: Size, conditioning: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """diffusers' I2V pipeline inputs: the padded text plus 256 zero, masked ByT5 tokens."""
    return {**conditioning,
            "encoder_hidden_states_2": torch.zeros(1, size.glyph, size.config["text_embed_2_dim"], device=device, dtype=dtype),
            "encoder_attention_mask_2": torch.zeros(1, size.glyph, device=device, dtype=torch.long)}


def comfy_model(transformer: torch.nn.Module, config: dict, device: torch.device, dtype: torch.dtype):
    """ComfyUI's own HunyuanVideo 1.5 (HunyuanVideo class, HV1.5's detected config) holding the same
    weights, or None when ComfyUI is not importable."""
    if not COMFYUI.is_dir():
        return None
    sys.path.insert(0, str(COMFYUI))
    try:
        import comfy.cli_args

        comfy.cli_args.args.cpu = device.type == "cpu"
        import comfy.ops
        from comfy.ldm.hunyuan_video.model import HunyuanVideo
    except Exception as error:  # noqa: BLE001 - any import failure means: no ComfyUI row
        print(f"ComfyUI not importable ({error}); its row is skipped", file=sys.stderr)
        return None
    heads, head_dim = config["num_attention_heads"], config["attention_head_dim"]
    with torch.device("meta"):
        model = HunyuanVideo(
            image_model="hunyuan_video", in_channels=config["in_channels"], out_channels=config["out_channels"],
            vec_in_dim=None, context_in_dim=config["text_embed_dim"], hidden_size=heads * head_dim,
            mlp_ratio=config["mlp_ratio"], num_heads=heads, depth=config["num_layers"], depth_single_blocks=0,
            axes_dim=list(config["rope_axes_dim"]), theta=256, patch_size=[1, 1, 1], qkv_bias=True,
            guidance_embed=False, meanflow=False, byt5=True, use_cond_type_embedding=True,
            vision_in_dim=config["image_embed_dim"], dtype=dtype, operations=comfy.ops.disable_weight_init)
    state = ADAPTER.to_comfy_names(ADAPTER.to_original_names(transformer.state_dict()))
    model.load_state_dict({k: v.to(device, dtype) for k, v in state.items()}, strict=True, assign=True)
    return model.eval().requires_grad_(False)


# ----- measuring -----

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_bytes_on(module: torch.nn.Module | None, device: torch.device) -> int:
    if module is None:
        return 0
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()) if t.device == device)


@contextlib.contextmanager
def peak_of(device: torch.device, module: torch.nn.Module | None, out: dict):
    """The block's peak device memory as if ``module`` were the only model resident (GiB)."""
    if device.type != "cuda":
        yield
        out["peak_gib"] = None
        return
    gc.collect()
    torch.cuda.empty_cache()
    others = torch.cuda.memory_allocated(device) - model_bytes_on(module, device)
    torch.cuda.reset_peak_memory_stats(device)
    yield
    out["peak_gib"] = round((torch.cuda.max_memory_allocated(device) - others) / 2**30, 2)


def timed_calls(calls, device: torch.device, rounds: int) -> float:
    """Median seconds of running every call of ``calls`` once (after one warm-up round)."""
    times = []
    for index in range(rounds + 1):
        sync(device)
        start = time.perf_counter()
        with torch.inference_mode():
            for call in calls:
                call()
        sync(device)
        if index:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def sampler_step(model: DreamActorModel, positive, negative, condition, mask, steps: int, device) -> float:
    """Median time between successive steps of one ``sampling.sample`` run (the first step warms up)."""
    stamps: list[float] = []

    def on_step(step: int, x0: torch.Tensor) -> None:
        sync(device)
        stamps.append(time.perf_counter())

    sampling.sample(model, positive, condition, mask, negative=negative, steps=steps, cfg=CFG, on_step=on_step)
    return statistics.median(b - a for a, b in zip(stamps, stamps[1:]))


def run(size: Size, device: torch.device, dtype: torch.dtype, rounds: int, rows: set[str]) -> dict:
    """Every row at every latent size; returns the results dict printed as JSON."""
    transformer = build_transformer(size.config, device, dtype)
    diffusers_processors = dict(transformer.attn_processors)
    model = DreamActorModel(transformer, ADAPTER, "random weights")
    positive = text_conditioning(size, size.positive, device, dtype)
    negative = text_conditioning(size, size.negative, device, dtype)
    comfy = comfy_model(transformer, size.config, device, dtype) if "comfy" in rows else None
    results: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                     "dtype": str(dtype).removeprefix("torch."), "cfg": CFG, "rows": []}
    peak_flops = next((v for k, v in PEAK_BF16.items() if k in results["device"]), None) if device.type == "cuda" else None
    results["peak_bf16_flops"] = peak_flops
    latents = {}
    for label, (frames, height, width) in size.latents.items():
        generator = torch.Generator().manual_seed(0)
        condition = torch.randn(1, 32, frames, height, width, generator=generator).to(device, dtype)
        mask = torch.ones(1, 1, frames, height, width, device=device, dtype=dtype)
        latent = torch.randn(1, 65, frames, height, width, generator=generator).to(device, dtype)
        latents[label] = (condition, mask, latent)
    timestep = torch.tensor([700.0], device=device, dtype=dtype)

    def record(name: str, label: str, seconds: float, forwards: int, memory: dict) -> None:
        frames, height, width = size.latents[label]
        video = frames * height * width
        flops = step_flops(size.config, video, (size.positive + size.image, size.negative + size.image)[:forwards])
        results["rows"].append({
            "row": name, "size": label, "video_tokens": video, "seconds_per_step": round(seconds, 4),
            "peak_gib": memory.get("peak_gib"), "tflops_per_step": round(flops / 1e12, 3),
            "mfu": round(flops / seconds / peak_flops, 3) if peak_flops else None})
        print(f"  {label:>13} {name:<22} {seconds:9.3f} s/step  peak {memory.get('peak_gib')} GiB", file=sys.stderr)

    def bare_calls(kwargs_pairs):
        return [lambda kw=kw, x=x: ADAPTER.predict_velocity(transformer, x, timestep, kw) for x, kw in kwargs_pairs]

    for label, (condition, mask, latent) in latents.items():
        prepared = [ADAPTER.prepare_conditioning(transformer, c, 1, device, dtype) for c in (positive, negative)]
        memory: dict = {}
        with peak_of(device, transformer, memory):
            seconds = sampler_step(model, positive, negative, condition, mask, size.steps, device)
        record("pack sampler", label, seconds, 2, memory)
        memory = {}
        with peak_of(device, transformer, memory):
            seconds = timed_calls(bare_calls([(latent, kw) for kw in prepared]), device, rounds)
        record("bare forward", label, seconds, 2, memory)
        if "diffusers" in rows:
            pack_processors = dict(transformer.attn_processors)
            transformer.set_attn_processor(dict(diffusers_processors))  # it empties the dict it gets
            padded = [diffusers_kwargs(size, c, device, dtype) for c in (positive, negative)]
            memory = {}
            with peak_of(device, transformer, memory):
                seconds = timed_calls([lambda kw=kw, x=latent: transformer(hidden_states=x, timestep=timestep, return_dict=False, **kw)
                                       for kw in padded], device, rounds)
            transformer.set_attn_processor(pack_processors)
            record("diffusers untouched", label, seconds, 2, memory)
        if comfy is not None:
            comfy_inputs = [(kw["encoder_hidden_states"], kw["image_embeds"]) for kw in prepared]
            memory = {}
            with peak_of(device, comfy, memory):
                seconds = timed_calls([lambda text=text, image=image, x=latent: comfy(x, timestep, text, clip_fea=image)
                                       for text, image in comfy_inputs], device, rounds)
            record("comfyui native", label, seconds, 2, memory)
            with torch.inference_mode():  # same weights, same tokens: the two models must agree
                ours = ADAPTER.predict_velocity(transformer, latent, timestep, prepared[0]).float()
                theirs = comfy(latent, timestep, *comfy_inputs[0][:1], clip_fea=comfy_inputs[0][1]).float()
            results.setdefault("comfy_relative_difference", {})[label] = float((ours - theirs).norm() / ours.norm())
        if "compile" in rows:
            memory = {}
            with attention.configured(transformer, "auto", compile_blocks=True), peak_of(device, transformer, memory):
                seconds = timed_calls(bare_calls([(latent, prepared[0])] * 2), device, rounds)
            record("compiled forward", label, seconds, 2, memory)
    comfy = None  # free its weights before the streamed and fp8 rows

    def bare_rows(name: str) -> None:
        for label, (_, _, latent) in latents.items():
            prepared = [ADAPTER.prepare_conditioning(transformer, c, 1, device, dtype) for c in (positive, negative)]
            memory: dict = {}
            with peak_of(device, transformer, memory):
                seconds = timed_calls(bare_calls([(latent, kw) for kw in prepared]), device, rounds)
            record(name, label, seconds, 2, memory)

    if "stream" in rows:
        from dreamactor_core.models import memory as memory_policy

        torch.nn.Module.to(transformer, "cpu")
        memory_policy.stream_blocks(transformer, device, torch.device("cpu"))
        bare_rows("streamed forward")
        memory_policy.stop_streaming(transformer, device)
    fp8 = _fp8_module()
    if "fp8" in rows and fp8 is not None:
        fp8.quantize_linears(transformer)
        bare_rows("fp8 weights")
    results["ratios"] = ratios(results["rows"])
    return results


def _fp8_module():
    """The pack's fp8 weight storage, when this version has it (else the fp8 row is skipped)."""
    try:
        from dreamactor_core.models import fp8
    except ImportError:
        return None
    return fp8 if hasattr(fp8, "quantize_linears") else None


def ratios(rows: list[dict]) -> dict:
    """Per size: each row's step time over the bare forwards' (sampler target <= 1.05, others <= 1.0)."""
    out: dict = {}
    for size in dict.fromkeys(row["size"] for row in rows):
        times = {row["row"]: row["seconds_per_step"] for row in rows if row["size"] == size}
        bare = times["bare forward"]
        out[size] = {f"{name} / bare": round(seconds / bare, 3) for name, seconds in times.items() if name != "bare forward"}
        for other in ("diffusers untouched", "comfyui native"):
            if other in times:
                out[size][f"pack sampler / {other}"] = round(times["pack sampler"] / times[other], 3)
    return out


def vae_decode(device: torch.device, dtype: torch.dtype, cpu: bool, latent: tuple[int, int, int]) -> float:
    """Seconds of the pack's tiled decode of one latent through a random VAE (shipped config or tiny)."""
    from dreamactor_core.models import vae as video_vae
    from dreamactor_core.models.loading import DreamActorVAE
    from dreamactor_core.testing.tiny_models import TINY_VAE_CONFIGS

    config = TINY_VAE_CONFIGS["hunyuan_video_15"] if cpu else ADAPTER.shipped_config(ADAPTER.vae_config_file)
    with torch.device("meta"):
        module = ADAPTER.vae_cls()(**config)
    module = random_init_(torch.nn.Module.to(module, dtype).to_empty(device=device)).eval().requires_grad_(False)
    sample = torch.randn(1, 32, *latent).to(device, dtype)
    sync(device)
    start = time.perf_counter()
    video_vae.decode_latent(DreamActorVAE(module, ADAPTER, "random"), sample)
    sync(device)
    return time.perf_counter() - start


def print_table(results: dict) -> None:
    print(f"\nHunyuanVideo 1.5, random weights, {results['dtype']}, cfg {results['cfg']}, on {results['device']}")
    print(f"{'size':>13}  {'row':<22}{'s/step':>9}{'peak GiB':>10}{'TFLOP/step':>12}{'MFU':>7}  ratio to bare")
    for row in results["rows"]:
        ratio = results["ratios"][row["size"]].get(f"{row['row']} / bare", 1.0)
        mfu = f"{row['mfu']:.0%}" if row["mfu"] is not None else "n/a"
        print(f"{row['size']:>13}  {row['row']:<22}{row['seconds_per_step']:9.3f}{str(row['peak_gib']):>10}"
              f"{row['tflops_per_step']:12.1f}{mfu:>7}  {ratio:.3f}x")
    for size, values in results["ratios"].items():
        for name, value in values.items():
            if "/ bare" not in name:
                print(f"{size:>13}  {name}: {value:.3f}x")
    if results.get("vae_decode_s") is not None:
        print(f"VAE tiled decode of {list(results['sizes'])[0]}: {results['vae_decode_s']:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="reduced width on the CPU (default without CUDA)")
    parser.add_argument("--rounds", type=int, default=1, help="timed rounds per row after one warm-up")
    parser.add_argument("--rows", default="diffusers,comfy,compile,stream,fp8,vae",
                        help="optional rows, comma-separated (pack sampler and bare forward always run)")
    args = parser.parse_args(argv)
    cpu = args.cpu or not torch.cuda.is_available()
    device = torch.device("cpu" if cpu else "cuda")
    dtype = torch.float32 if cpu else torch.bfloat16
    size = cpu_size() if cpu else real_size()
    rows = set(filter(None, args.rows.split(",")))
    if cpu:
        attention.COMPILE_OPTIONS = {"backend": "eager"}  # the CPU check traces; inductor takes minutes here
    started = time.perf_counter()
    results = run(size, device, dtype, args.rounds, rows)
    results["sizes"] = {label: list(latent) for label, latent in size.latents.items()}
    results["vae_decode_s"] = (round(vae_decode(device, dtype, cpu, next(iter(size.latents.values()))), 3)
                               if "vae" in rows else None)
    results["wall_s"] = round(time.perf_counter() - started, 1)
    print_table(results)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
