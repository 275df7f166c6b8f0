"""PyTorch plumbing for :mod:`pybt.model.torch`: seeding, devices, batches, and tensors to NumPy.

Kept apart from the wrapper so that ``torch.py`` reads as what a member does (train, score,
hand its state over) and this file as how tensors get there. Like the wrapper, nothing here
imports torch at module level: the functions take the ``torch`` module as an argument.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from pybt.errors import invalid_argument

LOADER_KEY = "loader"
_BITS = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}


# ---- randomness and devices --------------------------------------------------------------------
@contextlib.contextmanager
def _seeded(torch: Any, seed: int, device: Any) -> Iterator[None]:
    """Seed the CPU (and the module's CUDA device) RNG inside, restore the global RNG after."""
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()) if cuda else None
    with torch.random.fork_rng(devices=[index] if cuda else [], device_type="cuda"):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


def _device_of(torch: Any, module: Any) -> Any:
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def _to_device(torch: Any, value: Any, device: Any) -> Any:
    if isinstance(value, torch.Tensor):
        # Non-blocking only towards an accelerator: a non-blocking copy to the CPU may be read
        # before it has landed.
        return value.to(device, non_blocking=device.type != "cpu")
    if isinstance(value, Mapping):
        return {key: _to_device(torch, item, device) for key, item in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        return type(value)(*(_to_device(torch, item, device) for item in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(torch, item, device) for item in value)
    return value


# ---- batches ------------------------------------------------------------------------------------
class _Batches:
    """The batches of one fit or evaluation, from arrays or from a loader, on the module's device."""

    def __init__(
        self, torch: Any, args: Mapping[str, Any], batch_size: int, shuffle: bool, module: Any, device: Any
    ) -> None:
        self._torch, self._device = torch, device
        self._loader = args.get(LOADER_KEY)
        self._batch_size, self._shuffle = max(1, batch_size), shuffle
        if self._loader is None:
            float_dtype = next(
                (p.dtype for p in module.parameters() if p.is_floating_point()), torch.get_default_dtype()
            )
            self._x = _as_tensors(torch, args["x"], float_dtype, "x", targets=False)
            self._y = _as_tensors(torch, args["y"], float_dtype, "y", targets=True) if "y" in args else None
            self._n = _length(args["x"])

    def iterate(self, generator: Any) -> Iterator[Any]:
        torch = self._torch
        if self._loader is not None:
            for batch in self._loader:
                yield _to_device(torch, batch, self._device)
            return
        order = torch.randperm(self._n, generator=generator) if self._shuffle else None
        for start in range(0, self._n, self._batch_size):
            stop = min(start + self._batch_size, self._n)
            where = order[start:stop] if order is not None else slice(start, stop)
            x = _to_device(torch, _take(self._x, where), self._device)
            if self._y is None:
                yield x
            else:
                yield x, _to_device(torch, _take(self._y, where), self._device)


def _as_tensors(torch: Any, value: Any, float_dtype: Any, name: str, targets: bool) -> Any:
    """Tensors from arrays (a tuple or dict of them for several inputs), in the module's dtypes."""
    if isinstance(value, tuple):
        return tuple(_as_tensors(torch, item, float_dtype, name, targets) for item in value)
    if isinstance(value, Mapping):
        return {key: _as_tensors(torch, item, float_dtype, name, targets) for key, item in value.items()}
    if isinstance(value, torch.Tensor):
        tensor = value
    else:
        array = np.asarray(value)
        if array.dtype.kind not in "biufc":
            raise invalid_argument(name, f"an array of dtype {array.dtype}", "numbers (a numeric array)")
        if not array.flags.writeable or not array.flags.c_contiguous or not array.dtype.isnative:
            array = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("="), copy=True)
        tensor = torch.from_numpy(array)  # shares memory: no copy of the user's data
    if tensor.is_floating_point() and tensor.dtype != float_dtype:
        tensor = tensor.to(float_dtype)
    elif targets and _is_integer(torch, tensor):
        tensor = tensor.long()  # class indices: what the classification losses take
    return tensor


def _take(value: Any, where: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_take(item, where) for item in value)
    if isinstance(value, dict):
        return {key: _take(item, where) for key, item in value.items()}
    return value[where]


def _length(value: Any) -> int:
    if isinstance(value, tuple) and value:
        return _length(value[0])
    if isinstance(value, Mapping) and value:
        return _length(next(iter(value.values())))
    shape = getattr(value, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) > 0 else 0
    return len(value)


def _split(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise invalid_argument(
        "batch",
        f"a {type(batch).__name__}" + (f" of {len(batch)}" if isinstance(batch, (tuple, list)) else ""),
        "(inputs, targets) pairs",
        "Have the loader yield (inputs, targets), or give train_step=/eval_step= for other batches.",
    )


def _call(module: Any, inputs: Any) -> Any:
    if isinstance(inputs, Mapping):
        return module(**inputs)
    if isinstance(inputs, (tuple, list)):
        return module(*inputs)
    return module(inputs)


def _batch_len(torch: Any, targets: Any) -> int:
    if isinstance(targets, torch.Tensor) and targets.ndim > 0:
        return int(targets.shape[0])
    return _length(targets) if isinstance(targets, (tuple, Mapping)) else 1


def _is_classification(torch: Any, outputs: Any, targets: Any) -> bool:
    """``[N, C]`` logits against ``[N]`` integer class indices."""
    return (
        isinstance(outputs, torch.Tensor)
        and isinstance(targets, torch.Tensor)
        and outputs.ndim == 2
        and targets.ndim == 1
        and outputs.shape[0] == targets.shape[0]
        and _is_integer(torch, targets)
    )


def _is_integer(torch: Any, tensor: Any) -> bool:
    return not tensor.is_floating_point() and not tensor.is_complex() and tensor.dtype != torch.bool


def _number(torch: Any, value: Any) -> Any:
    """A Python number from a tensor or number (anything else is left for finite_metrics to refuse)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return value.detach().cpu().numpy()
        return value.detach().cpu().item()
    return value


# ---- state conversion ---------------------------------------------------------------------------
def _export(torch: Any, key: str, tensor: Any) -> tuple[str, np.ndarray]:
    """A copy of ``tensor`` as an array (never a view), and its key."""
    tensor = tensor.detach().resolve_conj().resolve_neg()
    try:
        return key, tensor.to("cpu", copy=True).numpy()
    except TypeError:  # a dtype NumPy lacks (bfloat16, float8...): keep the raw bits
        bits = getattr(torch, _BITS[tensor.element_size()])
        dtype = str(tensor.dtype).removeprefix("torch.")
        return f"{key}@{dtype}", tensor.view(bits).to("cpu", copy=True).numpy()


def _import(torch: Any, array: Any, dtype: str, key: str) -> Any:
    """A new tensor from a state array (the raw bits of ``dtype`` when the key names one)."""
    array = np.asarray(array)
    if array.dtype.kind not in "biufc":
        raise invalid_argument(f"state[{key!r}]", f"an array of dtype {array.dtype}", "a numeric array")
    tensor = torch.from_numpy(np.array(array, copy=True, dtype=array.dtype.newbyteorder("=")))
    if dtype:
        target = getattr(torch, dtype, None)
        if not isinstance(target, torch.dtype):
            raise invalid_argument(f"state[{key!r}]", dtype, "a torch dtype after '@'")
        tensor = tensor.view(target)
    return tensor
