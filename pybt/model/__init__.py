"""Model wrappers: the only code that imports machine-learning frameworks.

``KerasModelWrapper``, ``TorchModelWrapper`` and ``SB3ModelWrapper`` load their framework when
first used, so ``from pybt.model import FunctionModel`` works with NumPy alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pybt.model.base import ModelWrapper
from pybt.model.function import FunctionModel

if TYPE_CHECKING:
    from pybt.model.keras import KerasModelWrapper
    from pybt.model.sb3 import SB3ModelWrapper
    from pybt.model.torch import TorchModelWrapper

__all__ = ["FunctionModel", "KerasModelWrapper", "ModelWrapper", "SB3ModelWrapper", "TorchModelWrapper"]

_LAZY = {
    "KerasModelWrapper": "pybt.model.keras",
    "TorchModelWrapper": "pybt.model.torch",
    "SB3ModelWrapper": "pybt.model.sb3",
}


def __getattr__(name: str) -> Any:
    # Importing the wrapper module does not import its framework either; that happens when a
    # wrapper is built, so the error for a missing framework names the pip extra to install.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pybt.model' has no attribute {name!r}")
