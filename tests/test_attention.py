"""The pack's HunyuanVideo 1.5 attention: padding trimmed, a key mask instead of [S, S], a backend per
device and regional compile, each checked against diffusers' untouched forward on tiny models.

Tolerance: fp32 on the CPU. Trimming and the key mask change only which masked keys enter the
softmax (as exact zeros) and so the order of float sums; outputs of magnitude ~2 then differ by a
few ulps (measured 3e-7). ``TOL`` = 1e-5 leaves headroom; a token that wrongly takes part moves the
output by more than 1e-2 (see the mutations in the report).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from dreamactor_core.errors import DreamActorError
from dreamactor_core.models import attention
from dreamactor_core.models.backbones import get_adapter
from dreamactor_core.models.backbones.hunyuan_video_15 import trim_padding
from dreamactor_core.testing.tiny_models import build_tiny_transformer

ADAPTER = get_adapter("hunyuan_video_15")
CPU = torch.device("cpu")
TOL = dict(rtol=1e-5, atol=1e-5)
LATENT = (65, 3, 4, 8)  # 96 video tokens
VIDEO_TOKENS = 3 * 4 * 8
TEXT, GLYPH, IMAGE = 40, 16, 9  # padded lengths, as a text encoder hands them over


@pytest.fixture(scope="module")
def reference():
    return build_tiny_transformer()


@pytest.fixture
def ours(reference):
    return copy.deepcopy(reference)


def _padded_to(valid: list[int], length: int) -> torch.Tensor:
    return torch.stack([(torch.arange(length) < count).long() for count in valid])


def _conditioning(text: list[int], glyph: list[int] | None = None, image: bool = True, seed: int = 0) -> dict:
    """Text-encoder outputs padded to fixed lengths, with random (not zero) values in the padding:
    nothing of it may reach the output."""
    generator = torch.Generator().manual_seed(seed)
    batch = len(text)
    out = {"encoder_hidden_states": torch.randn(batch, TEXT, 32, generator=generator),
           "encoder_attention_mask": _padded_to(text, TEXT)}
    if glyph is not None:
        out["encoder_hidden_states_2"] = torch.randn(batch, GLYPH, 16, generator=generator)
        out["encoder_attention_mask_2"] = _padded_to(glyph, GLYPH)
    if image:
        out["image_embeds"] = torch.randn(batch, IMAGE, 16, generator=generator)
    return out


def _diffusers_kwargs(conditioning: dict) -> dict:
    """What the pack handed diffusers' forward before: one masked placeholder glyph and image token."""
    batch = conditioning["encoder_hidden_states"].shape[0]
    kwargs = dict(conditioning)
    kwargs.setdefault("encoder_hidden_states_2", torch.zeros(batch, 1, 16))
    kwargs.setdefault("encoder_attention_mask_2", torch.zeros(batch, 1))
    kwargs.setdefault("image_embeds", torch.zeros(batch, 1, 16))
    return kwargs


