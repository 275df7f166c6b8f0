"""The one guard for optional dependencies: import a module, or name the pip extra to install.

``import pybt`` needs NumPy only. Every framework (Keras, PyTorch, Ray, matplotlib, pandas,
tqdm, ...) is imported through :func:`require` inside the module that uses it, at the moment
it is used, so a missing one is a :class:`~pybt.errors.MissingDependencyError` that says
``pip install 'pybt[extra]'`` instead of a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from pybt.errors import missing_extra


def require(module: str, extra: str, name: str | None = None) -> ModuleType:
    """``module`` imported, or a MissingDependencyError naming ``extra`` when it is not installed.

    Only the module itself being absent is reported that way: a module that is installed but
    fails to import (one of *its* dependencies is missing or broken) raises its own error.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        top = module.split(".")[0]
        if error.name is not None and error.name.split(".")[0] == top:
            raise missing_extra(name or top, extra) from error
        raise
