"""Keras 3 models as PBT members, on whichever backend Keras runs on.

PyBT never picks a backend: Keras reads ``KERAS_BACKEND`` (or its config file) as usual.
Each member is a ``keras.models.clone_model`` of the user's model with its own fresh
initialization (or the given weights, with ``keep_weights=True``), compiled with its own
copies of the compile arguments. Hyperparameters that name an optimizer attribute
(``learning_rate``, ``momentum``, ``beta_1``, ``weight_decay``, ...) are set on the live
optimizer before each step, without recompiling; ``batch_size`` goes to ``fit``. For
reproducible runs, PyBT seeds Keras's global random state (``keras.utils.set_random_seed``)
from the member's seed before it builds and trains each member.

Wrappers travel (pickled, to Ray actors) as Keras configs and NumPy arrays, never as live
Keras objects, which hold backend variables: the model as ``keras.saving.serialize_keras_object``
and its weights, the compile arguments as their configs, and a member also as its
:meth:`~KerasModelWrapper.get_state`. The receiving process rebuilds them with
``keras.saving.deserialize_keras_object`` on its backend; a member comes back trained as far
as it was.
"""

from __future__ import annotations

from pybt.model.keras.backend import load_keras
from pybt.model.keras.wrapper import KerasModelWrapper

__all__ = ["KerasModelWrapper", "load_keras"]
