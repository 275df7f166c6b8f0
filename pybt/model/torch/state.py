"""A member's state as ``{name: ndarray}`` and back: what exploit copies and checkpoints store.

Keys: ``module/<state_dict key>`` and ``optimizer/state/<param index>/<key>`` for tensors,
``optimizer/python/...`` for Python numbers (0-d arrays), ``optimizer/none/...`` for ``None``,
and ``pybt/fits`` for the member's fit count. Tensors of a dtype NumPy lacks (``bfloat16``,
float8, ...) are stored as their raw bits in an integer array of the same width, with the
dtype after ``@`` in the key. Param group settings are not part of the state: they are the
member's hyperparameters, which it keeps through an exploit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pybt.errors import PyBTError, invalid_argument
from pybt.model.base import State

FITS_KEY = "pybt/fits"
# Integer views that carry the raw bits of tensors whose dtype NumPy cannot hold.
_BITS = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}


def export_state(torch: Any, module: Any, optimizer: Any, fits: int) -> State:
    """Copies of the module's and the optimizer's state, and the fit count, as arrays."""
    # The fit count seeds each fit's shuffling and dropout: part of the state, so a member
    # resumed from a checkpoint draws what it would have drawn without the interruption.
    state: State = {FITS_KEY: np.array(fits, dtype=np.int64)}
    for name, tensor in module.state_dict().items():
        if not isinstance(tensor, torch.Tensor):
            raise PyBTError(
                f"The module's state_dict holds {name!r} of type {type(tensor).__name__}; PyBT can "
                f"copy tensors only. Keep extra state in buffers (register_buffer)."
            )
        key, array = tensor_to_array(torch, f"module/{name}", tensor)
        state[key] = array
    for index, values in optimizer.state_dict()["state"].items():
        for name, value in values.items():
            where = f"{index}/{name}"
            if isinstance(value, torch.Tensor):
                key, array = tensor_to_array(torch, f"optimizer/state/{where}", value)
                state[key] = array
            elif value is None:
                state[f"optimizer/none/{where}"] = np.zeros(0, dtype=np.int8)
            elif isinstance(value, (bool, int, float)):
                state[f"optimizer/python/{where}"] = np.array(value)
            else:
                raise PyBTError(
                    f"The {type(optimizer).__name__} optimizer keeps {name!r} as a "
                    f"{type(value).__name__}; PyBT can copy optimizer state made of tensors, numbers "
                    f"and None only. Use an optimizer with such state."
                )
    return state


def import_state(torch: Any, module: Any, optimizer: Any, state: Mapping[str, np.ndarray]) -> int | None:
    """Load ``state`` into the module and the optimizer; return its fit count (None if absent)."""
    module_state: dict[str, Any] = {}
    optimizer_state: dict[int, dict[str, Any]] = {}
    for full_key, array in state.items():
        if full_key == FITS_KEY:
            continue
        key, _, dtype = full_key.partition("@")
        section, _, rest = key.partition("/")
        if section == "module":
            module_state[rest] = array_to_tensor(torch, array, dtype, full_key)
            continue
        kind, _, where = rest.partition("/")
        index, _, name = where.partition("/")
        if section != "optimizer" or kind not in ("state", "python", "none") or not index.isdigit():
            raise invalid_argument("state key", full_key, "a key made by TorchModelWrapper.get_state()")
        if kind == "state":
            value = array_to_tensor(torch, array, dtype, full_key)
        else:
            value = None if kind == "none" else np.asarray(array).item()
        optimizer_state.setdefault(int(index), {})[name] = value
    try:
        module.load_state_dict(module_state, strict=True)
    except RuntimeError as error:
        raise PyBTError(
            f"The state does not fit this member's module; it must come from a member of the same "
            f"template. PyTorch said: {error}"
        ) from error
    _load_optimizer_state(optimizer, optimizer_state)
    return int(np.asarray(state[FITS_KEY])) if FITS_KEY in state else None


def _load_optimizer_state(optimizer: Any, optimizer_state: dict[int, dict[str, Any]]) -> None:
    n_params = sum(len(group["params"]) for group in optimizer.param_groups)
    stray = sorted(index for index in optimizer_state if index >= n_params)
    if stray:
        raise PyBTError(
            f"The optimizer state names parameters {stray}, but this member's optimizer has "
            f"{n_params}: the state comes from a different model or optimizer."
        )
    # Keep this member's own param groups (its hyperparameters); take the donor's slots.
    groups = optimizer.state_dict()["param_groups"]
    try:
        optimizer.load_state_dict({"state": optimizer_state, "param_groups": groups})
    except (ValueError, RuntimeError, KeyError) as error:
        raise PyBTError(f"The optimizer state does not fit this member's optimizer: {error}") from error


# ---- one tensor ---------------------------------------------------------------------------------
def tensor_to_array(torch: Any, key: str, tensor: Any) -> tuple[str, np.ndarray]:
    """A copy of ``tensor`` as an array (never a view), and its key (with ``@dtype`` for raw bits)."""
    tensor = tensor.detach().resolve_conj().resolve_neg()
    try:
        return key, tensor.to("cpu", copy=True).numpy()
    except TypeError:  # a dtype NumPy lacks (bfloat16, float8...): keep the raw bits
        bits = getattr(torch, _BITS[tensor.element_size()])
        dtype = str(tensor.dtype).removeprefix("torch.")
        return f"{key}@{dtype}", tensor.view(bits).to("cpu", copy=True).numpy()


def array_to_tensor(torch: Any, array: Any, dtype: str, key: str) -> Any:
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
