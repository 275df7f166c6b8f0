"""Hyperparameter domains: where a value may be sampled, how it is perturbed, and its bounds.

A *space* is a plain ``{name: Domain}`` dict. Every domain can

- ``sample(rng)``: draw a value from the prior (also what *resample* means in PBT);
- ``perturb(value, factor, rng)``: move a value the way PBT's explore step does —
  numbers are multiplied by ``factor`` (for log-scaled domains that is a step in log
  space), ordered choices move to a neighbour — and never leave the bounds;
- ``contains(value)`` / ``check(name, value)``: validate a value a user gave.

Invalid domains raise :class:`pybt.PyBTError` when they are built, not when sampled.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pybt.errors import invalid_argument

__all__ = ["Choice", "Domain", "Fixed", "IntUniform", "LogUniform", "Space", "Uniform", "as_space"]


class Domain(ABC):
    """One hyperparameter's domain. Subclass it for a domain PyBT lacks."""

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Any:
        """A value drawn from the domain's prior."""

    @abstractmethod
    def perturb(self, value: Any, factor: float, rng: np.random.Generator) -> Any:
        """``value`` moved by ``factor`` (> 1 up, < 1 down), kept inside the domain."""

    @abstractmethod
    def contains(self, value: Any) -> bool:
        """Whether ``value`` lies in the domain."""

    def resample(self, rng: np.random.Generator) -> Any:
        """A fresh value from the prior (PBT's *resample* explore)."""
        return self.sample(rng)

    def lowest(self) -> float | None:
        """The smallest number the domain can give (None when it gives no numbers)."""
        return None

    def check(self, name: str, value: Any) -> Any:
        """Return ``value`` if it lies in the domain, else raise a PyBTError naming ``name``."""
        if not self.contains(value):
            raise invalid_argument(
                name, value, f"a value in {self!r}", "Give a value inside the domain, or widen the domain."
            )
        return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _bounds(kind: str, low: Any, high: Any) -> tuple[float, float]:
    for label, bound in (("low", low), ("high", high)):
        if not _is_number(bound) or not math.isfinite(float(bound)):
            raise invalid_argument(f"{kind}({label}=...)", bound, "a finite number")
    if not low < high:
        raise invalid_argument(f"{kind}(low, high)", (low, high), "low < high", "Swap or widen the bounds.")
    return float(low), float(high)


