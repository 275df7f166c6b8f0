"""Tests for the ready and stop rules beyond epoch counts: ReadyAfter's burn-in,
ReadyAfterSeconds, StopWhen, Budget and their ``|`` combinations, alone and in a run.

NumPy only: these rules need no framework.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pybt
from pybt import Trainer
from pybt.history import HistoryView, RunHistory, StepRecord
from pybt.model import FunctionModel
from pybt.policy.done import AnyOf, Budget, DoneStrategy, RunStatus, StopAfter, StopWhen
from pybt.policy.ready import AnyOf as ReadyAnyOf
from pybt.policy.ready import ReadyAfter, ReadyAfterSeconds
from pybt.policy.snapshot import MemberSnapshot
from pybt.space import Uniform
from pybt.store import describe

PROPERTY = settings(max_examples=60, deadline=None)


def snap(epoch: int = 0, last_ready_epoch: int = 0, seconds: float = 0.0) -> MemberSnapshot:
    return MemberSnapshot(
        id=0, epoch=epoch, hyperparameters={}, last_ready_epoch=last_ready_epoch, seconds_since_ready=seconds
    )


def status(scores: list[float], mode: str = "max", seconds: float = 0.0) -> RunStatus:
    history = RunHistory(mode=mode)
    for i, score in enumerate(scores):
        history.add(StepRecord(i + 1, i % 2, i // 2 + 1, {}, {}, score, 0.0))
    return RunStatus(HistoryView(history), seconds)


# ---- what was there keeps its shape (run folders compare descriptions) ------------------------
def test_ready_after_and_stop_after_keep_their_reprs_and_descriptions() -> None:
    assert repr(ReadyAfter(4)) == "ReadyAfter(4)"
    assert describe(ReadyAfter(4)) == {"type": "pybt.policy.ready.ReadyAfter", "epochs": 4}
    assert repr(StopAfter(3)) == "StopAfter(3)"
    assert describe(StopAfter(3)) == {"type": "pybt.policy.done.StopAfter", "epochs": 3, "max_epochs": 3}


# ---- ReadyAfter(burn_in=...) -------------------------------------------------------------------
def test_burn_in_holds_every_ready_point_until_the_weights_have_trained_that_long() -> None:
    ready = ReadyAfter(4, burn_in=10)
    assert repr(ready) == "ReadyAfter(4, burn_in=10)"
    assert describe(ready)["burn_in"] == 10
    assert not ready.is_ready(snap(epoch=4)) and not ready.is_ready(snap(epoch=8))
    assert ready.is_ready(snap(epoch=10))  # 10 epochs since the last ready point (0)
    assert not ready.is_ready(snap(epoch=12, last_ready_epoch=10))
    assert ready.is_ready(snap(epoch=14, last_ready_epoch=10))


@PROPERTY
@given(epochs=st.integers(1, 10), epoch=st.integers(0, 40), last=st.integers(0, 40))
def test_no_burn_in_is_the_old_rule(epochs: int, epoch: int, last: int) -> None:
    member = snap(epoch=epoch, last_ready_epoch=min(last, epoch))
    assert ReadyAfter(epochs, burn_in=0).is_ready(member) == (epoch - min(last, epoch) >= epochs)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ReadyAfter(0),
        lambda: ReadyAfter(True),
        lambda: ReadyAfter(2.5),
        lambda: ReadyAfter(4, burn_in=-1),
        lambda: ReadyAfter(4, burn_in=2.0),
        lambda: ReadyAfterSeconds(0),
        lambda: ReadyAfterSeconds(-3),
        lambda: ReadyAfterSeconds(math.nan),
        lambda: ReadyAfterSeconds(True),
        lambda: StopAfter(0),
        lambda: StopWhen(score=math.inf),
        lambda: StopWhen(score="0.9"),
        lambda: Budget(seconds=0),
        lambda: Budget(seconds=math.inf),
        lambda: AnyOf(StopAfter(3), "StopAfter(4)"),
        lambda: ReadyAnyOf(ReadyAfter(3), StopAfter(4)),
        lambda: AnyOf(),
    ],
)
def test_bad_arguments_are_refused_with_a_pybt_error(make: Any) -> None:
    with pytest.raises(pybt.PyBTError, match="expected"):
        make()


def test_stop_when_and_budget_take_keywords_only() -> None:
    with pytest.raises(TypeError):
        StopWhen(0.9)  # type: ignore[misc]
    with pytest.raises(TypeError):
        Budget(60)  # type: ignore[misc]


# ---- ReadyAfterSeconds -----------------------------------------------------------------------------
def test_ready_after_seconds_counts_the_members_training_time_since_its_ready_point() -> None:
    ready = ReadyAfterSeconds(30)
    assert repr(ready) == "ReadyAfterSeconds(30)"
    assert not ready.is_ready(snap(epoch=100, seconds=29.9))
    assert ready.is_ready(snap(epoch=1, seconds=30.0))


def test_ready_strategies_combine_with_or() -> None:
    ready = ReadyAfter(4) | ReadyAfterSeconds(60) | ReadyAfter(2, burn_in=8)
    assert isinstance(ready, ReadyAnyOf) and len(ready.strategies) == 3  # one flat AnyOf
    assert repr(ready) == "ReadyAfter(4) | ReadyAfterSeconds(60) | ReadyAfter(2, burn_in=8)"
    assert ready.is_ready(snap(epoch=4))
    assert ready.is_ready(snap(epoch=1, seconds=61))
    assert not ready.is_ready(snap(epoch=3, seconds=10))


# ---- StopWhen, Budget, AnyOf -----------------------------------------------------------------------
def test_stop_when_ends_the_run_once_any_step_reaches_the_score() -> None:
    stop = StopWhen(score=0.9)
    assert repr(stop) == "StopWhen(score=0.9)" and stop.max_epochs is None
    assert not stop.is_done(snap(epoch=10**6))  # no member stops on its own
    assert not stop.run_is_done(status([]))
    assert not stop.run_is_done(status([0.5, 0.89]))
    assert stop.run_is_done(status([0.5, 0.95, 0.1]))  # reached once is enough


def test_stop_when_follows_the_runs_mode() -> None:
    stop = StopWhen(score=0.1)  # a loss: lower is better
    assert not stop.run_is_done(status([0.5, 0.2], mode="min"))
    assert stop.run_is_done(status([0.5, 0.08], mode="min"))


def test_budget_ends_the_run_when_its_seconds_are_spent() -> None:
    budget = Budget(seconds=60)
    assert repr(budget) == "Budget(seconds=60)" and not budget.is_done(snap(epoch=10**6))
    assert not budget.run_is_done(status([], seconds=59.9))
    assert budget.run_is_done(status([], seconds=60.0))


def test_any_of_is_done_when_one_criterion_is_and_bounds_epochs_by_the_tightest() -> None:
    stop = StopAfter(100) | StopWhen(score=0.99) | Budget(seconds=3600)
    assert isinstance(stop, AnyOf) and len(stop.criteria) == 3
    assert repr(stop) == "StopAfter(100) | StopWhen(score=0.99) | Budget(seconds=3600)"
    assert stop.max_epochs == 100
    assert stop.is_done(snap(epoch=100)) and not stop.is_done(snap(epoch=99))
    assert stop.run_is_done(status([0.995])) and stop.run_is_done(status([0.5], seconds=3600))
    assert not stop.run_is_done(status([0.5], seconds=10))
    assert (StopWhen(score=1.0) | Budget(seconds=1)).max_epochs is None
    assert (StopAfter(30) | StopAfter(20)).max_epochs == 20
    # What a run folder compares: the criteria, not a derived bound.
    assert describe(StopAfter(5) | StopWhen(score=0.5)) == {
        "type": "pybt.policy.done.AnyOf",
        "criteria": [
            {"type": "pybt.policy.done.StopAfter", "epochs": 5, "max_epochs": 5},
            {"type": "pybt.policy.done.StopWhen", "score": 0.5},
        ],
    }


@PROPERTY
@given(bounds=st.lists(st.one_of(st.none(), st.integers(1, 500)), min_size=1, max_size=5))
def test_any_of_bound_is_the_smallest_bound_of_its_members(bounds: list[int | None]) -> None:
    criteria: list[DoneStrategy] = [StopAfter(b) if b is not None else StopWhen(score=1.0) for b in bounds]
    known = [b for b in bounds if b is not None]
    assert AnyOf(*criteria).max_epochs == (min(known) if known else None)


# ---- in a run --------------------------------------------------------------------------------------
def counting(seconds: float = 0.0) -> FunctionModel:
    """A member's score is the epochs it has trained (a step may also take ``seconds``)."""

    def step(state: np.ndarray, hyperparameters: Any) -> np.ndarray:
        if seconds:
            time.sleep(seconds)
        return state + 1.0

    return FunctionModel(lambda seed: np.zeros(1), step, lambda state: float(state[0]))


