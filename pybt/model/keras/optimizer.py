"""Which optimizer attributes PBT can tune, and their plain Python values."""

from __future__ import annotations

from typing import Any

import numpy as np

# Number-valued optimizer attributes that are counters or switches, not hyperparameters.
NOT_TUNABLE = frozenset({"iterations", "gradient_accumulation_steps", "ema_overwrite_frequency"})


def is_tunable(optimizer: Any, name: str) -> bool:
    """An optimizer attribute PBT can set: the learning rate, or a number-valued setting."""
    if name.startswith("_") or name in NOT_TUNABLE:
        return False
    if name == "learning_rate":
        return True
    value = getattr(optimizer, name, None)
    return (value is None and name in vars(optimizer)) or is_number_like(value)


def is_number_like(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return hasattr(value, "assign") and hasattr(value, "numpy") and np.ndim(value.numpy()) == 0


def plain_value(value: Any) -> Any:
    """A Python number from an optimizer attribute (a float, or a Keras variable).

    A float32 variable holding 0.001 is 0.0010000000474974513 as a Python float; the value the
    user gave is the shortest decimal that is the same float32, so that is what is returned
    (and recorded, and written to CSV)."""
    if hasattr(value, "numpy"):
        array = np.asarray(value.numpy())
        if array.dtype == np.float32:
            return float(str(np.float32(array)))  # NumPy prints a float32 as its shortest decimal
        return array.item()
    return value
