"""Peak memory of loading each model / the bytes of the loaded model, at the real width (issue 13).

Files: real-width HunyuanVideo 1.5 models in the real key layouts (ComfyUI names, the ones artists
keep) written as sparse zero safetensors (dreamactor_core/testing/real_size.py): the transformer
with 2 of its 54 double blocks (real embedders, refiner and final layer), the full VAE, Qwen2.5-VL
7B's text model with 2 of 28 layers in ComfyUI's fp8 "scaled" convention (with its LM head and a
real vision tower, which must not be read), and the full SigLIP so400m. Each load runs in its own
process (loaded through load_transformer/load_vae/load_text_encoder/load_image_encoder, the code
the nodes call) with a watchdog at 7.5 GiB. The peak is the process's anonymous resident memory
(RssAnon, sampled every 2 ms) above its value before the load, with every tensor read from the file
copied into anonymous memory as a GPU load must (safetensors maps the file: on the CPU a read
tensor is page cache, which would hide a second copy; the page cache itself is not counted).
``--old REV`` measures the same loads
with the pack at git revision REV, extracted to a temporary folder, side by side.

Full-size numbers are extrapolated: the load's overhead above the model is per tensor (one tensor
in hand), so full peak = full model bytes (from a full-size header) + the measured overhead.

    .venv/bin/python bench/memory.py [--old 14d2fc9]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = int(7.5 * 1024**3)
CASES = {  # name -> (file, what the load is asked)
    "transformer fp16 file -> bf16": ("hv15_fp16", {"kind": "transformer", "dtype": "bfloat16"}),
    "transformer fp16 file -> fp8": ("hv15_fp16", {"kind": "transformer", "dtype": "bfloat16", "fp8": True}),
    "transformer fp8-scaled file": ("hv15_fp8_scaled", {"kind": "transformer", "dtype": "bfloat16"}),
    "VAE fp16 file -> bf16": ("vae_fp16", {"kind": "vae", "dtype": "bfloat16"}),
    "SigLIP fp16 file -> bf16": ("siglip_fp16", {"kind": "image", "dtype": "bfloat16"}),
    # last: the old code's whole-file dequantisation passes the watchdog's limit and ends its process
    "text encoder fp8-scaled (Qwen2.5-VL)": ("qwen_fp8_scaled", {"kind": "text", "dtype": "bfloat16"}),
}


# ----- the files (this checkout's code) -----
def _meta(build):
    import torch

    with torch.device("meta"):
        return build()


def write_files(folder: Path) -> None:
    """Sparse files (few blocks, and full-size headers for the extrapolation)."""
    import torch

    from dreamactor_core.models.backbones import get_adapter
    from dreamactor_core.models.fp8 import FP8
    from dreamactor_core.testing.real_size import write_sparse_safetensors
    from dreamactor_core.testing.tiny_encoders import write_qwen_tokenizer

    adapter = get_adapter("hunyuan_video_15")

    def transformer(layers: int) -> dict:
        config = adapter.shipped_config(adapter.transformer_config_file) | {"num_layers": layers}
        model = _meta(lambda: adapter.transformer_cls()(**config))
        original = adapter.to_original_names({k: v.to(torch.float16) for k, v in model.state_dict().items()})
        return {f"model.diffusion_model.{k}": v for k, v in adapter.to_comfy_names(original).items()}

    def scaled(state: dict) -> dict:  # ComfyUI's convention: linear weights fp8 + scale_weight, a marker
        out = {"model.diffusion_model.scaled_fp8": (FP8, (0,))}
        for key, value in state.items():
            linear = key.endswith(".weight") and value.ndim == 2 and "cond_type_embedding" not in key
            out[key] = (FP8, tuple(value.shape)) if linear else value
            if linear:
                out[key[: -len(".weight")] + ".scale_weight"] = (torch.float32, ())
        return out

    for layers, tag in ((2, ""), (54, "_full")):
        state = transformer(layers)
        write_sparse_safetensors(folder / f"hv15_fp16{tag}.safetensors", state)
        write_sparse_safetensors(folder / f"hv15_fp8_scaled{tag}.safetensors", scaled(state))
    vae_config = adapter.shipped_config(adapter.vae_config_file)
    vae = _meta(lambda: adapter.vae_cls()(**vae_config))
    vae_state = adapter.vae_to_original_names({k: v.to(torch.float16) for k, v in vae.state_dict().items()})
    write_sparse_safetensors(folder / "vae_fp16.safetensors", vae_state)

    from transformers import (
        Qwen2_5_VLTextConfig,
        Qwen2_5_VLTextModel,
        SiglipVisionConfig,
        SiglipVisionModel,
    )
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VisionTransformerPretrainedModel,
        Qwen2_5_VLVisionConfig,
    )

    configs = ROOT / "dreamactor_core" / "conditioning" / "configs"
    qwen_config = {k: v for k, v in json.loads((configs / "qwen2_5_vl_7b_text.json").read_text()).items()
                   if not k.startswith("_")}
    vision = _meta(lambda: Qwen2_5_VisionTransformerPretrainedModel._from_config(
        Qwen2_5_VLVisionConfig(depth=32, hidden_size=1280, out_hidden_size=qwen_config["hidden_size"],
                               intermediate_size=3420)))
    for layers, tag in ((2, ""), (qwen_config["num_hidden_layers"], "_full")):
        config = dict(qwen_config, num_hidden_layers=layers)
        text = _meta(lambda config=config: Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(**config)))
        state = {f"model.{k}": v.to(torch.bfloat16) for k, v in text.state_dict().items()}
        state["lm_head.weight"] = (torch.bfloat16, (config["vocab_size"], config["hidden_size"]))
        state.update({f"visual.{k}": v.to(torch.bfloat16) for k, v in vision.state_dict().items()})
        out = {"scaled_fp8": (FP8, (0,))}
        for key, value in state.items():
            linear = key.startswith("model.layers.") and key.endswith("proj.weight")
            out[key] = (FP8, tuple(value.shape)) if linear else value
            if linear:
                out[key[: -len(".weight")] + ".scale_weight"] = (torch.float32, ())
        path = folder / f"qwen_fp8_scaled{tag}.safetensors"
        write_sparse_safetensors(path, out)
        path.with_suffix(".json").write_text(json.dumps(config))
    write_qwen_tokenizer(folder / "tokenizer")
    siglip_config = {k: v for k, v in json.loads((configs / "siglip_so400m_patch14_384.json").read_text()).items()
                     if not k.startswith("_")}
    siglip = _meta(lambda: SiglipVisionModel(SiglipVisionConfig(**siglip_config)))
    write_sparse_safetensors(folder / "siglip_fp16.safetensors",
                             {f"vision_model.{k}" if not k.startswith("vision_model.") else k: v.to(torch.float16)
                              for k, v in siglip.state_dict().items()})


# ----- one load, in a child process -----
def child(code: str, folder: Path) -> None:
    """Run in a fresh process: every load with the pack at ``code`` (a source folder), one JSON line
    each; the model is freed between loads and the peak measured from the RSS before each."""
    import gc

    sys.path.insert(0, code)
    spec = importlib.util.spec_from_file_location("real_size", ROOT / "dreamactor_core" / "testing" / "real_size.py")
    real_size = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(real_size)
    import accelerate  # noqa: F401  (imports and class registries are not the load's memory)
    import diffusers
    import transformers

    for name in ("HunyuanVideo15Transformer3DModel", "AutoencoderKLHunyuanVideo15"):
        getattr(diffusers, name)
    for name in ("Qwen2_5_VLTextModel", "T5EncoderModel", "SiglipVisionModel", "Qwen2Tokenizer"):
        getattr(transformers, name)
    for case in CASES:
        try:
            with real_size.device_reads():
                result = _load_one(real_size, case, folder)
        except Exception as error:  # the old code's failures are part of the report
            result = {"error": f"{type(error).__name__}: {error}"[:200]}
        gc.collect()
        print(json.dumps({"case": case, **result}), flush=True)


def _load_one(real_size, case: str, folder: Path) -> dict:
    import inspect

    import torch

    name, options = CASES[case]
    path = folder / f"{name}.safetensors"
    dtype = getattr(torch, options["dtype"])
    kwargs: dict = {"fp8_weights": True} if options.get("fp8") else {}
    if options["kind"] == "transformer":
        from dreamactor_core.models.loading import load_transformer as load
    elif options["kind"] == "vae":
        from dreamactor_core.models.loading import load_vae as load
    elif options["kind"] == "text":
        from dreamactor_core.conditioning.text_encoder import load_text_encoder as load

        kwargs["tokenizer_dir"] = folder / "tokenizer"
    else:
        from dreamactor_core.conditioning.image_encoder import load_image_encoder as load
    if "compute_device" in inspect.signature(load).parameters:
        kwargs["compute_device"] = "cuda"  # an encoder that computes on a GPU (in its dtype); loaded to the CPU here
    with real_size.PeakMemory(LIMIT) as peak:
        loaded = load(path, dtype=dtype, device="cpu", **kwargs)
    module = next(getattr(loaded, attr) for attr in ("transformer", "vae", "mllm", "model") if hasattr(loaded, attr))
    model_bytes = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    return {"peak": peak.anon, "hwm": peak.hwm, "model": model_bytes}


def _run_child(code: Path, folder: Path) -> dict[str, dict]:
    """All loads with the pack at ``code``. glibc's malloc keeps freed chunks below its adaptive mmap
    threshold in the heap (RSS that is no tensor); a fixed threshold makes freed tensors leave RSS, so
    the peak counts tensors, not the allocator's cache."""
    import os

    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", PYTHONPATH="")
    result = subprocess.run([sys.executable, __file__, "--child", str(code), str(folder)], capture_output=True,
                            text=True, timeout=600, env=env)
    reports = {}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            report = json.loads(line)
            reports[report.pop("case")] = report
    watchdog = [line for line in result.stdout.splitlines() if line.startswith("watchdog")]
    for case in CASES:
        reports.setdefault(case, {"error": watchdog[0] if watchdog else f"the process ended (exit {result.returncode})"})
    return reports


