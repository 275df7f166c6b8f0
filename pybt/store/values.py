"""Journal values as JSON text, and stable descriptions of a run's configuration.

Hyperparameters and metrics go into the journal as JSON. Plain JSON would turn tuples into
lists (a ``Choice`` of Adam's ``betas`` pairs would no longer match its options after a
resume) and the int keys of a dict into strings, so tuples and dicts whose keys are not all
strings are tagged; NumPy scalars become their Python values. :func:`check_round_trip` refuses,
before training, a value that would not come back equal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from pybt.errors import PyBTError, invalid_argument

_TUPLE, _DICT = "__tuple__", "__dict__"


def _tag(value: Any) -> Any:
    if isinstance(value, tuple):
        return {_TUPLE: [_tag(item) for item in value]}
    if isinstance(value, list):
        return [_tag(item) for item in value]
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and not {_TUPLE, _DICT} & set(value):
            return {key: _tag(item) for key, item in value.items()}
        return {_DICT: [[_tag(key), _tag(item)] for key, item in value.items()]}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_TUPLE}:
            return tuple(_untag(item) for item in value[_TUPLE])
        if set(value) == {_DICT}:
            return {_untag(key): _untag(item) for key, item in value[_DICT]}
        return {key: _untag(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_untag(item) for item in value]
    return value


def dumps(value: Any) -> str:
    """JSON text for journal values (tuples survive the round trip)."""
    try:
        # Keys keep their order (a schedule's columns follow the space), JSON sorts nothing.
        return json.dumps(_tag(value))
    except (TypeError, ValueError) as error:
        raise PyBTError(
            f"A run folder records hyperparameters and metrics as JSON, and this value is not "
            f"JSON: {value!r} ({error}). With run_dir, use hyperparameter values that are "
            f"numbers, strings, booleans, None, or lists/tuples/dicts of them (e.g. a Choice of "
            f"names that your step function maps to functions)."
        ) from error


def loads(text: str) -> Any:
    """The value of journal JSON text (ValueError/TypeError for text that is not)."""
    return _untag(json.loads(text))


def check_round_trip(name: str, value: Any) -> None:
    """Refuse, before training, a value the journal would not give back equal."""
    try:
        back = loads(dumps(value))
    except (PyBTError, TypeError, ValueError) as error:
        raise invalid_argument(
            name, value, "a value a run folder can record (numbers, strings, booleans, None, and "
            "lists, tuples and dicts of them)", "Map other objects to names your step function "
            "looks up (e.g. a Choice of optimizer names).",
        ) from error  # fmt: skip
    if back != value:
        raise invalid_argument(
            name, value, "a value that comes back from the run folder's journal as it went in",
            f"It would come back as {back!r}.",
        )  # fmt: skip


def describe(value: Any) -> Any:
    """A stable description of a configuration value, for comparing runs (no memory addresses)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):  # np.float32(0.1), np.int64(32): their Python value
        return value.item()
    if isinstance(value, np.ndarray):
        return {"type": "numpy.ndarray", "dtype": str(value.dtype), "values": value.tolist()}
    if isinstance(value, Mapping):
        return {str(key): describe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [describe(item) for item in value]
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    if callable(value) and hasattr(value, "__qualname__"):  # a function: its name, not its address
        return {"type": kind, "name": f"{getattr(value, '__module__', '')}.{value.__qualname__}"}
    try:
        attributes = vars(value)
    except TypeError:  # no __dict__ (__slots__, C types): its type stands for it
        return {"type": kind}
    settings = {key: describe(item) for key, item in sorted(attributes.items()) if not key.startswith("_")}
    return {"type": kind, **settings}
