"""RunHistory: records read like dicts, and one reading of a run — standings, best now, best
ever, lineage, schedule — the same live and from a journal."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pybt
from pybt.history import ExploitRecord, FailureRecord, RunHistory, Standing, StepRecord
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter


def step(sequence: int, member: int, epoch: int, score: float, lr: float = 0.1) -> StepRecord:
    return StepRecord(sequence, member, epoch, {"lr": lr}, {"score": score}, score, 0.01)


def exploit(sequence: int, member: int, donor: int, epoch: int, member_epoch: int) -> ExploitRecord:
    return ExploitRecord(sequence, member, donor, epoch, member_epoch, {"lr": 0.1}, {"lr": 0.2})


def test_records_are_frozen_and_read_like_dicts() -> None:
    record = step(1, 0, 2, 0.5)
    assert record["score"] == record.score == 0.5
    assert dict(record) == record.as_dict() and set(record) >= {"member", "epoch", "sequence"}
    assert record.get("reason") is None and {**record}["member"] == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.score = 1.0  # type: ignore[misc]
    with pytest.raises(KeyError):
        record["nothing"]


def test_best_now_follows_copies_and_failures() -> None:
    history = RunHistory(
        [
            step(1, 0, 2, 0.5),
            step(2, 1, 2, 0.9),
            exploit(3, 0, 1, 2, 2),  # member 0 now stands where member 1 stood: 0.9
            FailureRecord(4, 1, 2, {"lr": 1.0}, "diverged"),  # member 1 has no standing
        ],
        metric="score",
        mode="max",
    )
    assert history.standing(0) == Standing(0, 2, 0.9)
    assert history.standing(1) is None
    assert history.standing(0, before=3) == Standing(0, 2, 0.5)
    assert history.best() == Standing(0, 2, 0.9)
    assert history.best_ever() == step(2, 1, 2, 0.9)
    assert history.lineage(0) == [
        {"member": 1, "from_epoch": 0, "to_epoch": 2},
        {"member": 0, "from_epoch": 2, "to_epoch": 2},  # copied, not trained since
    ]


def test_min_mode_best_and_ties_go_to_the_lowest_id() -> None:
    history = RunHistory([step(1, 1, 1, 0.3), step(2, 0, 1, 0.3), step(3, 2, 1, 0.7)], mode="min")
    assert history.best() == Standing(0, 1, 0.3)
    assert history.best_ever() == step(1, 1, 1, 0.3), "the first of equal scores"


def test_from_rows_takes_dicts_in_any_order_and_refuses_going_back() -> None:
    rows = [step(2, 1, 1, 0.9).as_dict(), step(1, 0, 1, 0.5).as_dict()]
    history = RunHistory.from_rows(rows, mode="max")
    assert [record.sequence for record in history.steps] == [1, 2]
    with pytest.raises(ValueError):
        history.add(step(2, 0, 2, 0.1))


def test_an_unknown_member_is_named() -> None:
    with pytest.raises(pybt.PyBTError, match="member"):
        RunHistory([step(1, 0, 1, 0.5)]).schedule(7)


# A random run: members step, copy a better member when ready, sometimes fail and are replaced.
@st.composite
def runs(draw: Any) -> list[Any]:
    members = draw(st.integers(2, 5))
    epoch = dict.fromkeys(range(members), 0)
    alive = dict.fromkeys(range(members), True)
    records: list[Any] = []
    for _ in range(draw(st.integers(1, 40))):
        sequence = len(records) + 1
        member = draw(st.integers(0, members - 1))
        kind = draw(st.sampled_from(["step", "step", "exploit", "failure"]))
        donors = [m for m in range(members) if m != member and alive[m] and epoch[m] > 0]
        if kind == "exploit" and donors:
            donor = draw(st.sampled_from(donors))
            records.append(exploit(sequence, member, donor, epoch[donor], epoch[member]))
            epoch[member], alive[member] = epoch[donor], True
        elif kind == "failure":
            records.append(FailureRecord(sequence, member, epoch[member], {"lr": 1.0}, "boom"))
            alive[member] = False
        else:
            epoch[member] += 1
            score = draw(st.floats(-10, 10, allow_nan=False))
            records.append(step(sequence, member, epoch[member], score))
            alive[member] = True
    return records


@settings(max_examples=150, deadline=None)
@given(runs(), st.sampled_from(["max", "min"]))
def test_live_standings_agree_with_looking_back(records: list[Any], mode: str) -> None:
    history = RunHistory(mode=mode)
    for record in records:
        history.add(record)
        # What the history knows now equals what it reads looking back from after the record.
        for member in history.members:
            assert history.standing(member) == history.standing(member, before=record.sequence + 0.5)
    looked_back = [history.standing(m, before=math.inf) for m in history.members]
    expected = [s for s in looked_back if s is not None]
    sign = 1 if mode == "max" else -1
    best = max(expected, key=lambda s: (sign * s.score, -s.member), default=None)
    assert history.best() == best
    scores = [r.score for r in records if isinstance(r, StepRecord)]
    if scores:
        assert history.best_ever().score == (max(scores) if mode == "max" else min(scores))


def toy_init(seed: int) -> dict[str, Any]:
    return {"theta": np.array([0.9, 0.9])}


def toy_step(state: dict[str, Any], h: dict[str, Any]) -> dict[str, Any]:
    return {"theta": state["theta"] - 0.1 * np.array([h["h0"], h["h1"]]) * state["theta"]}


def toy_evaluate(state: dict[str, Any]) -> float:
    return 1.2 - float(np.sum(state["theta"] ** 2))


def test_a_trainers_history_reads_the_same_from_its_run_folder(tmp_path: Any) -> None:
    trainer = pybt.Trainer(
        FunctionModel(toy_init, toy_step, toy_evaluate),
        population_size=4,
        hyperparameters={"h0": pybt.Uniform(0, 1), "h1": pybt.Uniform(0, 1)},
        stopping_criteria=StopAfter(12),
        ready_strategy=ReadyAfter(3),
        run_dir=str(tmp_path),
        seed=1,
        verbose=0,
    )
    _, score = trainer.train()
    stored = pybt.store.load_run(tmp_path).history
    live = trainer.run_history
    assert stored.records() == live.records()
    assert stored.best() == live.best() and live.best().score == score
    assert stored.schedule() == live.schedule() == trainer.schedule()
    assert stored.lineage() == trainer.lineage()
    assert stored.best_ever() == live.best_ever()
