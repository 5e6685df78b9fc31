"""Step cache: skip most of a transformer forward when its first block predicts little change.

diffusers' First Block Cache (``diffusers.hooks.FirstBlockCacheConfig``, through the model's
``CacheMixin.enable_cache``) runs the first transformer block of every forward and compares its
residual with the one of the last full forward; when the relative change is below ``threshold`` the
other blocks are skipped and their cached residual is added instead. Embedders and the output layer
always run, so the timestep and the new latent still reach the result. This is a well-kept library
implementation (ParaAttention's FBCache, TeaCache's idea) and keeps its state per ``cache_context``
name, so each guidance branch and temporal window compares with its own previous forward.

HunyuanVideo 1.5's block class is not in diffusers' block registry; it is registered here through
``diffusers.hooks._helpers`` (a private module; its ``register``/``get`` and ``TransformerBlockMetadata``
are the same in diffusers 0.36, the pack's minimum, and 0.42, checked in both wheels).
Where that registry or the cache is missing, asking for the cache is a clear error; ``cache_threshold``
0 (the default) never touches either.

The cache lives for one sampling run: hooks are added on entry and removed on exit (also on error or
interrupt), so no state leaks into the next run and the loaded model is left as it was.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from ..errors import DreamActorError

# Block lists diffusers' caches walk, in its order (diffusers.hooks._common).
_BLOCK_LISTS = ("transformer_blocks", "single_transformer_blocks", "blocks")


def _block_lists(transformer: torch.nn.Module) -> list[torch.nn.ModuleList]:
    return [module for name, module in transformer.named_children()
            if name in _BLOCK_LISTS and isinstance(module, torch.nn.ModuleList)]


def _register_blocks(transformer: torch.nn.Module) -> None:
    """Make every block class of ``transformer`` known to diffusers' block registry: HunyuanVideo
    1.5's returns (hidden_states, encoder_hidden_states), as its forward shows."""
    try:
        from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
    except ImportError:
        raise DreamActorError("cache_threshold: this diffusers version has no block registry for the step cache "
                              "(diffusers.hooks._helpers); set cache_threshold to 0 or update diffusers") from None
    own = {"HunyuanVideo15TransformerBlock": TransformerBlockMetadata(return_hidden_states_index=0,
                                                                       return_encoder_hidden_states_index=1)}
    for block_class in {type(block) for blocks in _block_lists(transformer) for block in blocks}:
        try:
            TransformerBlockRegistry.get(block_class)
        except ValueError:
            if block_class.__name__ not in own:
                raise DreamActorError(f"cache_threshold: the step cache does not know {block_class.__name__} "
                                      "blocks; set cache_threshold to 0") from None
            TransformerBlockRegistry.register(block_class, own[block_class.__name__])


class StepCache:
    """First-block caching for one sampling run (``threshold`` 0: off, every forward runs whole).

    Use as a context manager around the run and ``context(name)`` around each forward, one name per
    guidance branch and temporal window. ``computed`` counts the forwards that ran every block.
    """

    def __init__(self, transformer: torch.nn.Module, threshold: float) -> None:
        if threshold < 0:
            raise DreamActorError(f"cache_threshold: expected 0 (off) or a positive relative change, got {threshold}")
        self.transformer, self.threshold = transformer, float(threshold)
        self.computed = 0
        self._counter: torch.utils.hooks.RemovableHandle | None = None

    @property
    def enabled(self) -> bool:
        return self.threshold > 0

    def __enter__(self) -> "StepCache":
        if not self.enabled:
            return self
        try:
            from diffusers.hooks import FirstBlockCacheConfig
        except ImportError:
            raise DreamActorError("cache_threshold: this diffusers version has no First Block Cache; set "
                                  "cache_threshold to 0 or update diffusers") from None
        lists = _block_lists(self.transformer)
        if sum(len(blocks) for blocks in lists) < 2 or not hasattr(self.transformer, "enable_cache"):
            raise DreamActorError("cache_threshold: the step cache needs a diffusers transformer with at least two "
                                  "blocks; set cache_threshold to 0")
        _register_blocks(self.transformer)
        if self.transformer.is_cache_enabled:  # left behind by code outside the pack: start clean
            self.transformer.disable_cache()
        self.transformer.enable_cache(FirstBlockCacheConfig(threshold=self.threshold))
        # The last block runs its own forward only when the cache decides to compute: count those.
        tail = lists[-1][-1]
        self._counter = next(tail.children()).register_forward_hook(lambda *_: self._count())
        return self

    def _count(self) -> None:
        self.computed += 1

    def __exit__(self, *exc) -> None:
        if self._counter is not None:
            self._counter.remove()
            self._counter = None
            self.transformer.disable_cache()

    @contextlib.contextmanager
    def context(self, name: str) -> Iterator[None]:
        """The cache state of one branch/window (a no-op when the cache is off)."""
        if not self.enabled:
            yield
            return
        with self.transformer.cache_context(name):
            yield
