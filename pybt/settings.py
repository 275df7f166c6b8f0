"""The Trainer's arguments: checked before anything is built, and described for the run folder.

Every check raises a PyBTError that names the argument, what it received and the fix. The
description (:func:`run_description`) is what makes a run *this* run: a run folder written by
another one is refused, with the differences listed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pybt import _validate
from pybt._system import available_memory
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
from pybt.store import check_round_trip, describe

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


def check_metric(model: ModelWrapper, metric: str | None) -> str | None:
    """The metric in PyBT's words, refused now when the model can tell it will never report it."""
    if metric is None:
        return None
    metric = model.metric_alias(metric)
    known = model.known_metrics()
    if known is not None and metric not in known:
        raise invalid_argument(
            "metric", metric, f"one of the metrics this model reports {known}", "Pass one of those names."
        )
    return metric


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
    result: str = "final",
) -> dict[str, Any]:
    """What makes a run this run (no memory addresses: it compares across processes)."""
    stop, ready, exploit, explore = policies
    # Which winner train() returns is part of the run; the default stays out of the
    # description, so folders written before it existed still compare equal.
    chosen = {} if result == "final" else {"result": result}
    return chosen | {
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


# Hyperparameters whose negative values no optimizer or data loader takes.
NON_NEGATIVE = (
    "lr",
    "learning_rate",
    "weight_decay",
    "eps",
    "epsilon",
    "momentum",
    "dampening",
    "batch_size",
)
# What PyBT keeps per member besides its model (bookkeeping, snapshots, seeds), a generous guess.
_BOOKKEEPING_BYTES = 4096


def check_space(space: Mapping[str, Domain], initial: Any, journaled: bool) -> None:
    """Values no run can use, refused before training: negative learning rates and the like,
    and (with a run folder) values its journal would not give back as they went in."""
    for name, domain in space.items():
        lowest = domain.lowest()
        if name in NON_NEGATIVE and lowest is not None and lowest < 0:
            raise invalid_argument(
                f"hyperparameters[{name!r}]", domain, f"a domain of values >= 0 ({name} cannot be negative)"
            )
    if journaled:
        rng = np.random.default_rng(0)
        for name, domain in space.items():
            for value in getattr(domain, "options", None) or [domain.sample(rng)]:
                check_round_trip(f"hyperparameters[{name!r}]", value)
        for index, values in enumerate(initial or []):
            if isinstance(values, Mapping):
                for name, value in values.items():
                    check_round_trip(f"initial_hyperparameters[{index}][{name!r}]", value)


def check_population_fits(population_size: int, model: ModelWrapper, in_process: bool) -> None:
    """Refuse, at once, a population this machine's memory cannot hold."""
    available = available_memory()
    if available is None:
        return
    per_member = _BOOKKEEPING_BYTES
    state_bytes = model.state_bytes() if in_process else None
    if state_bytes is not None:
        per_member += 2 * state_bytes  # its weights live here, and a copy of its state now and then
    needed = population_size * per_member
    if needed > available:
        raise invalid_argument(
            "population_size",
            population_size,
            f"a population this machine can hold: about {per_member:,} bytes per member make "
            f"{needed / 2**30:.1f} GiB, and {available / 2**30:.1f} GiB are available",
            "Use a smaller population, or RayExecutor to spread the members over machines.",
        )
