"""Loading never holds two copies, every weight owns its storage, a load that cannot fit is refused
before any weight is read, the precision rule (issue 13).

The peak test loads a mid-size HunyuanVideo 1.5 transformer (real head width, ~190 MB in bf16)
from a sparse float32 file in a fresh process, with every read copied into anonymous memory as a
GPU load holds it (``real_size.device_reads``), and measures the anonymous RSS above the start.
Bound: 1.05 x the model + the largest tensor of the file (the tensor in hand while it is cast).
The old whole-state-dict load holds the float32 dict (2x the bf16 model) plus the model: 3x.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dreamactor_core.errors import DreamActorError
from dreamactor_core.models import streaming
from dreamactor_core.models.loading import load_bytes, load_transformer
from dreamactor_core.models.precision import choose_dtype, encoder_dtype
from dreamactor_core.testing.tiny_models import write_tiny_models

ROOT = Path(__file__).resolve().parents[1]
PEAK_CHILD = r"""
import json, sys
import torch
from dreamactor_core.models.loading import load_transformer
from dreamactor_core.testing import real_size
import diffusers, accelerate  # imports are not the load's memory
diffusers.HunyuanVideo15Transformer3DModel
with real_size.device_reads(), real_size.PeakMemory(limit=4 * 1024**3) as peak:
    model = load_transformer(sys.argv[1], dtype=torch.bfloat16).transformer
state = model.state_dict()
print(json.dumps({"peak": peak.anon, "model": sum(t.numel() * t.element_size() for t in state.values())}))
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_models(tmp_path_factory.mktemp("models"))


def _mid_size_file(path: Path) -> int:
    """A sparse float32 HV1.5 file, ComfyUI names, 1024 wide (8 heads of 128), 2 blocks; returns the
    largest tensor's bytes."""
    from dreamactor_core.models.backbones import get_adapter
    from dreamactor_core.testing.real_size import write_sparse_safetensors

    adapter = get_adapter("hunyuan_video_15")
    config = adapter.shipped_config(adapter.transformer_config_file) | {
        "num_attention_heads": 8, "num_layers": 2, "text_embed_dim": 1024, "text_embed_2_dim": 256,
        "image_embed_dim": 256}
    with torch.device("meta"):
        model = adapter.transformer_cls()(**config)
    state = adapter.to_comfy_names(adapter.to_original_names(model.state_dict()))
    write_sparse_safetensors(path, {f"model.diffusion_model.{k}": v for k, v in state.items()})
    return max(v.numel() * v.element_size() for v in state.values())


def test_a_load_holds_the_model_plus_one_tensor(tmp_path):
    path = tmp_path / "mid_hv15_fp32.safetensors"
    largest = _mid_size_file(path)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", PEAK_CHILD, str(path)], capture_output=True, text=True,
                            timeout=300, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["model"] > 100 * 2**20  # mid-size: far above one tensor and the process's noise
    assert report["peak"] <= 1.05 * report["model"] + largest, report


def test_every_weight_owns_its_storage(tiny):
    """Fused q/k/v split into three, halves swapped: no weight is a view into another (issue 12)."""
    for key in ("transformer", "transformer_comfy"):
        state = load_transformer(tiny[key]).transformer.state_dict()
        pointers = [t.untyped_storage().data_ptr() for t in state.values() if t.numel()]
        assert len(pointers) == len(set(pointers))
        assert all(t.storage_offset() == 0 and t.untyped_storage().nbytes() == t.numel() * t.element_size()
                   for t in state.values())


def test_a_model_that_cannot_fit_is_refused_before_any_weight_is_read(tiny, monkeypatch):
    needed = load_bytes(tiny["transformer_comfy"], "transformer", torch.bfloat16)
    assert needed == load_transformer(tiny["transformer_comfy"], dtype=torch.bfloat16).transformer.num_parameters() * 2

    def read(self):
        raise AssertionError("a weight was read before the size check")

    monkeypatch.setattr(streaming.Deferred, "materialize", read)
    with pytest.raises(DreamActorError, match=r"tiny_hunyuan_video_15_comfy\.safetensors.*needs 0\.0\d GiB.*available"):
        load_transformer(tiny["transformer_comfy"], dtype=torch.bfloat16, max_bytes=needed - 1)


def test_the_vision_tower_and_lm_head_of_a_text_encoder_file_are_never_read(tmp_path, monkeypatch):
    from dreamactor_core.conditioning.text_encoder import load_text_encoder
    from dreamactor_core.models import fp8
    from dreamactor_core.testing.tiny_encoders import write_tiny_encoders

    files = write_tiny_encoders(tmp_path / "text", tmp_path / "vision")
    read: set[str] = set()
    materialize = streaming.Deferred.materialize

    def spy(self):
        read.update(self.sources)
        return materialize(self)

    monkeypatch.setattr(streaming.Deferred, "materialize", spy)
    encoder = load_text_encoder(files["qwen_fp8"], tokenizer_dir=files["tokenizer"])
    assert read and not any(key.startswith(("visual.", "lm_head.")) for key in read)
    assert any(isinstance(m, fp8.ScaledFP8Linear) and m.weight.dtype == torch.float8_e4m3fn
               for m in encoder.mllm.modules())  # kept fp8, scaled as it runs


def test_precision_rule():
    assert choose_dtype("auto", "cpu") == torch.float32
    assert choose_dtype("auto", "cuda", bf16_supported=True, fp16_supported=True) == torch.bfloat16
    assert choose_dtype("auto", "cuda", bf16_supported=False, fp16_supported=True) == torch.float16
    assert choose_dtype("auto", "cuda", bf16_supported=False, fp16_supported=False) == torch.float32
    assert choose_dtype("fp16", "cpu") == torch.float16
    with pytest.raises(DreamActorError, match="precision"):
        choose_dtype("fp8", "cuda")
    assert encoder_dtype(torch.bfloat16, "cpu") == torch.float32
    assert encoder_dtype(torch.float16, "cpu") == torch.float32
    assert encoder_dtype(torch.bfloat16, "cuda") == torch.bfloat16
    assert encoder_dtype(torch.float64, "cpu") == torch.float64


def test_fp16_transformer_blocks_keep_the_residual_stream_finite(tiny):
    model = load_transformer(tiny["transformer"], dtype=torch.float16).transformer
    block = model.transformer_blocks[0]
    hook = next(iter(block._forward_hooks.values()))
    out = hook(block, (), (torch.tensor([float("inf"), float("nan")], dtype=torch.float16), None))
    assert out[0].tolist() == [65504.0, 0.0] and out[1] is None
    assert not load_transformer(tiny["transformer"], dtype=torch.bfloat16).transformer.transformer_blocks[0]._forward_hooks
