"""Real-size checkpoints without real weights, and the peak memory of loading them (bench, tests).

A ``.safetensors`` file is an 8-byte header length, a JSON header (dtype, shape, byte offsets per
tensor) and the raw bytes. Writing the header for a model's real names and shapes and truncating
the file to its full size gives a sparse file of zeros: the real layout at the real size, no disk,
no time (see ../shared/real-size-testing.md). ``PeakMemory`` measures what a load holds: the
process's anonymous resident memory (RssAnon: a memory-mapped file's page cache is RssFile and is
not a copy), sampled by a thread that also ends the process above a limit. ``PeakMemory`` needs
nothing from the package, so a benchmark can load this file by path next to an older checkout.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import torch


def write_sparse_safetensors(path: str | Path, specs: Mapping[str, torch.Tensor | tuple[torch.dtype, tuple[int, ...]]],
                             metadata: Mapping[str, str] | None = None) -> int:
    """Write a zero-filled sparse ``.safetensors`` for ``specs`` (name -> meta tensor or (dtype,
    shape)); returns the file size."""
    from ..models.checkpoints import SAFETENSORS_DTYPES

    names = {dtype: name for name, dtype in SAFETENSORS_DTYPES.items()}
    header: dict = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    for name, spec in specs.items():
        dtype, shape = (spec.dtype, tuple(spec.shape)) if isinstance(spec, torch.Tensor) else spec
        size = torch.Size(shape).numel() * torch.empty((), dtype=dtype, device="meta").element_size()
        header[name] = {"dtype": names[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path = Path(path)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + offset)
    return path.stat().st_size


def _status() -> dict[str, int]:
    """/proc/self/status memory lines in bytes (Linux)."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM", "RssAnon", "RssFile")):
            name, amount = line.split(":", 1)
            values[name] = int(amount.split()[0]) * 1024
    return values


class PeakMemory:
    """``with PeakMemory(limit) as peak: ...`` then ``peak.anon``: the highest RssAnon seen above the
    value at entry (sampled every ``interval`` s), ``peak.hwm``: the kernel's peak RSS (VmHWM, page
    cache of mapped files included) above the RSS at entry. Above ``limit`` bytes of RSS the process
    ends (exit 137) instead of taking the machine down."""

    def __init__(self, limit: int = 10 * 1024**3, interval: float = 0.002) -> None:
        self.limit, self.interval = limit, interval
        self.anon = self.hwm = 0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakMemory":
        try:  # reset VmHWM to the current RSS (Linux >= 4.0)
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        start = _status()
        self._anon0, self._rss0 = start["RssAnon"], start["VmRSS"]
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        now = _status()
        self.anon = max(self.anon, now["RssAnon"] - self._anon0)
        if now["VmRSS"] > self.limit:
            print(f"watchdog: RSS {now['VmRSS'] / 2**30:.2f} GiB above the {self.limit / 2**30:.2f} GiB limit", flush=True)
            os._exit(137)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.hwm = _status()["VmHWM"] - self._rss0


class _CopyingSafeOpen:
    """``safetensors.safe_open`` whose tensors are copies in anonymous memory."""

    real = None

    def __init__(self, *args, **kwargs) -> None:
        self._inner = _CopyingSafeOpen.real(*args, **kwargs)

    def __enter__(self) -> "_CopyingSafeOpen":
        self._inner.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._inner.__exit__(*exc)

    def get_tensor(self, name: str) -> torch.Tensor:
        return self._inner.get_tensor(name).clone()

    def get_tensors(self) -> dict[str, torch.Tensor]:
        return {name: self.get_tensor(name) for name in self._inner.keys()}

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


@contextmanager
def device_reads() -> Iterator[None]:
    """Every tensor read with safetensors is a copy in anonymous memory, as a load to a GPU holds it.
    On the CPU a read tensor is the memory-mapped file's page cache (RssFile), which would hide a
    second copy from an RSS measurement."""
    import safetensors
    import safetensors.torch

    _CopyingSafeOpen.real = saved = safetensors.safe_open
    safetensors.safe_open = safetensors.torch.safe_open = _CopyingSafeOpen
    try:
        yield
    finally:
        safetensors.safe_open = safetensors.torch.safe_open = saved
