"""A small least-recently-used cache of encoder outputs.

Text encoders are the slowest part of a re-run with unchanged text (a 7B model for one prompt), and
ComfyUI re-executes a node whenever any of its inputs changes; keying embeddings by (encoder
identity, text) lets a reloaded encoder or an edited negative prompt skip the work it has done.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Hashable, TypeVar

Value = TypeVar("Value")


class EmbeddingCache:
    """``get_or_compute(key, compute)``: the stored value, or ``compute()`` stored under ``key``.

    ``hits`` and ``misses`` count lookups, so callers (and tests) can see what was reused.
    """

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, object] = OrderedDict()

    def get_or_compute(self, key: Hashable, compute: Callable[[], Value]) -> Value:
        if key in self._entries:
            self.hits += 1
            self._entries.move_to_end(key)
            return self._entries[key]  # type: ignore[return-value]
        self.misses += 1
        value = compute()
        self._entries[key] = value
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


SHARED_CACHE = EmbeddingCache()