def run(stop: DoneStrategy, model: FunctionModel | None = None, **kwargs: Any) -> Trainer:
    kwargs.setdefault("ready_strategy", ReadyAfter(2))
    trainer = Trainer(
        model=model or counting(),
        population_size=3,
        hyperparameters={"x": Uniform(0, 1)},
        stopping_criteria=stop,
        seed=0,
        verbose=0,
        **kwargs,
    )
    trainer.train()
    return trainer


def test_a_run_stops_at_the_target_score() -> None:
    trainer = run(StopAfter(50) | StopWhen(score=7))
    assert max(step.epoch for step in trainer.history) == 7


def test_a_run_stops_when_its_budget_is_spent() -> None:
    started = time.perf_counter()
    trainer = run(StopAfter(10_000) | Budget(seconds=0.3), model=counting(seconds=0.005))
    assert time.perf_counter() - started < 5
    assert 1 <= max(step.epoch for step in trainer.history) < 10_000


def test_the_last_step_ends_on_the_combined_bound() -> None:
    trainer = run(StopAfter(5) | StopWhen(score=100), step_args={"epochs_per_step": 2})
    assert {step.epoch for step in trainer.history} == {2, 4, 5}


def test_no_member_exploits_before_the_burn_in() -> None:
    trainer = run(StopAfter(16), ready_strategy=ReadyAfter(2, burn_in=8))
    assert trainer.exploits, "members exploit after the burn-in"
    assert min(exploit.member_epoch for exploit in trainer.exploits) >= 8


