"""PB2's data: the space as a unit box, and the run's records as (time, score before,
hyperparameters) → score change per epoch.

The box: every domain PB2 can order becomes one coordinate in [0, 1] — ``Uniform`` and
``IntUniform`` linearly, ``LogUniform`` and ``IntUniform(log=True)`` in log scale, an ordered
``Choice`` by its index — and a point of the box decodes back to a value of the domain
(integers and indices rounded, values clipped into bounds). Domains it cannot order
(``Fixed``, an unordered ``Choice``, a user's own ``Domain``) stay outside the box.

The observations: one per step that has a standing before it (the member's previous step, or
the donor's score it copied): ``gain = (fitness after − fitness before) / epochs``, with the
epoch and the fitness the step started from. Fitness is the score turned so higher is better.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pybt.history import HistoryView
from pybt.space import Choice, Domain, IntUniform, LogUniform, Uniform


@dataclass(frozen=True)
class Axis:
    """One coordinate of the box: ``name``'s domain mapped onto [0, 1]."""

    name: str
    bottom: float  # the domain's bounds (indices for choices)
    top: float
    log: bool = False
    integer: bool = False
    options: tuple[Any, ...] | None = None  # an ordered Choice

    @property
    def low(self) -> float:
        """The lower bound in the mapped scale (log for log domains)."""
        return math.log(self.bottom) if self.log else self.bottom

    @property
    def high(self) -> float:
        return math.log(self.top) if self.log else self.top

    def encode(self, value: Any) -> float:
        """``value`` in [0, 1] (NaN for a value this axis cannot place)."""
        if self.options is not None:
            if value not in self.options:
                return math.nan
            number = float(self.options.index(value))
        else:
            number = float(value)
            if self.log:
                number = math.log(number) if number > 0 else math.nan
        if not math.isfinite(number):
            return math.nan
        # Values outside the space (a run resumed with narrower bounds) sit on its edge.
        return min(max((number - self.low) / (self.high - self.low), 0.0), 1.0)

    def decode(self, unit: float) -> Any:
        """The domain's value at ``unit`` (rounded to an integer or an option where it must be)."""
        unit = min(max(float(unit), 0.0), 1.0)
        number = self.low + unit * (self.high - self.low)
        if self.options is not None:
            return self.options[round(number)]
        if self.log:
            # The edges exactly (exp(log x) may miss x by an ulp, and a user reads the bounds).
            number = self.bottom if unit == 0.0 else self.top if unit == 1.0 else math.exp(number)
        if self.integer:
            return int(min(max(round(number), self.bottom), self.top))
        return float(min(max(number, self.bottom), self.top))


def axis_for(name: str, domain: Domain) -> Axis | None:
    """The box coordinate for ``domain``, or None for a domain PB2 cannot order."""
    if isinstance(domain, IntUniform):
        return Axis(name, domain.low, domain.high, log=domain.log, integer=True)
    if isinstance(domain, Uniform):  # LogUniform included
        return Axis(name, domain.low, domain.high, log=isinstance(domain, LogUniform))
    if isinstance(domain, Choice) and domain.ordered and len(domain.options) > 1:
        return Axis(name, 0.0, float(len(domain.options) - 1), options=domain.options)
    return None


class Box:
    """The space's orderable hyperparameters as the unit box PB2 models and searches."""

    def __init__(self, space: Mapping[str, Domain]) -> None:
        self.axes = tuple(axis for name, domain in space.items() if (axis := axis_for(name, domain)))
        self.names = tuple(axis.name for axis in self.axes)

    def __len__(self) -> int:
        return len(self.axes)

    def encode(self, hyperparameters: Mapping[str, Any]) -> np.ndarray | None:
        """The point of ``hyperparameters`` in the box (None when one lies outside the space)."""
        try:
            point = np.array([axis.encode(hyperparameters[axis.name]) for axis in self.axes])
        except (KeyError, TypeError, ValueError):
            return None
        return None if np.isnan(point).any() else point

    def decode(self, point: Sequence[float]) -> dict[str, Any]:
        return {axis.name: axis.decode(unit) for axis, unit in zip(self.axes, point, strict=True)}


@dataclass(frozen=True)
class Observations:
    """What PB2 learns from: starting epochs, box points, score changes per epoch, step lengths."""

    epochs: np.ndarray  # [n] the epoch each step started from
    levels: np.ndarray  # [n] the fitness it started from
    points: np.ndarray  # [n, d] its hyperparameters in the box
    gains: np.ndarray  # [n] fitness change per epoch over the step
    lengths: np.ndarray  # [n] epochs the step trained

    def __len__(self) -> int:
        return len(self.gains)


def observations(history: HistoryView, box: Box, newest: int) -> Observations:
    """The ``newest`` observations of the run's steps, oldest first.

    Read from the newest step back, each asking the history where the member's weights stood
    just before it (a copy stands where its donor stood), so a decision costs the same in a
    long run as in a short one.
    """
    steps = history.steps
    kept: list[tuple[int, float, float, int, np.ndarray]] = []
    for index in range(len(steps) - 1, -1, -1):
        step = steps[index]
        before = history.standing(step.member, before=step.sequence)
        if before is None or step.epoch <= before.epoch:
            continue
        level = history.fitness(before.score)
        gain = (history.fitness(step.score) - level) / (step.epoch - before.epoch)
        point = box.encode(step.hyperparameters)
        if point is None or not math.isfinite(gain):
            continue
        kept.append((before.epoch, level, gain, step.epoch - before.epoch, point))
        if len(kept) == newest:
            break
    kept.reverse()
    return Observations(
        epochs=np.array([k[0] for k in kept], dtype=float),
        levels=np.array([k[1] for k in kept], dtype=float),
        points=np.array([k[4] for k in kept], dtype=float).reshape(len(kept), len(box)),
        gains=np.array([k[2] for k in kept], dtype=float),
        lengths=np.array([k[3] for k in kept], dtype=float),
    )
