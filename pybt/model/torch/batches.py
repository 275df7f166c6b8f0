"""How data reaches a member's module: seeding, devices, and batches made from arrays or a loader.

Like the rest of the package, nothing here imports torch at module level: each function takes
the ``torch`` module as an argument, so ``import pybt.model.torch`` works without PyTorch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from pybt.errors import invalid_argument

LOADER_KEY = "loader"


# ---- randomness and devices --------------------------------------------------------------------
@contextlib.contextmanager
def seeded(torch: Any, seed: int, device: Any) -> Iterator[None]:
    """Seed the CPU (and the module's CUDA device) RNG inside, restore the global RNG after."""
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()) if cuda else None
    with torch.random.fork_rng(devices=[index] if cuda else [], device_type="cuda"):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


def device_of(torch: Any, module: Any) -> Any:
    """Where the module's parameters (else its buffers, else the CPU) live."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def to_device(torch: Any, value: Any, device: Any) -> Any:
    """``value`` with every tensor in it (nested in dicts, tuples, lists) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        # Non-blocking only towards an accelerator: a non-blocking copy to the CPU may be read
        # before it has landed.
        return value.to(device, non_blocking=device.type != "cpu")
    if isinstance(value, Mapping):
        return {key: to_device(torch, item, device) for key, item in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        return type(value)(*(to_device(torch, item, device) for item in value))
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(torch, item, device) for item in value)
    return value


# ---- batches ------------------------------------------------------------------------------------
class Batches:
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
            self._x = as_tensors(torch, args["x"], float_dtype, "x", targets=False)
            self._y = as_tensors(torch, args["y"], float_dtype, "y", targets=True) if "y" in args else None
            self._n = length(args["x"])

    def iterate(self, generator: Any) -> Iterator[Any]:
        """One pass over the data, shuffled with ``generator`` when shuffling is on."""
        torch = self._torch
        if self._loader is not None:
            for batch in self._loader:
                yield to_device(torch, batch, self._device)
            return
        order = torch.randperm(self._n, generator=generator) if self._shuffle else None
        for start in range(0, self._n, self._batch_size):
            stop = min(start + self._batch_size, self._n)
            where = order[start:stop] if order is not None else slice(start, stop)
            x = to_device(torch, _take(self._x, where), self._device)
            if self._y is None:
                yield x
            else:
                yield x, to_device(torch, _take(self._y, where), self._device)


def as_tensors(torch: Any, value: Any, float_dtype: Any, name: str, targets: bool) -> Any:
    """Tensors from arrays (a tuple or dict of them for several inputs), in the module's dtypes."""
    if isinstance(value, tuple):
        return tuple(as_tensors(torch, item, float_dtype, name, targets) for item in value)
    if isinstance(value, Mapping):
        return {key: as_tensors(torch, item, float_dtype, name, targets) for key, item in value.items()}
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
    elif targets and is_integer_tensor(torch, tensor):
        tensor = tensor.long()  # class indices: what the classification losses take
    return tensor


def _take(value: Any, where: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_take(item, where) for item in value)
    if isinstance(value, dict):
        return {key: _take(item, where) for key, item in value.items()}
    return value[where]


def length(value: Any) -> int:
    """The number of samples in an array, or in the first of a tuple or dict of arrays."""
    if isinstance(value, tuple) and value:
        return length(value[0])
    if isinstance(value, Mapping) and value:
        return length(next(iter(value.values())))
    shape = getattr(value, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) > 0 else 0
    return len(value)


# ---- one batch ----------------------------------------------------------------------------------
def split(batch: Any) -> tuple[Any, Any]:
    """``(inputs, targets)`` from a batch of the default loops."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise invalid_argument(
        "batch",
        f"a {type(batch).__name__}" + (f" of {len(batch)}" if isinstance(batch, (tuple, list)) else ""),
        "(inputs, targets) pairs",
        "Have the loader yield (inputs, targets), or give train_step=/eval_step= for other batches.",
    )


def call(module: Any, inputs: Any) -> Any:
    """The module's outputs: a dict of inputs goes in as keywords, a tuple or list as positionals."""
    if isinstance(inputs, Mapping):
        return module(**inputs)
    if isinstance(inputs, (tuple, list)):
        return module(*inputs)
    return module(inputs)


def batch_len(torch: Any, targets: Any) -> int:
    """How many samples a batch holds, counted on its targets."""
    if isinstance(targets, torch.Tensor) and targets.ndim > 0:
        return int(targets.shape[0])
    return length(targets) if isinstance(targets, (tuple, Mapping)) else 1


def is_classification(torch: Any, outputs: Any, targets: Any) -> bool:
    """``[N, C]`` logits against ``[N]`` integer class indices."""
    return (
        isinstance(outputs, torch.Tensor)
        and isinstance(targets, torch.Tensor)
        and outputs.ndim == 2
        and targets.ndim == 1
        and outputs.shape[0] == targets.shape[0]
        and is_integer_tensor(torch, targets)
    )


def is_integer_tensor(torch: Any, tensor: Any) -> bool:
    return not tensor.is_floating_point() and not tensor.is_complex() and tensor.dtype != torch.bool


def number(torch: Any, value: Any) -> Any:
    """A Python number from a tensor or number (anything else is left for numeric_metrics to refuse)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return value.detach().cpu().numpy()
        return value.detach().cpu().item()
    return value
