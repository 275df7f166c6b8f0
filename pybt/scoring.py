"""Scoring a finished step: its metrics, the score among them, or the error that fails it.

The scored metric is the user's choice (any metric, ``train_*`` ones included) or the model's
default among the evaluated ones; it is resolved, with its mode, at the first evaluation and
kept in the run's :class:`~pybt.history.RunHistory`. A step whose score is not finite, or
whose losses are not, fails like a step that raised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

from pybt.errors import invalid_argument
from pybt.executor.base import StepResult
from pybt.history import RunHistory
from pybt.model.base import ModelWrapper
from pybt.objective import infer_mode


class Scored(NamedTuple):
    """A step's metrics (evaluated, and training ones as ``train_*``) and its score, or the error."""

    metrics: dict[str, float]
    score: float | None
    error: str | None


def score_step(result: StepResult, model: ModelWrapper, history: RunHistory) -> Scored:
    """The step's metrics and score; resolves the run's metric and mode at the first call."""
    clashes = sorted(
        f"train_{name}" for name in result.train_metrics if f"train_{name}" in result.eval_metrics
    )
    if clashes:
        raise invalid_argument(
            "evaluated metric names",
            clashes,
            "names that differ from the step's training metrics, which PyBT reports as train_<name>",
            "Rename the evaluated metrics (or the step's), so neither overwrites the other.",
        )
    metrics = {**result.eval_metrics, **{f"train_{k}": v for k, v in result.train_metrics.items()}}
    if result.error is not None:
        return Scored(metrics, None, result.error)
    metric = _resolve(result.eval_metrics, metrics, model, history)
    score = metrics[metric]
    if not math.isfinite(score):
        return Scored(metrics, None, f"non-finite score {metric}={score}")
    bad_losses = {k: v for k, v in metrics.items() if "loss" in k and not math.isfinite(v)}
    if bad_losses:
        return Scored(metrics, None, f"non-finite loss {bad_losses}")
    return Scored(metrics, score, None)


def _resolve(
    evaluated: Mapping[str, float], metrics: Mapping[str, float], model: ModelWrapper, history: RunHistory
) -> str:
    metric = history.metric or model.default_metric(dict(evaluated))
    if metric not in metrics:
        raise invalid_argument(
            "metric", metric, f"one of the evaluated metrics {sorted(metrics)}", "Pass one of those names."
        )
    if metric != history.metric or history.mode is None:
        history.set_objective(metric, history.mode or infer_mode(metric))
    return metric
