"""Presentation helpers shared by the tables, the figures and the page.

The run itself is read by :class:`pybt.history.RunHistory` (who is best, lineage, schedules,
the flat CSV columns); this module only decides how that reading is shown: which axis a
hyperparameter gets, where a category sits on it, which way the score is better in words,
and the headline numbers of a run. Nothing here imports matplotlib or pandas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from pybt.errors import invalid_argument
from pybt.history import RunHistory
from pybt.report.spaces import domain_options, domain_scale


class Summary(TypedDict):
    """The headline numbers of a run (``None`` where the records cannot tell)."""

    best_member: int | None
    best_epoch: int | None
    best_score: float | None
    metric: str | None
    mode: str
    members: int
    epochs: int
    steps: int
    exploits: int
    replacements: int
    failures: int
    seconds: float


def check_history(history: Any) -> RunHistory:
    """``history`` if it is a :class:`~pybt.history.RunHistory`; a PyBTError that says where to get one."""
    if not isinstance(history, RunHistory):
        raise invalid_argument(
            "history",
            history,
            "a pybt.history.RunHistory",
            "Pass trainer.run_history or pybt.store.load_run(run_dir).history; from dict rows, build "
            "one with RunHistory.from_rows(steps, exploits, failures, metric=..., mode=...).",
        )
    return history


def lower_is_better(history: RunHistory) -> bool:
    """Whether a lower score is better in this run.

    Asked of the history's fitness rather than read off ``mode`` here, so that the one rule
    in :mod:`pybt.objective` (a ``None`` mode counts as ``"max"``) is not restated.
    """
    return history.fitness(0.0) > history.fitness(1.0)


def direction(history: RunHistory) -> str:
    """``"higher is better"`` or ``"lower is better"``, for titles and the summary."""
    return "lower is better" if lower_is_better(history) else "higher is better"


def run_summary(history: RunHistory, config: Mapping[str, Any] | None = None) -> Summary:
    """The headline numbers: the best member and score, how many steps, exploits, failures.

    The metric, the mode and the best member come from ``history``; ``config`` only adds the
    population size when it was recorded (a member may never have stepped).
    """
    history = check_history(history)
    config = dict(config or {})
    best = history.best()
    steps, exploits = history.steps, history.exploits
    return Summary(
        best_member=None if best is None else best.member,
        best_epoch=None if best is None else best.epoch,
        best_score=None if best is None else best.score,
        metric=history.metric,
        mode="min" if lower_is_better(history) else "max",
        members=int(config.get("population_size") or len(history.members)),
        epochs=max((step.epoch for step in steps), default=0),
        steps=len(steps),
        exploits=sum(1 for record in exploits if record.reason == "exploit"),
        replacements=sum(1 for record in exploits if record.reason == "failure"),
        failures=len(history.failures),
        seconds=float(sum(step.seconds or 0.0 for step in steps)),
    )


def is_number(value: Any) -> bool:
    """A real number that can sit on a numeric axis (booleans are categories)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or _is_numpy_number(value)


def _is_numpy_number(value: Any) -> bool:
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    return kind in ("i", "u", "f") and getattr(value, "ndim", 1) == 0


def axis_scale(values: Sequence[Any], domain: Any = None) -> tuple[str, list[Any]]:
    """How to draw a hyperparameter's values: ``("log" | "linear", [])`` or ``("category", order)``.

    ``domain`` is the hyperparameter's domain in the run's space (a Domain or its recorded
    description): a log-scaled one (LogUniform, ``IntUniform(log=True)``) gets a log axis, a
    Uniform or IntUniform a linear one, a Choice its options in their order. Without a domain
    (or values that do not fit it), numbers spanning more than two decades (all positive) go on
    a log axis; anything not a number (strings, booleans, None) makes a category axis.
    """
    present = [value for value in values if not (isinstance(value, float) and math.isnan(value))]
    scale = domain_scale(domain)
    if all(is_number(value) for value in present):
        numbers = [float(value) for value in present]
        if scale == "log" and all(number > 0 for number in numbers):
            return "log", []
        if scale == "linear":
            return "linear", []
        if numbers and min(numbers) > 0 and max(numbers) / min(numbers) > 100:
            return "log", []
        return "linear", []
    options = domain_options(domain)
    if options is not None:
        given = list(dict.fromkeys(_category_key(option) for option in options))
        # Values outside the options (the space changed on a resume) fall back to the values' order.
        if all(_category_key(value) in given for value in present):
            return "category", given
    order: dict[Any, None] = {}
    # Numbers in numeric order first (an IntUniform mixed with "auto"), then the rest by name.
    for value in sorted(present, key=lambda v: (0, float(v), "") if is_number(v) else (1, 0.0, str(v))):
        order.setdefault(_category_key(value), None)
    return "category", list(order)


def _category_key(value: Any) -> Any:
    """A hashable stand-in for a category value (lists and dicts become their text)."""
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def category_index(value: Any, order: Sequence[Any]) -> int | None:
    """Where ``value`` sits on a category axis built by :func:`axis_scale` (None: not on it)."""
    key = _category_key(value)
    return next((i for i, option in enumerate(order) if option == key), None)