class Uniform(Domain):
    """A real number drawn uniformly from ``[low, high]``; perturbed by multiplication."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = _bounds(type(self).__name__, low, high)

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))

    def perturb(self, value: Any, factor: float, rng: np.random.Generator) -> float:
        return float(np.clip(float(value) * factor, self.low, self.high))

    def contains(self, value: Any) -> bool:
        return _is_number(value) and self.low <= float(value) <= self.high

    def lowest(self) -> float:
        return self.low

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.low:g}, {self.high:g})"


class LogUniform(Uniform):
    """A positive real number whose logarithm is uniform on ``[log low, log high]``.

    Perturbing multiplies by the factor, which is a step of ``log(factor)`` in log space:
    the natural scale of learning rates and the like.
    """

    def __init__(self, low: float, high: float) -> None:
        super().__init__(low, high)
        if self.low <= 0:
            raise invalid_argument(
                "LogUniform(low=...)", low, "low > 0", "Use Uniform for ranges that reach 0."
            )

    def sample(self, rng: np.random.Generator) -> float:
        return float(
            np.clip(math.exp(rng.uniform(math.log(self.low), math.log(self.high))), self.low, self.high)
        )


class IntUniform(Domain):
    """An integer in ``[low, high]`` (both included); ``log=True`` samples its logarithm uniformly.

    Perturbing multiplies and rounds; a value that rounding would leave where it was moves
    by one in the factor's direction, so small integers still explore.
    """

    def __init__(self, low: int, high: int, log: bool = False) -> None:
        for label, bound in (("low", low), ("high", high)):
            if not isinstance(bound, (int, np.integer)) or isinstance(bound, bool):
                raise invalid_argument(f"IntUniform({label}=...)", bound, "an integer")
        _bounds("IntUniform", low, high)
        if log and low <= 0:
            raise invalid_argument("IntUniform(low=..., log=True)", low, "low >= 1 when log=True")
        self.low, self.high, self.log = int(low), int(high), bool(log)

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:
            # Uniform in log space over [low, high + 1), floored: every integer reachable.
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
            return int(np.clip(math.floor(value), self.low, self.high))
        return int(rng.integers(self.low, self.high + 1))

    def perturb(self, value: Any, factor: float, rng: np.random.Generator) -> int:
        current = int(value)
        moved = round(current * factor)
        if moved == current and factor != 1:
            moved = current + (1 if factor > 1 else -1)
        return int(np.clip(moved, self.low, self.high))

    def contains(self, value: Any) -> bool:
        # A NaN or an infinity is no integer (and int() of one would raise).
        return (
            _is_number(value)
            and math.isfinite(float(value))
            and float(value) == int(value)
            and self.low <= int(value) <= self.high
        )

    def lowest(self) -> float:
        return float(self.low)

    def __repr__(self) -> str:
        log = ", log=True" if self.log else ""
        return f"IntUniform({self.low}, {self.high}{log})"


class Choice(Domain):
    """One of ``options``. ``ordered=True`` means neighbours are similar: perturbing moves one
    place up (factor > 1) or down (factor < 1); an unordered choice is resampled instead."""

    def __init__(self, options: Sequence[Any], ordered: bool = False) -> None:
        if isinstance(options, (str, bytes)) or not isinstance(options, Sequence):
            raise invalid_argument("Choice(options=...)", options, "a list or tuple of options")
        if len(options) == 0:
            raise invalid_argument("Choice(options=...)", options, "at least one option")
        if any(options.index(option) != i for i, option in enumerate(options)):
            raise invalid_argument("Choice(options=...)", options, "distinct options", "Remove the repeats.")
        self.options, self.ordered = tuple(options), bool(ordered)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.options[int(rng.integers(len(self.options)))]

    def perturb(self, value: Any, factor: float, rng: np.random.Generator) -> Any:
        if not self.ordered:
            return self.sample(rng)
        index = self.options.index(value) + (1 if factor > 1 else -1 if factor < 1 else 0)
        return self.options[int(np.clip(index, 0, len(self.options) - 1))]

    def contains(self, value: Any) -> bool:
        return value in self.options

    def lowest(self) -> float | None:
        numbers = [float(option) for option in self.options if _is_number(option)]
        return min(numbers) if numbers else None

    def __repr__(self) -> str:
        ordered = ", ordered=True" if self.ordered else ""
        return f"Choice({list(self.options)!r}{ordered})"


class Fixed(Domain):
    """A hyperparameter that is carried along but never changes (a plain value in a space)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def sample(self, rng: np.random.Generator) -> Any:
        return self.value

    def perturb(self, value: Any, factor: float, rng: np.random.Generator) -> Any:
        return self.value

    def contains(self, value: Any) -> bool:
        return bool(value == self.value)

    def lowest(self) -> float | None:
        return float(self.value) if _is_number(self.value) else None

    def __repr__(self) -> str:
        return f"Fixed({self.value!r})"


Space = Mapping[str, Domain]


def as_space(hyperparameters: Mapping[str, Any], argument: str = "hyperparameters") -> dict[str, Domain]:
    """A ``{name: Domain}`` dict from a user's mapping; plain values become :class:`Fixed`."""
    if not isinstance(hyperparameters, Mapping):
        raise invalid_argument(
            argument, hyperparameters, "a dict {name: Domain}", "e.g. {'lr': LogUniform(1e-4, 1e-1)}"
        )
    space: dict[str, Domain] = {}
    for name, domain in hyperparameters.items():
        if not isinstance(name, str) or not name:
            raise invalid_argument(f"{argument} key", name, "a non-empty string")
        space[name] = domain if isinstance(domain, Domain) else Fixed(domain)
    if not space:
        raise invalid_argument(argument, hyperparameters, "at least one hyperparameter to explore")
    return space
