"""Executors: where live members run (in this process, or as Ray actors).

``RayExecutor`` is loaded on first use, so ``import pybt.executor`` does not import Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pybt.executor.base import Executor, StepResult
from pybt.executor.serial import SerialExecutor

if TYPE_CHECKING:
    from pybt.executor.ray import RayExecutor

__all__ = ["Executor", "RayExecutor", "SerialExecutor", "StepResult"]


def __getattr__(name: str) -> Any:
    if name == "RayExecutor":
        from pybt.executor.ray import RayExecutor

        return RayExecutor
    raise AttributeError(f"module 'pybt.executor' has no attribute {name!r}")
