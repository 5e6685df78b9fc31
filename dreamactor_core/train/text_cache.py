"""Prompt embeddings computed once and kept on disk, so the text encoder (a 7B model for
HunyuanVideo 1.5) is loaded only to encode prompts not seen before, and freed before training."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from ..conditioning.text_encoder import HunyuanVideo15TextEncoder
from ..conditioning.types import Conditioning
from .files import replacing, settings_key

TEXT_FORMAT = "dreamactor-text-1"


class TextEmbeddings:
    """Embeddings by prompt, stored under ``cache_dir/text``; ``identity`` names the encoder files
    (path, size, modification time), so another or a replaced encoder never reuses old entries."""

    def __init__(self, cache_dir: Path, identity: str) -> None:
        self.folder = Path(cache_dir) / "text"
        self.identity = identity
        self._read: dict[str, Conditioning] = {}  # prompts already read: a step reads no file

    def path(self, prompt: str) -> Path:
        return self.folder / f"{settings_key(TEXT_FORMAT, self.identity, prompt)}.safetensors"

    def prepare(self, prompts: Iterable[str], load_encoder: Callable[[], HunyuanVideo15TextEncoder],
                log: Callable[[str], None] = print) -> int:
        """Encode the prompts missing from the cache (loading the encoder only if any are); returns
        how many were encoded. The encoder is dropped afterwards."""
        from safetensors.torch import save_file

        missing = sorted({prompt for prompt in prompts if not self.path(prompt).is_file()})
        if not missing:
            return 0
        log(f"encoding {len(missing)} prompt(s)")
        encoder = load_encoder()
        for prompt in missing:
            tensors = {key: value.detach().cpu().contiguous() for key, value in encoder.encode(prompt).tensors.items()}
            with replacing(self.path(prompt)) as temporary:
                save_file(tensors, str(temporary), metadata={"format": TEXT_FORMAT})
        del encoder
        return len(missing)

    def get(self, prompt: str) -> Conditioning:
        """The prompt's conditioning as the encoder returned it (a ``Conditioning``, so the reference
        embedding joins it through ``image_encoder.with_reference_embedding``, as at inference)."""
        from safetensors.torch import load_file

        if prompt not in self._read:
            self._read[prompt] = Conditioning(HunyuanVideo15TextEncoder.backbone, prompt, load_file(str(self.path(prompt))))
        return self._read[prompt]