def _old_tree(revision: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "dreamactor_core"], capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _full_bytes(case: str, folder: Path) -> int | None:
    """The full-size model's bytes as this checkout loads it, from the full-size header."""
    import torch

    from dreamactor_core.models.checkpoints import tensor_specs
    from dreamactor_core.models.loading import load_bytes

    name, options = CASES[case]
    full = folder / f"{name}_full.safetensors"
    if not full.exists():
        return None
    if options["kind"] == "transformer":
        return load_bytes(full, "transformer", getattr(torch, options["dtype"]), True if options.get("fp8") else None)
    # the text model keeps the file's dtypes (fp8 weights, their float32 scales, bf16 embeddings and norms)
    return sum(torch.Size(shape).numel() * torch.empty((), dtype=dtype, device="meta").element_size()
               for key, (dtype, shape) in tensor_specs(full).items() if key.startswith("model."))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", help="also measure the pack at this git revision (e.g. 14d2fc9)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp) / "files"
        folder.mkdir()
        write_files(folder)
        old = _old_tree(args.old, Path(temp) / "old") if args.old else None
        print(f"{'load':40s} {'model GiB':>9s} {'peak GiB':>9s} {'ratio':>6s} {'old ratio':>10s}  full size (extrapolated)")
        news = _run_child(ROOT, folder)
        olds = _run_child(old, folder) if old else {}
        for case in CASES:
            new, before = news[case], olds.get(case)
            if "error" in new:
                print(f"{case:40s} failed: {new['error']}")
                continue
            ratio = new["peak"] / new["model"]
            old_text = "-" if before is None else (f"{before['peak'] / before['model']:.2f}" if "error" not in before
                                                   else "fails")
            full = _full_bytes(case, folder)
            extra = ""
            if full:
                peak = full + max(new["peak"] - new["model"], 0)
                extra = f"model {full / 2**30:.2f} GiB, peak {peak / 2**30:.2f} GiB, ratio {peak / full:.3f}"
            print(f"{case:40s} {new['model'] / 2**30:9.2f} {new['peak'] / 2**30:9.2f} {ratio:6.3f} {old_text:>10s}  {extra}")
            if before and "error" in before:
                print(f"{'':40s} old: {before['error'][:110]}")


if __name__ == "__main__":
    main()
