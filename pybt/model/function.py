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
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from pybt.errors import PyBTError, invalid_argument
from pybt.model.base import Metrics, ModelWrapper, State, numeric_metrics
from pybt.space import Domain

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


def _check_call(name: str, function: Any, positional: int, keywords: Mapping[str, Any], source: str) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: it will tell when called
        return
    try:
        signature.bind(*range(positional), **keywords)
    except TypeError as error:
        given = ", ".join(["state", "hyperparameters"][:positional] + [f"{key}=..." for key in keywords])
        raise invalid_argument(
            f"FunctionModel({name}=...)",
            f"{getattr(function, '__name__', name)}{signature}",
            f"a function that takes ({given})",
            f"Calling it so fails: {error}. Its keyword arguments are the keys of {source}.",
        ) from error


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
        self._state_bytes: int | None = None  # prepare() measures a member's state

    def check_args(self, fit_args: Mapping[str, Any], eval_args: Mapping[str, Any]) -> None:
        """``step`` and ``evaluate`` must take the keyword arguments they will be given."""
        _check_call("step", self._step, 2, fit_args, "step_args['fit_args']")
        _check_call("evaluate", self._evaluate, 1, eval_args, "eval_args")

    def prepare(
        self, space: Mapping[str, Domain], fit_args: Mapping[str, Any], eval_args: Mapping[str, Any]
    ) -> None:
        """The checks, then one member made and its state taken, so a state that cannot be
        copied (a bool, a list, None) is refused before any training."""
        super().prepare(space, fit_args, eval_args)
        probe = self.spawn(0)
        try:
            self._state_bytes = sum(array.nbytes for array in probe.get_state().values())
        except PyBTError as error:
            raise invalid_argument(
                "FunctionModel(init=...)", type(probe.state).__name__, "a state PyBT can copy", str(error)
            ) from error

    atomic_fit = True  # fit() assigns the new state only once every epoch has run

    def state_bytes(self) -> int | None:
        return self._state_bytes

    def spawn(self, seed: int) -> FunctionModel:
        member = copy.copy(self)
        member.state = self._init(seed)
        return member

    def unwrap(self) -> Any:
        return self.state

    def fit(self, hyperparameters: Mapping[str, Any], epochs: int, fit_args: Mapping[str, Any]) -> Metrics:
        metrics: Mapping[str, Any] = {}
        state = self.state
        for _ in range(epochs):
            result = self._step(state, hyperparameters, **fit_args)
            if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], Mapping):
                state, metrics = result
            else:
                state = result
        self.state = state  # at the end: a step interrupted halfway leaves the member as it was
        return numeric_metrics(metrics, "step")

    def evaluate(self, eval_args: Mapping[str, Any]) -> Metrics:
        value = self._evaluate(self.state, **eval_args)
        if isinstance(value, Mapping) and not value:
            raise invalid_argument(
                "FunctionModel(evaluate=...)'s return value",
                value,
                "a number or a dict with at least one metric",
            )
        return numeric_metrics(value if isinstance(value, Mapping) else {"score": value}, "evaluate")

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
