"""How the hyperparameters a member copied change before it trains on.

Write your own by subclassing :class:`ExploreStrategy` and implementing ``explore``: given
the copied hyperparameters, the space and a random generator, return new hyperparameters.
Every value you return must lie in its domain (``Domain.perturb`` and ``sample`` ensure it).

A strategy that needs more than that — the run's records, the member, the donor, the values
already chosen for other members in the same decision (PB2 models what worked) — overrides
:meth:`ExploreStrategy.explore_in`, which gets an :class:`ExploreContext`; its default calls
``explore``, so simple strategies never see it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pybt.errors import invalid_argument
from pybt.history import HistoryView
from pybt.policy.snapshot import MemberSnapshot
from pybt.space import Domain


@dataclass(frozen=True)
class ExploreContext:
    """Everything an explore decision may look at, read-only.

    ``member`` is the member that explores and ``donor`` the one it copied (None when it
    explores its own hyperparameters); ``history`` is a read-only view of the run's records;
    ``pending`` holds the hyperparameters already chosen for other members in this decision.
    """

    hyperparameters: Mapping[str, Any]
    space: Mapping[str, Domain]
    rng: np.random.Generator
    member: MemberSnapshot
    donor: MemberSnapshot | None
    history: HistoryView
    pending: tuple[Mapping[str, Any], ...] = ()


class ExploreStrategy(ABC):
    """Turns a donor's hyperparameters into the exploiting member's new ones."""

    @abstractmethod
    def explore(
        self, hyperparameters: Mapping[str, Any], space: Mapping[str, Domain], rng: np.random.Generator
    ) -> dict[str, Any]:
        """New hyperparameters (a fresh dict; the input is read-only)."""

    def explore_in(self, context: ExploreContext) -> dict[str, Any]:
        """New hyperparameters, seeing the whole :class:`ExploreContext` (default: ``explore``)."""
        return self.explore(context.hyperparameters, context.space, context.rng)


def _probability(argument: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        raise invalid_argument(argument, value, "a probability in [0, 1]")
    return float(value)


class Perturb(ExploreStrategy):
    """Each hyperparameter is multiplied by one of ``factors`` (ordered choices step to a
    neighbour), or with ``resample_probability`` drawn afresh from its domain."""

    def __init__(self, factors: Sequence[float] = (0.8, 1.2), resample_probability: float = 0.25) -> None:
        if (
            isinstance(factors, (str, bytes))
            or not isinstance(factors, Sequence)
            or not factors
            or not all(isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 for f in factors)
        ):
            raise invalid_argument(
                "Perturb(factors=...)", factors, "a non-empty sequence of positive numbers"
            )
        self.factors = tuple(float(f) for f in factors)
        self.resample_probability = _probability("Perturb(resample_probability=...)", resample_probability)

    def explore(
        self, hyperparameters: Mapping[str, Any], space: Mapping[str, Domain], rng: np.random.Generator
    ) -> dict[str, Any]:
        explored = dict(hyperparameters)
        for name, domain in space.items():
            if rng.random() < self.resample_probability:
                explored[name] = domain.resample(rng)
            else:
                factor = self.factors[int(rng.integers(len(self.factors)))]
                explored[name] = domain.perturb(hyperparameters[name], factor, rng)
        return explored

    def __repr__(self) -> str:
        return f"Perturb(factors={self.factors}, resample_probability={self.resample_probability})"


class Resample(ExploreStrategy):
    """Each hyperparameter is drawn afresh from its domain (with ``probability``, default always)."""

    def __init__(self, probability: float = 1.0) -> None:
        self.probability = _probability("Resample(probability=...)", probability)

    def explore(
        self, hyperparameters: Mapping[str, Any], space: Mapping[str, Domain], rng: np.random.Generator
    ) -> dict[str, Any]:
        explored = dict(hyperparameters)
        for name, domain in space.items():
            if rng.random() < self.probability:
                explored[name] = domain.resample(rng)
        return explored

    def __repr__(self) -> str:
        return f"Resample(probability={self.probability})"


def __getattr__(name: str) -> Any:
    # PB2 lives in pybt.policy.pb2, which subclasses ExploreStrategy from here: it is imported on
    # first use, so either module may be imported first and SciPy is loaded only by a decision.
    if name == "PB2":
        from pybt.policy.pb2 import PB2

        return PB2
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
