"""The whole population at once: a vectorized executor for PyTorch members.

``VectorizedExecutor`` trains every submitted TorchModelWrapper member (copies of one template)
in one stacked computation: parameters, buffers and optimizer state gain a leading member
dimension, each batch runs as ``vmap(functional_call(...))`` over the members, and one update
applies every member's own hyperparameters. Exploit is an index copy inside the stack.

The package: :mod:`.executor` (the Executor), :mod:`.engine` (stacked loss, step and
evaluation), :mod:`.optim` (SGD, Adam, AdamW over the stack), :mod:`.stack` (rows, exploit,
states in TorchModelWrapper's layout) and :mod:`.checks` (what is refused up front). None of them
imports torch when imported.
"""

from __future__ import annotations

from pybt.executor.vectorized.executor import VectorizedExecutor

__all__ = ["VectorizedExecutor"]
