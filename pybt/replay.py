"""Train one fresh model along a recorded PBT schedule (as Ray Tune's PBT replay does).

A PBT run finds a hyperparameter *schedule*; ``replay`` applies it to a new member, e.g. for
the final training on more data. The schedule comes from ``trainer.schedule()`` or from a
run folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from pybt.errors import invalid_argument
from pybt.lineage import ScheduleEntry
from pybt.model.base import Metrics, ModelWrapper
from pybt.space import Fixed
from pybt.store import load_run


def load_schedule(run_dir: str | os.PathLike[str], member: int | None = None) -> list[ScheduleEntry]:
    """The schedule of ``member`` (default: the winner) recorded in a run folder."""
    run = load_run(run_dir)
    # A finished run names its winner; for one still going, the records tell who stands best now.
    entries = run.history.schedule(run.best_member if member is None else member)
    if not entries:
        raise invalid_argument("member", member, "a member with recorded steps in the run folder")
    return entries


def replay(
    schedule: Sequence[Mapping[str, Any]] | str | os.PathLike[str],
    model: ModelWrapper,
    step_args: Mapping[str, Any] | None = None,
    eval_args: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> tuple[Any, Metrics]:
    """Train a fresh member of ``model`` following ``schedule``; return ``(model, metrics)``.

    ``schedule`` is a list of entries with ``from_epoch``, ``to_epoch`` and ``hyperparameters``
    (``trainer.schedule()``), or a run folder path (its winner's schedule). ``step_args`` takes
    ``fit_args`` as for the Trainer (``epochs_per_step`` is ignored: the schedule says how long each
    stretch is). ``metrics`` is the final evaluation on ``eval_args``, or empty without them.
    """
    if not isinstance(model, ModelWrapper):
        raise invalid_argument("model", type(model).__name__, "a ModelWrapper (e.g. KerasModelWrapper(...))")
    entries = load_schedule(schedule) if isinstance(schedule, (str, os.PathLike)) else list(schedule)
    if not entries:
        raise invalid_argument(
            "schedule", schedule, "a non-empty schedule", "Use trainer.schedule() of a run."
        )
    fit_args = dict((step_args or {}).get("fit_args") or {})
    # The schedule's values make the space; without eval_args only fit_args can be checked.
    space = {name: Fixed(value) for name, value in entries[0]["hyperparameters"].items()}
    model.prepare(space, fit_args, dict(eval_args) if eval_args is not None else fit_args)
    member = model.spawn(seed)
    for index, entry in enumerate(entries):
        epochs = int(entry["to_epoch"]) - int(entry["from_epoch"])
        if epochs < 1:
            raise invalid_argument(f"schedule[{index}]", entry, "to_epoch > from_epoch")
        member.fit(dict(entry["hyperparameters"]), epochs, fit_args)
    metrics = member.evaluate(dict(eval_args)) if eval_args is not None else {}
    return member.unwrap(), metrics
