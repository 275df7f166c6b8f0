"""PyBT: Population Based Training for Keras, PyTorch and any training function.

``import pybt`` needs NumPy only; the model wrappers, the Ray executor and the plots import
their frameworks when they are used.
"""

from __future__ import annotations

import logging

from pybt.errors import PyBTError
from pybt.replay import replay
from pybt.space import Choice, Domain, IntUniform, LogUniform, Uniform
from pybt.trainer import Trainer

__version__ = "0.4.0"

__all__ = [
    "Choice",
    "Domain",
    "IntUniform",
    "LogUniform",
    "PyBTError",
    "Trainer",
    "Uniform",
    "__version__",
    "replay",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
