"""The one set of argument checks: each returns the checked value or raises a PyBTError that
names the argument, the value received and what was expected.

Booleans are refused wherever a number is expected (``True`` is an ``int`` to Python, never
a population size or a learning rate to a user), and NumPy scalars are accepted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from pybt.errors import invalid_argument


def is_integer(value: Any) -> bool:
    """An ``int`` or NumPy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    """A real number (int, float or NumPy number), not a bool; NaN and infinities included."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def is_finite_real(value: Any) -> bool:
    return is_real(value) and math.isfinite(float(value))


def check_integer(name: str, value: Any, minimum: int | None = None, fix: str | None = None) -> int:
    """``value`` as an int, if it is an integer ``>= minimum``."""
    if not is_integer(value) or (minimum is not None and value < minimum):
        expected = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise invalid_argument(name, value, expected, fix)
    return int(value)


def check_real(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    fix: str | None = None,
) -> float:
    """``value`` as a float, if it is a finite real number in ``[low, high]`` (``(low, high]``
    with ``low_open``)."""
    fits = is_finite_real(value)
    if fits and low is not None:
        fits = value > low if low_open else value >= low
    if fits and high is not None:
        fits = value <= high
    if not fits:
        raise invalid_argument(name, value, _range_text(low, high, low_open), fix)
    return float(value)


def _range_text(low: float | None, high: float | None, low_open: bool) -> str:
    if low is None and high is None:
        return "a finite number"
    if high is None:
        return f"a number {'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"a number <= {high:g}"
    return f"a number in {'(' if low_open else '['}{low:g}, {high:g}]"


def check_instance(name: str, value: Any, kind: type, example: str, optional: bool = False) -> Any:
    """``value`` if it is a ``kind`` (or None, when ``optional``)."""
    if value is None and optional:
        return value
    if not isinstance(value, kind):
        expected = f"a {kind.__name__}" + (" or None" if optional else "")
        raise invalid_argument(name, value, expected, f"e.g. {name}={example}.")
    return value


def check_mapping(name: str, value: Any, example: str) -> dict[str, Any]:
    """A new dict of ``value`` (a mapping), or an empty one for None."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise invalid_argument(name, value, "a dict", f"e.g. {name}={example}.")
    return dict(value)
