"""Loading Keras (never picking its backend) and the one callback PyBT adds to ``fit``."""

from __future__ import annotations

import functools
from typing import Any

from pybt._imports import require
from pybt.errors import MissingDependencyError, describe_exception


def load_keras() -> Any:
    """Keras 3, imported when first needed (``import pybt`` needs NumPy only)."""
    try:
        keras = require("keras", "keras", "Keras")
    except ModuleNotFoundError as error:
        # require() reports Keras itself missing; another missing module is Keras's backend.
        raise MissingDependencyError(
            f"Keras is installed but could not load its backend ({describe_exception(error)}). Install a "
            f"backend (tensorflow, jax or torch) and select it with the KERAS_BACKEND environment variable."
        ) from error
    if not hasattr(keras, "Model") or int(keras.__version__.split(".")[0]) < 3:
        raise MissingDependencyError(
            f"PyBT needs Keras 3, found {keras.__version__}. Upgrade it: pip install -U 'pybt[keras]'"
        )
    return keras


@functools.cache
def seed_callback(keras: Any) -> Any:
    """The callback class that seeds Keras at the start of training (made once keras is imported)."""

    class SeedAtTrainBegin(keras.callbacks.Callback):
        def __init__(self, seed: int) -> None:
            super().__init__()
            self.seed = seed

        def on_train_begin(self, logs: Any = None) -> None:
            keras.utils.set_random_seed(self.seed)

    return SeedAtTrainBegin
