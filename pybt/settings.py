"""The Trainer's arguments: checked before anything is built, and described for the run folder.

Every check raises a PyBTError that names the argument, what it received and the fix. The
description (:func:`run_description`) is what makes a run *this* run: a run folder written by
another one is refused, with the differences listed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from pybt import _validate
from pybt.callbacks.base import Callback
from pybt.errors import invalid_argument
from pybt.executor.base import Executor
from pybt.model.base import ModelWrapper
from pybt.objective import check_mode
from pybt.policy.done import DoneStrategy
from pybt.policy.exploit import ExploitStrategy
from pybt.policy.explore import ExploreStrategy
from pybt.policy.ready import ReadyStrategy
from pybt.space import Domain
from pybt.store import describe

_STEP_ARG_KEYS = ("epochs_per_step", "fit_args")


def check_arguments(
    model: Any,
    population_size: Any,
    stopping_criteria: Any,
    ready_strategy: Any,
    exploit_strategy: Any,
    explore_strategy: Any,
    metric: Any,
    mode: Any,
    executor: Any,
    run_dir: Any,
    seed: Any,
    callbacks: Sequence[Any],
) -> None:
    """Raise a PyBTError for the first argument the Trainer cannot use."""
    check = _validate.check_instance
    check("model", model, ModelWrapper, "KerasModelWrapper(model, optimizer=..., loss=...)")
    _validate.check_integer("population_size", population_size, 2, "PBT needs members to compare.")
    check("stopping_criteria", stopping_criteria, DoneStrategy, "StopAfter(20)")
    check("ready_strategy", ready_strategy, ReadyStrategy, "ReadyAfter(4)")
    check("exploit_strategy", exploit_strategy, ExploitStrategy, "Truncation()", optional=True)
    check("explore_strategy", explore_strategy, ExploreStrategy, "Perturb()", optional=True)
    if metric is not None and not isinstance(metric, str):
        raise invalid_argument("metric", metric, "the name of an evaluated metric, or None")
    check_mode(mode)
    check("executor", executor, Executor, "RayExecutor()", optional=True)
    if run_dir is not None and not isinstance(run_dir, (str, os.PathLike)):
        raise invalid_argument("run_dir", run_dir, "a folder path or None")
    if seed is not None:
        _validate.check_integer("seed", seed, 0)
    for index, callback in enumerate(callbacks):
        check(f"callbacks[{index}]", callback, Callback, "ProgressBar()")


def parse_step_args(step_args: Any) -> tuple[int, dict[str, Any]]:
    """``(epochs_per_step, fit_args)`` from ``step_args``."""
    args = _validate.check_mapping(
        "step_args", step_args, "{'epochs_per_step': 2, 'fit_args': {'x': x, 'y': y}}"
    )
    unknown = sorted(set(args) - set(_STEP_ARG_KEYS))
    if unknown:
        raise invalid_argument(
            "step_args",
            unknown,
            f"only the keys {list(_STEP_ARG_KEYS)}",
            "Put arguments for fit() in 'fit_args'.",
        )
    epochs = _validate.check_integer("step_args['epochs_per_step']", args.get("epochs_per_step", 1), 1)
    fit_args = _validate.check_mapping(
        "step_args['fit_args']", args.get("fit_args"), "{'x': x_train, 'y': y_train}"
    )
    return epochs, fit_args


def run_description(
    model: ModelWrapper,
    population_size: int,
    space: Mapping[str, Domain],
    initial_hyperparameters: Any,
    policies: Sequence[Any],
    epochs_per_step: int,
    metric: str | None,
    mode: str | None,
    seed: int,
) -> dict[str, Any]:
    """What makes a run this run (no memory addresses: it compares across processes)."""
    stop, ready, exploit, explore = policies
    return {
        "model": f"{type(model).__module__}.{type(model).__qualname__}",
        "population_size": population_size,
        "space": describe(space),
        "initial_hyperparameters": describe(initial_hyperparameters),
        "stopping_criteria": describe(stop),
        "ready_strategy": describe(ready),
        "exploit_strategy": describe(exploit),
        "explore_strategy": describe(explore),
        "epochs_per_step": epochs_per_step,
        "metric": metric,
        "mode": mode,
        "seed": seed,
    }