def test_members_are_ready_after_seconds_of_their_own_training() -> None:
    # Each step takes 20 ms, so a member is ready every third or so step.
    trainer = run(StopAfter(12), model=counting(seconds=0.02), ready_strategy=ReadyAfterSeconds(0.05))
    assert trainer.exploits, "time-based ready points let members exploit"


def test_a_run_folder_takes_combined_rules_back(tmp_path: Any) -> None:
    def make() -> Trainer:
        return Trainer(
            model=counting(),
            population_size=2,
            hyperparameters={"x": Uniform(0, 1)},
            stopping_criteria=StopAfter(4) | StopWhen(score=100),
            ready_strategy=ReadyAfter(2, burn_in=2) | ReadyAfterSeconds(60),
            run_dir=tmp_path / "run",
            seed=0,
            verbose=0,
        )

    _, score = make().train()
    again = make()  # the same description: the finished run is read back, not refused
    assert again.train()[1] == score and len(again.history) == 8


def test_a_budget_counts_the_time_of_an_interrupted_train_too() -> None:
    calls = {"n": 0}

    def step(state: np.ndarray, hyperparameters: Any) -> np.ndarray:
        calls["n"] += 1
        time.sleep(0.02)
        if calls["n"] == 15:  # about 0.3 s in: past the budget, which the next train() must know
            raise KeyboardInterrupt
        return state + 1.0

    trainer = Trainer(
        model=FunctionModel(lambda seed: np.zeros(1), step, lambda state: float(state[0])),
        population_size=3,
        hyperparameters={"x": Uniform(0, 1)},
        stopping_criteria=StopAfter(10_000) | Budget(seconds=0.25),
        ready_strategy=ReadyAfter(2),
        seed=0,
        verbose=0,
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    steps = len(trainer.history)
    trainer.train()
    assert len(trainer.history) - steps <= 3, "one more round at most: the budget was spent before"


def test_after_the_run_stops_no_member_copies_or_comes_back() -> None:
    # Members stop when one reaches the target; a member whose step ends then must not exploit.
    trainer = run(StopAfter(40) | StopWhen(score=9), ready_strategy=ReadyAfter(1))
    last_step = max(step.sequence for step in trainer.history if step.score >= 9)
    assert all(exploit.sequence < last_step for exploit in trainer.exploits)
