"""The one progress hook every long-running engine function accepts.

A hook is called as ``hook(done, total)`` after each unit of work (a frame, a tile, a sampler step).
It may raise to interrupt: ComfyUI's adapter raises its interrupt exception from the hook, and the
engine guarantees that state it changed (patched weights, offloaded blocks) is restored on the way out.
"""

from __future__ import annotations

from typing import Callable, Optional

ProgressHook = Callable[[int, int], None]


def report(hook: Optional[ProgressHook], done: int, total: int) -> None:
    """Call ``hook`` if one was given."""
    if hook is not None:
        hook(done, total)
