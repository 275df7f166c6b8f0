"""PyBT: Population Based Training for Keras, PyTorch and any training function.

``import pybt`` needs NumPy only; the model wrappers, the Ray executor and the plots import
their frameworks when they are used.
"""

from __future__ import annotations

import logging

from pybt._version import __version__
from pybt.errors import PyBTError
from pybt.replay import replay
from pybt.space import Choice, Domain, IntUniform, LogUniform, Uniform
from pybt.store.reader import load_run
from pybt.trainer import Trainer

__all__ = [
    "Choice",
    "Domain",
    "IntUniform",
    "LogUniform",
    "PyBTError",
    "Trainer",
    "Uniform",
    "__version__",
    "load_run",
    "replay",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
