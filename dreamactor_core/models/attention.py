"""Attention for the pack's HunyuanVideo 1.5 transformer: O(S) masks, a backend per device, compile.

diffusers' ``HunyuanVideo15AttnProcessor2_0`` turns the text-token mask into a full [B, 1, S, S]
boolean mask for every block (S = video tokens + every text, glyph and image token): 3.2 GB at the
shipped defaults. Padded text tokens only ever need to be hidden as *keys*: the video tokens (the
only output) never see them, and what the padded rows compute is thrown away. So the pack's
processor passes a key-padding mask [B, 1, 1, S], and none at all when no token is padded (the
adapter trims padding to the longest prompt in the batch, so a batch of one has none); ComfyUI's
own HunyuanVideo 1.5 does the same with a [1, 1, S] additive key mask.

The attention kernel goes through diffusers' attention dispatcher (``attention_dispatch``), so
SDPA (flash / memory-efficient / cuDNN chosen by torch), FlashAttention 2/3 and SageAttention are
one name each; ``auto`` picks per device. Regional ``torch.compile`` compiles each dual-stream
block, as diffusers' ``compile_repeated_blocks`` does, without renaming any weight.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
from typing import Iterator

import torch
import torch.nn.functional as F

from ..errors import DreamActorError

# Widget/flag name -> diffusers AttentionBackendName value ("auto" is resolved by ``resolve_backend``).
BACKENDS: dict[str, str] = {
    "sdpa": "native",  # torch picks flash / memory-efficient / cuDNN / math itself
    "sdpa_flash": "_native_flash",
    "sdpa_efficient": "_native_efficient",
    "sdpa_cudnn": "_native_cudnn",
    "sdpa_math": "_native_math",
    "flash_attn": "flash",  # the flash-attn package (FlashAttention 2)
    "flash_attn_3": "_flash_3",  # flash_attn_interface (FlashAttention 3, Hopper)
    "sage": "sage",  # sageattention (8-bit QK: fast, approximate)
}
ATTENTION_CHOICES: tuple[str, ...] = ("auto", *BACKENDS)
# Backends that honour an attention mask; the others would silently drop it (diffusers filters
# unsupported arguments), so a padded batch falls back to SDPA there.
_MASKED_BACKENDS = {"native", "_native_efficient", "_native_cudnn", "_native_math"}
# Python packages each optional backend needs.
_BACKEND_PACKAGES = {"flash": "flash_attn", "_flash_3": "flash_attn_interface", "sage": "sageattention"}
_HALF = (torch.float16, torch.bfloat16)


def backend_available(backend: str) -> bool:
    """True when the diffusers backend's package is installed (torch's own need nothing)."""
    package = _BACKEND_PACKAGES.get(backend)
    return package is None or importlib.util.find_spec(package) is not None


def resolve_backend(choice: str, device: torch.device | str, dtype: torch.dtype) -> str:
    """The diffusers backend for an ``ATTENTION_CHOICES`` name on ``device`` at ``dtype``.

    ``auto``: FlashAttention 3, then 2, when installed and the GPU computes in fp16/bf16; else
    torch's SDPA (which itself picks flash or memory-efficient kernels on CUDA). SageAttention is
    never chosen automatically: it quantises Q and K to 8 bits, which changes the result.
    """
    if choice not in ATTENTION_CHOICES:
        raise DreamActorError(f"attention: expected one of {', '.join(ATTENTION_CHOICES)}, got '{choice}'")
    if choice != "auto":
        backend = BACKENDS[choice]
        if not backend_available(backend):
            raise DreamActorError(f"attention '{choice}' needs the Python package '{_BACKEND_PACKAGES[backend]}': "
                                  "install it or choose 'auto' or 'sdpa'")
        return backend
    if torch.device(device).type == "cuda" and dtype in _HALF:
        for backend in ("_flash_3", "flash"):
            if backend_available(backend):
                return backend
    return "native"


class KeyMaskAttnProcessor:
    """HunyuanVideo 1.5's joint (video + text) attention with a key-padding mask.

    Same projections, QK norms and RoPE as diffusers' ``HunyuanVideo15AttnProcessor2_0``; only the
    mask differs: [B, 1, 1, S] (or None when ``padded`` is False) instead of [B, 1, S, S]. One
    instance serves every block of a model; ``padded`` is set once per forward by ``install``'s
    pre-hook from the forward's inputs, so no block waits on the GPU to inspect the mask.
    """

    _attention_backend: str | None = None  # diffusers' dispatcher backend; None = its active default
    _parallel_config = None

    def __init__(self) -> None:
        self.padded = True  # safe default: apply the key mask

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None,
                 image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        from diffusers.models.attention_dispatch import dispatch_attention_fn
        from diffusers.models.embeddings import apply_rotary_emb

        query, key, value = (projection(hidden_states).unflatten(2, (attn.heads, -1))
                             for projection in (attn.to_q, attn.to_k, attn.to_v))
        query, key = attn.norm_q(query), attn.norm_k(key)
        if image_rotary_emb is not None:
            query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
            key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)
        text_tokens = 0
        if encoder_hidden_states is not None:
            text_tokens = encoder_hidden_states.shape[1]
            text_query, text_key, text_value = (projection(encoder_hidden_states).unflatten(2, (attn.heads, -1))
                                                for projection in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj))
            if attn.norm_added_q is not None:
                text_query = attn.norm_added_q(text_query)
            if attn.norm_added_k is not None:
                text_key = attn.norm_added_k(text_key)
            query, key, value = (torch.cat(pair, dim=1) for pair in
                                 ((query, text_query), (key, text_key), (value, text_value)))

        mask, backend = None, self._attention_backend
        if attention_mask is not None and self.padded:
            # Video tokens first, always valid: pad the text mask on the left to the full length.
            mask = F.pad(attention_mask.bool(), (query.shape[1] - attention_mask.shape[1], 0), value=True)
            mask = mask[:, None, None, :]
            if backend is not None and backend not in _MASKED_BACKENDS:
                backend = "native"
        out = dispatch_attention_fn(query, key, value, attn_mask=mask, dropout_p=0.0, is_causal=False,
                                    backend=backend, parallel_config=self._parallel_config)
        out = out.flatten(2, 3).to(query.dtype)
        if encoder_hidden_states is None:
            return out, None
        out, text_out = out[:, :out.shape[1] - text_tokens], out[:, out.shape[1] - text_tokens:]
        out = attn.to_out[1](attn.to_out[0](out))
        return out, attn.to_add_out(text_out)


def _padded(kwargs: dict) -> bool:
    """Whether any text, glyph or image token of this forward is masked, by the rules of diffusers'
    ``HunyuanVideo15Transformer3DModel.forward`` (image tokens are all masked when every image
    embedding is zero). Anything unexpected counts as padded: the mask is then applied, which is
    always correct."""
    try:
        image = kwargs["image_embeds"]
        image_masked = image.shape[1] > 0 and not bool(image.any())
        return image_masked or not all(bool(kwargs[name].bool().all())
                                       for name in ("encoder_attention_mask", "encoder_attention_mask_2"))
    except (KeyError, AttributeError, TypeError):
        return True


def install(transformer: torch.nn.Module) -> KeyMaskAttnProcessor:
    """Give every dual-stream block of a diffusers HunyuanVideo 1.5 transformer the key-mask
    processor (idempotent); returns the model's one processor instance. Weights are untouched;
    the token refiner keeps diffusers' own attention (its mask covers text tokens only)."""
    blocks = getattr(transformer, "transformer_blocks", None)
    if not blocks:
        raise DreamActorError(f"attention: {type(transformer).__name__} has no transformer_blocks to equip")
    current = blocks[0].attn.processor
    if isinstance(current, KeyMaskAttnProcessor):
        return current
    processor = KeyMaskAttnProcessor()
    for block in blocks:
        block.attn.set_processor(processor)
    signature = inspect.signature(transformer.forward)

    def set_padding(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        try:
            named = signature.bind(*args, **kwargs).arguments
        except TypeError:
            named = {}
        processor.padded = _padded(named)

    transformer.register_forward_pre_hook(set_padding, with_kwargs=True)
    return processor


# Keyword arguments of each block's ``torch.compile`` (tests trace with the "eager" backend).
COMPILE_OPTIONS: dict = {}


def _dispatching_processors(transformer: torch.nn.Module) -> list:
    """The attention processors that call diffusers' dispatcher (they carry ``_attention_backend``)."""
    seen: dict[int, object] = {}
    for module in transformer.modules():
        processor = getattr(module, "processor", None)
        if processor is not None and hasattr(processor, "_attention_backend"):
            seen.setdefault(id(processor), processor)
    return list(seen.values())


def repeated_blocks(transformer: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's stacked blocks: members of a ``ModuleList`` whose class diffusers names in
    ``_repeated_blocks`` (for HunyuanVideo 1.5 the 54 dual-stream blocks), the regions to compile."""
    names = set(getattr(transformer, "_repeated_blocks", ()) or ())
    return [block for module in transformer.modules() if isinstance(module, torch.nn.ModuleList)
            for block in module if type(block).__name__ in names]


@contextlib.contextmanager
def configured(transformer: torch.nn.Module, attention: str = "auto", compile_blocks: bool = False) -> Iterator[str]:
    """Run the transformer with the ``attention`` backend (and, with ``compile_blocks``, each
    repeated block under ``torch.compile``) inside the ``with`` block. The previous backend and
    compile state come back on the way out, also on error or interrupt, so a cached model shared by
    other ComfyUI branches is left as it was. Yields the diffusers backend name in use.

    A HunyuanVideo 1.5 transformer gets the key-mask processor first (``install``). Compiled
    blocks are kept on the blocks and reused by later runs (compiling costs minutes at the real
    size; a new text length recompiles once, then dynamo marks it dynamic); they run only while
    ``compile_blocks`` is on.
    """
    parameter = next(transformer.parameters())
    backend = resolve_backend(attention, parameter.device, parameter.dtype)
    if type(transformer).__name__ == "HunyuanVideo15Transformer3DModel":
        install(transformer)
    processors = _dispatching_processors(transformer)
    previous_backends = [processor._attention_backend for processor in processors]
    blocks = repeated_blocks(transformer)
    previous_compiled = [block._compiled_call_impl for block in blocks]
    try:
        for processor in processors:
            processor._attention_backend = backend
        for block in blocks:
            if compile_blocks and getattr(block, "_dreamactor_compiled", None) is None:
                block.compile(**COMPILE_OPTIONS)
                block._dreamactor_compiled = block._compiled_call_impl
            block._compiled_call_impl = block._dreamactor_compiled if compile_blocks else None
        yield backend
    finally:
        for processor, previous in zip(processors, previous_backends):
            processor._attention_backend = previous
        for block, compiled in zip(blocks, previous_compiled):
            block._compiled_call_impl = compiled
