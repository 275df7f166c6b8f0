"""The one interface between PBT and a machine-learning framework.

A :class:`ModelWrapper` is a *template* the user builds around their model; the trainer asks
it to ``spawn`` one member per population slot, each with its own initialization. A member
trains (``fit``), scores itself (``evaluate``) and hands its state out and in as a dict of
NumPy arrays (``get_state``/``set_state``), which is how exploit copies weights and optimizer
state in memory, across processes and to disk.

To support a new framework, subclass :class:`ModelWrapper` and implement the abstract
methods; the hooks with defaults let a wrapper offer a default search space, validate
arguments early and pick its default score.

The order of calls is explicit: the trainer calls :meth:`ModelWrapper.prepare` once on the
template, with the search space and the data, before it spawns any member. ``prepare`` is
the one place a wrapper checks them and keeps what its members need from them (the data's
first rows to build an unbuilt Keras model, say); the ``check_*`` hooks it calls are pure.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pybt.errors import invalid_argument
from pybt.space import Domain

State = dict[str, np.ndarray]
Metrics = dict[str, float]


class ModelWrapper(ABC):
    """A model PBT can train, score, copy and clone."""

    # ---- population -------------------------------------------------------------------
    @abstractmethod
    def spawn(self, seed: int) -> ModelWrapper:
        """A new member built from this template, with its own initialization from ``seed``."""

    @abstractmethod
    def unwrap(self) -> Any:
        """The user's own model object (a ``keras.Model``, an ``nn.Module``, a state...)."""

    # ---- training ---------------------------------------------------------------------
    @abstractmethod
    def fit(self, hyperparameters: Mapping[str, Any], epochs: int, fit_args: Mapping[str, Any]) -> Metrics:
        """Train ``epochs`` epochs with ``hyperparameters``; return training metrics (may be empty)."""

    @abstractmethod
    def evaluate(self, eval_args: Mapping[str, Any]) -> Metrics:
        """Score the member; return ``{metric name: value}``."""

    # ---- state ------------------------------------------------------------------------
    @abstractmethod
    def get_state(self) -> State:
        """Weights, optimizer state and counters as ``{name: ndarray}`` (copies, not views)."""

    @abstractmethod
    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Take over a state from :meth:`get_state` of a member of the same template."""

    # ---- hooks with defaults --------------------------------------------------------------
    def default_space(self) -> dict[str, Domain]:
        """The hyperparameters explored when the user names none."""
        raise invalid_argument(
            "hyperparameters",
            None,
            f"a dict {{name: Domain}} ({type(self).__name__} has no default space)",
            "e.g. hyperparameters={'lr': LogUniform(1e-4, 1e-1)}.",
        )

    def given_hyperparameters(self, space: Mapping[str, Domain]) -> dict[str, Any]:
        """Values the user already chose (e.g. the optimizer's learning rate), for member 0.

        Called after :meth:`prepare`."""
        return {}

    def prepare(
        self, space: Mapping[str, Domain], fit_args: Mapping[str, Any], eval_args: Mapping[str, Any]
    ) -> None:
        """Check the space and the data, and keep what members need from them.

        Called once on the template, before any :meth:`spawn`. The default runs the two pure
        checks below; a wrapper that needs something from the space or the data overrides it
        (calling ``super().prepare(...)`` first) and keeps it on the template, which members
        are copied from.
        """
        self.check_hyperparameters(space)
        self.check_args(fit_args, eval_args)

    def check_hyperparameters(self, space: Mapping[str, Domain]) -> None:
        """Raise a PyBTError for a hyperparameter this model cannot take (changes nothing)."""

    def check_args(self, fit_args: Mapping[str, Any], eval_args: Mapping[str, Any]) -> None:
        """Raise a PyBTError for ``fit_args``/``eval_args`` the model cannot use (changes nothing)."""

    def default_metric(self, metrics: Metrics) -> str:
        """The metric scored when the user names none: the first one evaluated."""
        return next(iter(metrics))

    def known_metrics(self) -> list[str] | None:
        """Every metric name a step will report (evaluated ones, training ones as ``train_<name>``)
        when the model can tell before training (after :meth:`prepare`); None when it cannot."""
        return None

    def metric_alias(self, name: str) -> str:
        """PyBT's name for a metric the user named in the framework's words (Keras's
        ``val_accuracy`` is PyBT's evaluated ``accuracy``); the name itself by default."""
        return name

    #: True when a fit interrupted halfway leaves the member as it was (it assigns its new state
    #: at the end): the in-process executor then keeps no copy to put back.
    atomic_fit = False

    def state_bytes(self) -> int | None:
        """About how many bytes one member's state takes (weights, optimizer state), when the
        template can tell cheaply (after :meth:`prepare`); None otherwise. For memory checks."""
        return None

    #: The file suffix :meth:`export` writes.
    export_suffix = ".npz"

    def export(self, path: str | os.PathLike[str]) -> Path:
        """Save this member in its framework's own format at ``path`` (with ``export_suffix``).

        The default writes its state as a NumPy ``.npz`` (``np.load`` reads it back); Keras
        members write a ``.keras`` file, PyTorch members their module's ``state_dict``.
        """
        target = Path(path).with_suffix(self.export_suffix)
        np.savez(target, **self.get_state())
        return target


def numeric_metrics(values: Mapping[str, Any], owner: str) -> Metrics:
    """``{name: float}`` from a framework's metric values, refusing what is not a number.

    Text (``"0.5"``) and booleans are refused too, though ``float()`` would take them: a score
    of ``True`` is a bug in the evaluation, not a result.
    """
    metrics: Metrics = {}
    for name, value in values.items():
        array = np.asarray(value) if not isinstance(value, (str, bytes)) else None
        if array is None or array.dtype.kind not in "iuf" or array.size != 1:
            raise invalid_argument(
                f"{owner} metric {name!r}", value, "a number (an int, a float, or a one-element array)"
            )
        metrics[str(name)] = float(array.reshape(()))
    return metrics


def sample_count(value: Any) -> int | None:
    """The number of samples along the first axis of array-like data (None: not array-like).

    A tuple, list or dict of arrays (several inputs) counts as its first array; a list of
    numbers as its length; anything else (a dataset, a generator) is not counted."""
    if isinstance(value, (tuple, list)) and value and all(hasattr(v, "shape") for v in value):
        return sample_count(value[0])
    if isinstance(value, Mapping) and value:
        return sample_count(next(iter(value.values())))
    shape = getattr(value, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) > 0 else 0
    return len(value) if isinstance(value, (tuple, list)) else None


def check_samples(argument: str, args: Mapping[str, Any]) -> None:
    """``x`` (and ``y``) with the same number of samples, at least one — for array data."""
    counts = {name: sample_count(args[name]) for name in ("x", "y") if name in args}
    known = {name: count for name, count in counts.items() if count is not None}
    if not known:
        return
    if len(set(known.values())) > 1 or min(known.values()) < 1:
        raise invalid_argument(
            argument, known, "x and y with the same number (at least one) of samples along the first axis"
        )


def member_with_state(template: ModelWrapper, seed: int, state: Mapping[str, np.ndarray]) -> ModelWrapper:
    """A member of ``template`` holding ``state`` (to return, export or load a winner)."""
    member = template.spawn(seed)
    member.set_state(state)
    return member
