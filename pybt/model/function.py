"""Any training code as a PBT model: three plain functions.

``FunctionModel(init, step, evaluate)`` is to PyBT what httpx's ``MockTransport`` is to its
transports: the whole :class:`~pybt.model.base.ModelWrapper` interface built from functions.

- ``init(seed) -> state``: a fresh member;
- ``step(state, hyperparameters, **fit_args) -> state`` or ``(state, metrics)``: one epoch;
- ``evaluate(state, **eval_args) -> float`` or ``{metric: float}``.

The state is whatever your functions pass along. To be copied between members (and sent to
other processes or to disk), it must be a NumPy array, or a dict (nested dicts allowed) of
arrays and numbers; for anything else give ``to_arrays``/``from_arrays`` to convert.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from pybt.errors import invalid_argument
from pybt.model.base import Metrics, ModelWrapper, State, finite_metrics

_ARRAY_KEY = "state"


def _flatten(value: Any, prefix: str, out: State) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or "/" in key:
                raise invalid_argument("FunctionModel state key", key, "a string without '/'")
            _flatten(item, f"{prefix}{key}/", out)
    elif isinstance(value, (np.ndarray, int, float, np.number)) and not isinstance(value, bool):
        out[prefix.rstrip("/")] = np.array(value, copy=True)
    else:
        raise invalid_argument(
            "FunctionModel state",
            type(value).__name__,
            "a NumPy array or a dict of arrays and numbers",
            "Pass to_arrays= and from_arrays= to FunctionModel to convert other states.",
        )


def _rebuild(template: Any, state: Mapping[str, np.ndarray], prefix: str) -> Any:
    """``state``'s values poured into the shape (and leaf types) of ``template``."""
    if isinstance(template, Mapping):
        return {key: _rebuild(item, state, f"{prefix}{key}/") for key, item in template.items()}
    array = state[prefix.rstrip("/")]
    return np.array(array, copy=True) if isinstance(template, np.ndarray) else type(template)(array.item())


class FunctionModel(ModelWrapper):
    """A model made of ``init``, ``step`` (one epoch) and ``evaluate`` functions."""

    def __init__(
        self,
        init: Callable[[int], Any],
        step: Callable[..., Any],
        evaluate: Callable[..., Any],
        *,
        to_arrays: Callable[[Any], Mapping[str, np.ndarray]] | None = None,
        from_arrays: Callable[[Mapping[str, np.ndarray]], Any] | None = None,
    ) -> None:
        for name, function in (("init", init), ("step", step), ("evaluate", evaluate)):
            if not callable(function):
                raise invalid_argument(f"FunctionModel({name}=...)", function, "a function")
        if (to_arrays is None) != (from_arrays is None):
            raise invalid_argument(
                "FunctionModel(to_arrays=..., from_arrays=...)",
                (to_arrays, from_arrays),
                "both functions or neither",
            )
        self._init, self._step, self._evaluate = init, step, evaluate
        self._to_arrays, self._from_arrays = to_arrays, from_arrays
        self.state: Any = None

    def spawn(self, seed: int) -> FunctionModel:
        member = copy.copy(self)
        member.state = self._init(seed)
        return member

    def unwrap(self) -> Any:
        return self.state

    def fit(self, hyperparameters: Mapping[str, Any], epochs: int, fit_args: Mapping[str, Any]) -> Metrics:
        metrics: Mapping[str, Any] = {}
        for _ in range(epochs):
            result = self._step(self.state, hyperparameters, **fit_args)
            if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], Mapping):
                self.state, metrics = result
            else:
                self.state = result
        return finite_metrics(metrics, "step")

    def evaluate(self, eval_args: Mapping[str, Any]) -> Metrics:
        value = self._evaluate(self.state, **eval_args)
        if isinstance(value, Mapping) and not value:
            raise invalid_argument(
                "FunctionModel(evaluate=...)'s return value",
                value,
                "a number or a dict with at least one metric",
            )
        return finite_metrics(value if isinstance(value, Mapping) else {"score": value}, "evaluate")

    def get_state(self) -> State:
        if self._to_arrays is not None:
            return {key: np.array(value, copy=True) for key, value in self._to_arrays(self.state).items()}
        if isinstance(self.state, np.ndarray):
            return {_ARRAY_KEY: self.state.copy()}
        flat: State = {}
        _flatten(self.state, "", flat)
        return flat

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        if self._from_arrays is not None:
            self.state = self._from_arrays({key: np.array(value, copy=True) for key, value in state.items()})
        elif isinstance(self.state, np.ndarray):
            self.state = np.array(state[_ARRAY_KEY], copy=True)
        else:
            expected: State = {}
            _flatten(self.state, "", expected)
            if set(expected) != set(state):
                raise invalid_argument(
                    "FunctionModel state",
                    sorted(state),
                    f"the keys of this member's state {sorted(expected)}",
                    "The state comes from another model; give to_arrays=/from_arrays= for states "
                    "whose layout changes.",
                )
            self.state = _rebuild(self.state, state, "")