def _inputs(batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(batch, *LATENT, generator=generator), torch.full((batch,), 700.0)


def _diffusers(reference, conditioning: dict) -> torch.Tensor:
    latent, timestep = _inputs(conditioning["encoder_hidden_states"].shape[0])
    with torch.inference_mode():
        return reference(hidden_states=latent, timestep=timestep, return_dict=False, **_diffusers_kwargs(conditioning))[0]


def _pack(ours, conditioning: dict) -> torch.Tensor:
    batch = conditioning["encoder_hidden_states"].shape[0]
    latent, timestep = _inputs(batch)
    with torch.inference_mode():
        kwargs = ADAPTER.prepare_conditioning(ours, conditioning, batch, CPU, torch.float32)
        return ADAPTER.predict_velocity(ours, latent, timestep, kwargs)


CASES = {
    "padded text": dict(text=[7]),
    "padded text and glyph": dict(text=[7], glyph=[3]),
    "no image embedding": dict(text=[5], image=False),
    "nothing padded": dict(text=[TEXT], glyph=[GLYPH]),
    "two prompts of different lengths": dict(text=[7, 12], glyph=[3, 0]),
}


@pytest.mark.parametrize("case", CASES)
def test_forward_agrees_with_diffusers_untouched_forward(reference, ours, case):
    conditioning = _conditioning(**CASES[case])
    torch.testing.assert_close(_pack(ours, conditioning), _diffusers(reference, conditioning), **TOL)


def test_padding_is_cut_to_the_longest_prompt_and_one_prompt_needs_no_mask(ours):
    single = ADAPTER.prepare_conditioning(ours, _conditioning(text=[7], glyph=[3]), 1, CPU, torch.float32)
    assert single["encoder_hidden_states"].shape[1] == 7 and single["encoder_hidden_states_2"].shape[1] == 3
    assert single["encoder_attention_mask"].all() and single["encoder_attention_mask_2"].all()
    no_glyph = ADAPTER.prepare_conditioning(ours, _conditioning(text=[7], image=False), 1, CPU, torch.float32)
    assert no_glyph["encoder_hidden_states_2"].shape[1] == 0 and no_glyph["image_embeds"].shape[1] == 0
    pair = ADAPTER.prepare_conditioning(ours, _conditioning(text=[7, 12]), 2, CPU, torch.float32)
    assert pair["encoder_hidden_states"].shape[1] == 12
    assert pair["encoder_attention_mask"].sum(dim=1).tolist() == [7, 12]


def test_trim_puts_valid_tokens_first_in_order():
    states = torch.arange(10.0).view(1, 5, 2)
    mask = torch.tensor([[0, 1, 0, 1, 1]])
    trimmed, kept = trim_padding(states, mask)
    assert trimmed[0, :, 0].tolist() == [2.0, 6.0, 8.0] and kept.tolist() == [[1, 1, 1]]
    assert trim_padding(states, torch.zeros(1, 5), least=1)[0].shape == (1, 1, 2)


def test_token_refiner_pools_and_attends_over_valid_tokens_only(reference):
    """diffusers' refiner averages the text with the mask (and masks its attention), so the valid
    tokens' result is the same with the padding cut away: trimming is exact, not an approximation."""
    conditioning = _conditioning(text=[7])
    timestep = torch.tensor([700.0])
    with torch.inference_mode():
        padded = reference.context_embedder(conditioning["encoder_hidden_states"], timestep,
                                            conditioning["encoder_attention_mask"])
        trimmed = reference.context_embedder(conditioning["encoder_hidden_states"][:, :7], timestep,
                                             torch.ones(1, 7, dtype=torch.long))
    torch.testing.assert_close(trimmed, padded[:, :7], **TOL)


class LargeTensors(TorchDispatchMode):
    """Records every tensor an operation produces with two dimensions between ``low`` and ``high``:
    [S, S] masks and [B, heads, S, S] attention weights, not the fixed-width weight matrices."""

    def __init__(self, low: int, high: int) -> None:
        super().__init__()
        self.low, self.high, self.seen = low, high, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(tensor, torch.Tensor) and sum(self.low <= d <= self.high for d in tensor.shape) >= 2:
                self.seen.append((str(func), tuple(tensor.shape)))
        return out


@pytest.mark.parametrize("text", [[7], [7, 12]], ids=["one prompt", "two prompts"])
def test_no_tensor_of_s_by_s_elements_is_allocated(reference, ours, text):
    conditioning = _conditioning(text=text, glyph=[3] * len(text))
    longest = VIDEO_TOKENS + TEXT + GLYPH + IMAGE
    with LargeTensors(VIDEO_TOKENS, longest) as diffusers_run:
        _diffusers(reference, conditioning)
    assert any(shape[-2:] == (longest, longest) for _, shape in diffusers_run.seen)  # the check can see one
    with LargeTensors(VIDEO_TOKENS, longest) as pack_run:
        _pack(ours, conditioning)
    assert pack_run.seen == []


def test_masks_reaching_attention_are_key_masks_or_none(ours, monkeypatch):
    shapes = []
    sdpa = F.scaled_dot_product_attention

    def spy(query, key, value, attn_mask=None, **kwargs):
        shapes.append((key.shape[-2], None if attn_mask is None else tuple(attn_mask.shape)))
        return sdpa(query, key, value, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    _pack(ours, _conditioning(text=[7], glyph=[3]))
    dual = [mask for keys, mask in shapes if keys > VIDEO_TOKENS]
    assert dual == [None] * ours.config.num_layers  # one prompt: no padding, no mask
    shapes.clear()
    _pack(ours, _conditioning(text=[7, 12], glyph=[3, 0]))
    length = VIDEO_TOKENS + 12 + 3 + IMAGE
    assert [mask for keys, mask in shapes if keys > VIDEO_TOKENS] == [(2, 1, 1, length)] * ours.config.num_layers


# ----- backend and compile -----

def _backend_calls(monkeypatch) -> list[str]:
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    calls: list[str] = []
    for name, function in list(_AttentionBackendRegistry._backends.items()):
        def recording(*args, _name=name.value, _function=function, **kwargs):
            calls.append(_name)
            return _function(*args, **kwargs)
        monkeypatch.setitem(_AttentionBackendRegistry._backends, name, recording)
    return calls


@pytest.mark.parametrize("choice, backend", [("auto", "native"), ("sdpa_math", "_native_math"), ("sdpa", "native")])
def test_the_chosen_backend_reaches_every_dual_block_attention(ours, monkeypatch, choice, backend):
    calls = _backend_calls(monkeypatch)
    conditioning = _conditioning(text=[7])
    with attention.configured(ours, choice) as used:
        result = _pack(ours, conditioning)
    assert used == backend and calls == [backend] * ours.config.num_layers
    processor = ours.transformer_blocks[0].attn.processor
    assert processor._attention_backend is None  # restored: the cached model is left as it was
    torch.testing.assert_close(result, _pack(ours, conditioning), **TOL)


def test_a_padded_batch_falls_back_to_sdpa_where_a_backend_ignores_masks(ours, monkeypatch):
    calls = _backend_calls(monkeypatch)
    processor = attention.install(ours)
    processor._attention_backend = "flash"  # never called: the mask would be dropped
    _pack(ours, _conditioning(text=[7, 12]))
    assert calls == ["native"] * ours.config.num_layers


def test_backend_choice_errors_name_the_input():
    with pytest.raises(DreamActorError, match="attention: expected one of"):
        attention.resolve_backend("fastest", "cpu", torch.float32)
    assert attention.resolve_backend("auto", "cuda", torch.float32) == "native"  # flash kernels need half precision
    if not attention.backend_available("sage"):
        with pytest.raises(DreamActorError, match="sageattention"):
            attention.resolve_backend("sage", "cuda", torch.bfloat16)


def test_compiled_blocks_trace_whole_and_agree(ours, monkeypatch):
    """Regional compile, traced with dynamo's "eager" backend and fullgraph (a graph break fails):
    the key-mask processor compiles inside each block; the flag restores eager blocks after."""
    monkeypatch.setattr(attention, "COMPILE_OPTIONS", {"backend": "eager", "fullgraph": True})
    conditioning = _conditioning(text=[7, 12])
    eager = _pack(ours, conditioning)
    torch._dynamo.reset()
    with attention.configured(ours, "auto", compile_blocks=True):
        assert all(block._compiled_call_impl is not None for block in ours.transformer_blocks)
        compiled = _pack(ours, conditioning)
    assert all(block._compiled_call_impl is None for block in ours.transformer_blocks)
    torch.testing.assert_close(compiled, eager, **TOL)


@pytest.mark.slow
def test_inductor_compiled_blocks_agree(monkeypatch):
    """The real option (inductor) on a one-block model: about a minute on two CPU cores."""
    from dreamactor_core.testing.tiny_models import TINY_TRANSFORMER_CONFIGS

    torch.manual_seed(0)
    model = ADAPTER.transformer_cls()(**{**TINY_TRANSFORMER_CONFIGS["hunyuan_video_15"], "num_layers": 1}).eval()
    conditioning = _conditioning(text=[7])
    eager = _pack(model, conditioning)
    with attention.configured(model, "auto", compile_blocks=True):
        compiled = _pack(model, conditioning)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)  # inductor fuses and reorders sums
