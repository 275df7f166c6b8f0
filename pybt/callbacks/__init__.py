"""Callbacks: listeners on a run's records (see :mod:`pybt.callbacks.base`).

``Callback`` is the base class; ``ProgressBar`` is the progress display that ``verbose=1``
adds. Integrations with other tools are loaded on first use, so importing this package needs
NumPy only.
"""

from __future__ import annotations

from pybt.callbacks.base import Callback, CallbackList, TrainResult
from pybt.callbacks.progress import ProgressBar

__all__ = ["Callback", "CallbackList", "ProgressBar", "TrainResult"]
