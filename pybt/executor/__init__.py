"""Executors: where live members run (in this process, or as Ray actors)."""

from __future__ import annotations

from pybt.executor.base import Executor, StepResult
from pybt.executor.serial import SerialExecutor

__all__ = ["Executor", "SerialExecutor", "StepResult"]
