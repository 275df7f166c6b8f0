"""Shared test set-up: Keras on the torch backend (the library itself never picks one), and
PyTorch on one thread: tiny networks on a shared 2-core machine run many times slower when
torch's intra-op threads fight the other processes for the cores.

Nothing here needs a framework: in the NumPy-only environment (numpy, pytest, hypothesis)
the framework tests skip themselves with ``pytest.importorskip``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    if importlib.util.find_spec("torch") is None:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
