"""Backbone adapters and the registry that recognises a checkpoint's backbone from its keys.

Each supported open video model is one adapter module; ``ADAPTERS`` lists them. Detection reads
only the safetensors header (key names and shapes), so a wrong file is refused before loading.
"""

from __future__ import annotations

from ...errors import DreamActorError
from ..checkpoints import describe
from .base import BackboneAdapter, KeyShapes
from .hunyuan_video import HunyuanVideoI2V
from .hunyuan_video_15 import HunyuanVideo15
from .wan import WanI2V

ADAPTERS: dict[str, BackboneAdapter] = {
    adapter.name: adapter for adapter in (HunyuanVideo15(), HunyuanVideoI2V(), WanI2V())
}


def get_adapter(name: str) -> BackboneAdapter:
    """The adapter registered under ``name``."""
    try:
        return ADAPTERS[name]
    except KeyError:
        raise DreamActorError(f"backbone '{name}' is not supported; supported: {', '.join(ADAPTERS)}") from None


def detect(keys: KeyShapes, kind: str, filename: str = "checkpoint") -> BackboneAdapter:
    """The adapter whose ``kind`` ('transformer' or 'vae') matches these keys, or a clear error."""
    for adapter in ADAPTERS.values():
        if adapter.is_transformer(keys) if kind == "transformer" else adapter.is_vae(keys):
            return adapter
    supported = ", ".join(adapter.display_name for adapter in ADAPTERS.values())
    raise DreamActorError(
        f"'{filename}' is {describe(keys)}, not a {kind} the pack supports ({supported} {kind})"
    )


__all__ = ["ADAPTERS", "BackboneAdapter", "detect", "get_adapter"]
