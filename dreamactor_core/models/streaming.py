"""Loading a checkpoint one tensor at a time: deferred tensors and filling a meta-device model.

A whole state dict in memory next to the model it fills is two copies (issue 13: 2.00x the model
bytes at load). Here every tensor of a ``.safetensors`` file starts as a ``Deferred``: a meta
tensor (shape and dtype only) that remembers how to make its value. The backbones' key
conversions run unchanged on these (renames, q/k/v splits, half swaps and any other torch op are
recorded, not computed), so the config and the converted names are known from the header alone,
and each converted weight is read, converted, cast and moved to the device only when the model is
filled, then dropped before the next one: a load holds the model plus one tensor.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch

from ..errors import DreamActorError

Recipe = Callable[[], torch.Tensor]


class Deferred(torch.Tensor):
    """A meta tensor plus the recipe of its real value; torch ops on it give more ``Deferred``.

    ``sources`` names the file tensors the value is made from (a q/k/v split part has its fused
    tensor's name), so per-tensor metadata such as an fp8 scale follows a weight through a
    conversion.
    """

    _recipe: Recipe
    sources: frozenset

    @staticmethod
    def __new__(cls, meta: torch.Tensor, recipe: Recipe, sources: frozenset) -> "Deferred":
        self = torch.Tensor._make_subclass(cls, meta)
        self._recipe, self.sources = recipe, sources
        return self

    def materialize(self) -> torch.Tensor:
        """The real tensor (read from the file and converted now; nothing is cached)."""
        return self._recipe()

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        with torch._C.DisableTorchFunctionSubclass():
            result = func(*args, **kwargs)
        if isinstance(result, Deferred):  # an identity op (a no-op .to or .contiguous) returned its input
            return result
        sources = frozenset().union(*(d.sources for d in _deferred_in((args, kwargs))))

        def compute() -> Any:
            return func(*_real(args), **_real(kwargs))

        if isinstance(result, torch.Tensor):
            return Deferred(result, compute, sources)
        if isinstance(result, (tuple, list)) and result and all(isinstance(r, torch.Tensor) for r in result):
            return type(result)(Deferred(r, _item(compute, i), sources) for i, r in enumerate(result))
        return result


def _item(compute: Callable[[], Any], index: int) -> Recipe:
    return lambda: compute()[index]


def _deferred_in(value: Any) -> Iterator[Deferred]:
    if isinstance(value, Deferred):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _deferred_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _deferred_in(item)


def _real(value: Any) -> Any:
    if isinstance(value, Deferred):
        return value.materialize()
    if isinstance(value, (tuple, list)):
        return type(value)(_real(item) for item in value)
    if isinstance(value, dict):
        return {key: _real(item) for key, item in value.items()}
    return value


def real(tensor: torch.Tensor) -> torch.Tensor:
    """The value of a deferred tensor, or the tensor itself."""
    return tensor.materialize() if isinstance(tensor, Deferred) else tensor


@contextmanager
def deferred_file(path: str | Path) -> Iterator[dict[str, Deferred]]:
    """Every tensor of a checked ``.safetensors`` file as a ``Deferred`` (read on materialize while
    the context is open). The file is memory-mapped by safetensors: reading one tensor copies it
    out of the page cache, nothing else."""
    from safetensors import SafetensorError, safe_open

    from .checkpoints import tensor_specs

    path = Path(path)
    specs = tensor_specs(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            def reader(key: str) -> Recipe:
                def read() -> torch.Tensor:
                    try:
                        return handle.get_tensor(key)
                    except SafetensorError as error:
                        raise DreamActorError(f"'{path.name}': tensor '{key}' could not be read: {error}") from None
                return read

            yield {key: Deferred(torch.empty(shape, dtype=dtype, device="meta"), reader(key), frozenset([key]))
                   for key, (dtype, shape) in specs.items()}
    except SafetensorError as error:
        raise DreamActorError(f"'{path.name}' could not be read as safetensors: {error}") from None


def own_storage(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` itself when it is the only user of its storage, else a copy: a weight left as a
    view (a q/k/v split part, a slice of a file buffer) would keep its whole parent alive and
    share one storage with its siblings (issue 12)."""
    whole = tensor.storage_offset() == 0 and tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
    return tensor if whole and tensor.is_contiguous() else tensor.clone(memory_format=torch.contiguous_format)


def stored_bytes(state: Mapping[str, torch.Tensor], dtype: torch.dtype, keep: Iterable[str] = ()) -> int:
    """Bytes the model will hold for ``state`` filled by ``fill`` (header shapes, no data read)."""
    keep = set(keep)
    total = 0
    for key, tensor in state.items():
        cast = tensor.dtype if key in keep or not tensor.is_floating_point() else dtype
        total += tensor.numel() * torch.empty((), dtype=cast, device="meta").element_size()
    return total


def check_fits(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str, what: str,
               strict: bool = True) -> None:
    """Names and shapes of ``state`` against the model's, before anything is read: a wrong file
    fails here with the names, never halfway through a load."""
    expected = model.state_dict(keep_vars=True)
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected] if strict else []
    if missing or unexpected:
        raise DreamActorError(f"'{source}' does not fit {what}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    wrong = [f"{key} {tuple(state[key].shape)} (expected {tuple(value.shape)})"
             for key, value in expected.items() if state[key].shape != value.shape]
    if wrong:
        raise DreamActorError(f"'{source}' does not fit {what}: wrong shapes {wrong[:3]}; put a config for this size "
                              "beside the file")


def fill(model: torch.nn.Module, state: Mapping[str, torch.Tensor], *, dtype: torch.dtype,
         device: str | torch.device, keep: Iterable[str] = (), source: str = "checkpoint", what: str = "the model",
         strict: bool = True) -> torch.nn.Module:
    """Give every parameter and buffer of ``model`` (built on the meta device) its value from ``state``,
    one tensor at a time: read (deferred tensors), cast on the CPU to ``dtype`` (floating tensors
    not named in ``keep``), copied to its own storage, moved to ``device``, assigned. The peak is the
    model plus the tensor in hand. Tied weights are filled once. On the CPU a weight read in its
    stored dtype stays on the pages safetensors maps from the file (page cache, no copy), as
    transformers' and diffusers' CPU loads do. ``strict``: keys the model lacks
    are an error (else ignored, as an encoder file's extra heads are)."""
    check_fits(model, state, source, what, strict)
    keep = set(keep)
    device = torch.device(device)
    done: set[tuple[int, str]] = set()
    for key in model.state_dict(keep_vars=True):
        module_name, _, attr = key.rpartition(".")
        module = model.get_submodule(module_name)
        if (id(module), attr) in done:
            continue
        done.add((id(module), attr))
        tensor = real(state[key])
        if tensor.is_floating_point() and key not in keep:
            tensor = tensor.to(dtype)
        tensor = own_storage(tensor).to(device)
        if attr in module._parameters:
            module._parameters[attr] = torch.nn.Parameter(tensor, requires_grad=False)
        else:
            module._buffers[attr] = tensor
        del tensor
    return model
