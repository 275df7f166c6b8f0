"""Executors: where live members run (in this process, as Ray actors, or stacked on one device).

``RayExecutor`` and ``VectorizedExecutor`` are loaded on first use, so ``import pybt.executor``
imports neither Ray nor PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pybt.executor.base import Executor, StepResult
from pybt.executor.serial import SerialExecutor

if TYPE_CHECKING:
    from pybt.executor.ray import RayExecutor
    from pybt.executor.vectorized import VectorizedExecutor

__all__ = ["Executor", "RayExecutor", "SerialExecutor", "StepResult", "VectorizedExecutor"]


def __getattr__(name: str) -> Any:
    if name == "RayExecutor":
        from pybt.executor.ray import RayExecutor

        return RayExecutor
    if name == "VectorizedExecutor":
        from pybt.executor.vectorized import VectorizedExecutor

        return VectorizedExecutor
    raise AttributeError(f"module 'pybt.executor' has no attribute {name!r}")
