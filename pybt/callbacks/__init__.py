"""Callbacks: listeners on a run's records (see :mod:`pybt.callbacks.base`).

``Callback`` is the base class; ``ProgressBar`` is the progress display that ``verbose=1``
adds. Integrations with other tools are loaded on first use, so importing this package needs
NumPy only: ``from pybt.callbacks import TensorBoard`` loads :mod:`pybt.callbacks.tensorboard`,
which imports tensorboardX only when a ``TensorBoard(...)`` is built (the same for ``MLflow``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pybt.callbacks.base import Callback, CallbackList, TrainResult
from pybt.callbacks.progress import ProgressBar

if TYPE_CHECKING:
    from pybt.callbacks.mlflow import MLflow
    from pybt.callbacks.tensorboard import TensorBoard

# Integrations: name -> the module that defines it, imported when the name is first looked up.
_LAZY = {"MLflow": "pybt.callbacks.mlflow", "TensorBoard": "pybt.callbacks.tensorboard"}

__all__ = ["Callback", "CallbackList", "MLflow", "ProgressBar", "TensorBoard", "TrainResult"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
