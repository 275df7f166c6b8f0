"""Tests for pybt.Trainer, driven by FunctionModel (fast, no framework).

Most tests use a model whose state records every step that made it (a *trace* of unique
tokens), so what the trainer says happened (history, exploits, lineage, schedule) can be
checked against what really happened to each member's state.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

import pybt
from pybt import Trainer
from pybt.errors import TrainingError
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.exploit import BinaryTournament, Truncation
from pybt.policy.explore import Perturb
from pybt.policy.ready import ReadyAfter
from pybt.space import Choice, Domain, Uniform

ROW_KEYS = {"member", "epoch", "hyperparameters", "metrics", "score", "seconds"}


class Traced:
    """A model of one number ``x`` that grows by ``lr`` per epoch, and a trace of its steps.

    Every step appends a new token to the state's trace and remembers which token the state
    had before (its parent), so a history row (which reports its token) can be traced back.
    """

    def __init__(self) -> None:
        self._tokens = itertools.count(1)
        self.parent: dict[float, float] = {}

    def init(self, seed: int) -> dict[str, Any]:
        return {"x": float(np.random.default_rng(seed).uniform(0.0, 0.1)), "trace": np.zeros(0)}

    def step(self, state: dict[str, Any], hp: Mapping[str, Any]) -> dict[str, Any]:
        token = float(next(self._tokens))
        self.parent[token] = float(state["trace"][-1]) if len(state["trace"]) else 0.0
        return {"x": state["x"] + hp["lr"], "trace": np.append(state["trace"], token)}

    def evaluate(self, state: dict[str, Any]) -> dict[str, float]:
        return {"score": state["x"], "token": float(state["trace"][-1])}

    def model(self) -> FunctionModel:
        return FunctionModel(self.init, self.step, self.evaluate)


def make_trainer(model: Any = None, **overrides: Any) -> Trainer:
    arguments: dict[str, Any] = {
        "model": model if model is not None else Traced().model(),
        "population_size": 4,
        "hyperparameters": {"lr": Uniform(0.0, 1.0)},
        "stopping_criteria": StopAfter(6),
        "ready_strategy": ReadyAfter(2),
        "step_args": {"epochs_per_step": 1},
        "seed": 0,
        "verbose": 0,
    }
    arguments.update(overrides)
    return Trainer(**arguments)


def rows_of(trainer: Trainer, member: int) -> list[dict[str, Any]]:
    return [row for row in trainer.history if row["member"] == member]


def without_seconds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]


# ---- results ----------------------------------------------------------------------------------
def test_train_returns_the_best_state_and_its_score() -> None:
    traced = Traced()
    trainer = make_trainer(traced.model())
    state, score = trainer.train()
    final = [row for row in trainer.history if row["epoch"] == 6]
    assert score == max(row["score"] for row in final)
    assert traced.evaluate(state)["score"] == score
    assert rows_of(trainer, trainer.best_member)[-1]["score"] == score


def test_history_has_one_row_per_member_per_round() -> None:
    trainer = make_trainer(step_args={"epochs_per_step": 2}, ready_strategy=ReadyAfter(2))
    trainer.train()
    assert len(trainer.history) == 4 * 3
    per_epoch = Counter(row["epoch"] for row in trainer.history)
    assert per_epoch == {2: 4, 4: 4, 6: 4}
    for epoch in (2, 4, 6):
        assert sorted(row["member"] for row in trainer.history if row["epoch"] == epoch) == [0, 1, 2, 3]
    for row in trainer.history:
        assert ROW_KEYS <= set(row)
        assert row["score"] == row["metrics"]["score"]
        assert isinstance(row["seconds"], float) and row["seconds"] >= 0
        assert Uniform(0.0, 1.0).contains(row["hyperparameters"]["lr"])


def test_members_are_ready_on_their_own_epoch_count() -> None:
    trainer = make_trainer(ready_strategy=ReadyAfter(3), stopping_criteria=StopAfter(9))
    trainer.train()
    assert trainer.exploits, "a population of 4 with Truncation should exploit"
    assert {event["epoch"] for event in trainer.exploits} <= {3, 6}


# ---- exploit and explore ----------------------------------------------------------------------
@pytest.mark.parametrize("exploit", [Truncation(), BinaryTournament()], ids=repr)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_exploiting_member_continues_from_the_donors_state(exploit: Any, seed: int) -> None:
    traced = Traced()
    trainer = make_trainer(traced.model(), exploit_strategy=exploit, ready_strategy=ReadyAfter(1), seed=seed)
    trainer.train()
    assert trainer.exploits
    for member in range(4):
        expected_parent = 0.0
        events = sorted(
            [("step", row) for row in rows_of(trainer, member)]
            + [("exploit", event) for event in trainer.exploits if event["member"] == member],
            key=lambda item: item[1]["sequence"],
        )
        for kind, row in events:
            if kind == "exploit":
                donor_rows = [r for r in rows_of(trainer, row["donor"]) if r["sequence"] < row["sequence"]]
                expected_parent = donor_rows[-1]["metrics"]["token"]
                assert donor_rows[-1]["epoch"] == row["epoch"]
            else:
                assert traced.parent[row["metrics"]["token"]] == expected_parent
                expected_parent = row["metrics"]["token"]


def last_row_before(trainer: Trainer, member: int, sequence: int) -> dict[str, Any]:
    return [row for row in rows_of(trainer, member) if row["sequence"] < sequence][-1]


def first_row_after(trainer: Trainer, member: int, sequence: int) -> dict[str, Any] | None:
    later = [row for row in rows_of(trainer, member) if row["sequence"] > sequence]
    return later[0] if later else None


def test_exploit_copies_hyperparameters_then_explores() -> None:
    trainer = make_trainer(
        hyperparameters={"lr": Uniform(0.0, 100.0)},
        initial_hyperparameters=[{"lr": 0.1 * (i + 1)} for i in range(4)],
        explore_strategy=Perturb(factors=(2.0,), resample_probability=0.0),
    )
    trainer.train()
    assert trainer.exploits
    for event in trainer.exploits:
        donor_lr = last_row_before(trainer, event["donor"], event["sequence"])["hyperparameters"]["lr"]
        own_lr = last_row_before(trainer, event["member"], event["sequence"])["hyperparameters"]["lr"]
        assert event["old_hyperparameters"] == {"lr": own_lr}
        assert event["new_hyperparameters"]["lr"] == pytest.approx(min(100.0, 2.0 * donor_lr))
        following = first_row_after(trainer, event["member"], event["sequence"])
        assert following is not None and following["hyperparameters"] == event["new_hyperparameters"]


def test_without_explore_an_exploit_copies_hyperparameters_unchanged() -> None:
    trainer = make_trainer(explore_strategy=None)
    trainer.train()
    assert trainer.exploits
    for event in trainer.exploits:
        donor = last_row_before(trainer, event["donor"], event["sequence"])
        assert event["new_hyperparameters"] == donor["hyperparameters"]


def test_random_search_never_copies() -> None:
    trainer = make_trainer(exploit_strategy=None, explore_strategy=None, ready_strategy=ReadyAfter(1))
    trainer.train()
    assert trainer.exploits == []
    for member in range(4):
        rows = rows_of(trainer, member)
        assert len({row["hyperparameters"]["lr"] for row in rows}) == 1
        tokens = [row["metrics"]["token"] for row in rows]
        assert trainer.executor.model(member)["trace"].tolist() == tokens
        assert trainer.lineage(member) == [{"member": member, "from_epoch": 0, "to_epoch": 6}]


def test_explore_without_exploit_perturbs_each_members_own_hyperparameters() -> None:
    trainer = make_trainer(exploit_strategy=None, ready_strategy=ReadyAfter(2))
    trainer.train()
    assert trainer.exploits == []
    for member in range(4):
        rows = rows_of(trainer, member)
        values = [row["hyperparameters"]["lr"] for row in rows]
        # Ready at epochs 2 and 4: the value may change only there, and it does change.
        assert values[0] == values[1] and values[2] == values[3] and values[4] == values[5]
        assert len(set(values)) > 1
        # Still the member's own weights: nothing was copied.
        assert trainer.lineage(member) == [{"member": member, "from_epoch": 0, "to_epoch": 6}]


# ---- starting values --------------------------------------------------------------------------
def test_initial_hyperparameters_set_each_members_start() -> None:
    initial = [{"lr": 0.11}, {"lr": 0.22}, {"lr": 0.33}, {"lr": 0.44}]
    trainer = make_trainer(initial_hyperparameters=initial)
    trainer.train()
    first_round = {row["member"]: row["hyperparameters"] for row in trainer.history if row["epoch"] == 1}
    assert first_round == dict(enumerate(initial))


class GivenModel(FunctionModel):
    """A wrapper whose user already chose some values (as a Keras optimizer's learning rate)."""

    def given_hyperparameters(self, space: Mapping[str, Domain]) -> dict[str, Any]:
        return {"lr": 0.123, "optimizer": "not-an-option"}


def test_member_zero_takes_the_wrappers_given_values() -> None:
    traced = Traced()
    model = GivenModel(traced.init, traced.step, traced.evaluate)
    space = {"lr": Uniform(0.0, 1.0), "optimizer": Choice(["adam", "sgd"])}
    for seed in range(5):
        trainer = make_trainer(model, hyperparameters=space, seed=seed)
        trainer.train()
        start = {row["member"]: row["hyperparameters"] for row in trainer.history if row["epoch"] == 1}
        assert start[0]["lr"] == 0.123
        assert start[0]["optimizer"] in ("adam", "sgd"), "a given value outside the space is not used"
        assert all(start[i]["lr"] != 0.123 for i in (1, 2, 3))


# ---- reproducibility ----------------------------------------------------------------------------
def seeded_run(seed: int | None) -> Trainer:
    trainer = make_trainer(seed=seed, explore_strategy=Perturb(resample_probability=0.5))
    trainer.train()
    return trainer


def test_the_same_seed_reproduces_the_run() -> None:
    first, second = seeded_run(3), seeded_run(3)
    assert without_seconds(first.history) == without_seconds(second.history)
    assert first.exploits == second.exploits
    assert first.exploits


def test_different_seeds_give_different_runs() -> None:
    first, second = seeded_run(3), seeded_run(4)
    assert without_seconds(first.history) != without_seconds(second.history)
    assert seeded_run(None).seed != seeded_run(None).seed


# ---- lineage and schedule -----------------------------------------------------------------------
def test_lineage_and_schedule_agree_with_history() -> None:
    trainer = make_trainer(ready_strategy=ReadyAfter(1), seed=5)
    trainer.train()
    assert trainer.exploits
    by_member_epoch = {(row["member"], row["epoch"]): row for row in trainer.history}
    for member in [None, 0, 1, 2, 3]:
        segments = trainer.lineage(member)
        entries = trainer.schedule(member)
        final_member = trainer.best_member if member is None else member
        assert segments[0]["from_epoch"] == 0 and segments[-1]["to_epoch"] == 6
        assert segments[-1]["member"] == final_member
        for earlier, later in itertools.pairwise(segments):
            assert earlier["to_epoch"] == later["from_epoch"]
            assert any(
                event["member"] == later["member"]
                and event["donor"] == earlier["member"]
                and event["epoch"] == later["from_epoch"]
                for event in trainer.exploits
            )
        assert [entry["from_epoch"] for entry in entries] == list(range(6))
        assert [entry["to_epoch"] for entry in entries] == list(range(1, 7))
        for entry in entries:
            row = by_member_epoch[(entry["member"], entry["to_epoch"])]
            assert entry["hyperparameters"] == row["hyperparameters"]


@pytest.mark.parametrize("exploit", [Truncation(), BinaryTournament()], ids=repr)
def test_schedule_is_the_true_ancestry_of_the_weights(exploit: Any) -> None:
    """Every member's schedule lists exactly the steps its final state went through.

    BinaryTournament lets a donor exploit in the same decision in which it is copied; the
    member copying it gets the donor's state from *before* that decision.
    """
    mismatches = []
    for seed in range(12):
        traced = Traced()
        trainer = make_trainer(
            traced.model(), exploit_strategy=exploit, ready_strategy=ReadyAfter(1), seed=seed
        )
        trainer.train()
        rows = {row["metrics"]["token"]: row for row in trainer.history}
        for member in range(4):
            trace = trainer.executor.model(member)["trace"]
            truth = [(rows[t]["member"], rows[t]["epoch"], rows[t]["hyperparameters"]) for t in trace]
            told = [(e["member"], e["to_epoch"], e["hyperparameters"]) for e in trainer.schedule(member)]
            empty = [s for s in trainer.lineage(member) if s["from_epoch"] >= s["to_epoch"]]
            if truth != told or empty:
                mismatches.append(
                    {"seed": seed, "member": member, "truth": truth, "told": told, "empty": empty}
                )
    assert not mismatches, (
        f"{len(mismatches)} schedules differ from the weights' ancestry, e.g. {mismatches[0]}"
    )


# ---- metrics and modes --------------------------------------------------------------------------
def two_metric_model() -> FunctionModel:
    def step(state: dict[str, Any], hp: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
        x = state["x"] + hp["lr"]
        return {"x": x}, {"loss": -x}

    return FunctionModel(
        init=lambda seed: {"x": float(np.random.default_rng(seed).uniform(0.0, 1.0))},
        step=step,
        evaluate=lambda state: {"acc": state["x"], "loss": (state["x"] - 2.0) ** 2},
    )


def test_mode_min_minimizes_the_chosen_metric() -> None:
    trainer = make_trainer(two_metric_model(), metric="loss", mode="min")
    _, score = trainer.train()
    assert all(row["score"] == row["metrics"]["loss"] for row in trainer.history)
    assert score == min(row["score"] for row in trainer.history if row["epoch"] == 6)
    for event in trainer.exploits:
        round_scores = {
            row["member"]: row["score"] for row in trainer.history if row["epoch"] == event["epoch"]
        }
        assert round_scores[event["donor"]] == min(round_scores.values())
        assert round_scores[event["member"]] == max(round_scores.values())
    assert trainer.exploits


def test_metric_picks_the_score_and_its_mode_is_inferred() -> None:
    trainer = make_trainer(two_metric_model(), metric="acc")
    _, score = trainer.train()
    assert trainer.mode == "max"
    assert all(row["score"] == row["metrics"]["acc"] for row in trainer.history)
    assert score == max(row["score"] for row in trainer.history if row["epoch"] == 6)
    loss_trainer = make_trainer(two_metric_model(), metric="loss")
    loss_trainer.train()
    assert loss_trainer.mode == "min"


def test_step_metrics_appear_as_train_metrics() -> None:
    trainer = make_trainer(two_metric_model(), step_args={"epochs_per_step": 2})
    trainer.train()
    assert trainer.metric == "acc", "the first evaluated metric is the default score"
    for row in trainer.history:
        assert set(row["metrics"]) == {"acc", "loss", "train_loss"}
        # The train metrics are those of the step's last epoch, whose state evaluate saw.
        assert row["metrics"]["train_loss"] == pytest.approx(-row["metrics"]["acc"])


# ---- failures ---------------------------------------------------------------------------------
def failing_model(kind: str) -> FunctionModel:
    """A model whose member with hyperparameter ``bad=True`` fails in the way ``kind`` says."""

    def step(state: dict[str, Any], hp: Mapping[str, Any]) -> Any:
        if hp["bad"] and kind == "raise":
            raise RuntimeError("exploded on purpose")
        x = state["x"] + hp["lr"]
        if hp["bad"] and kind == "nan_loss":
            return {"x": x}, {"loss": math.nan}
        return {"x": x}, {"loss": -x}

    def evaluate(state: dict[str, Any]) -> Any:
        return math.nan if kind == "nan_score" and state["x"] > 100 else state["x"]

    def init(seed: int) -> dict[str, float]:
        return {"x": 0.0}

    return FunctionModel(init, step, evaluate)


@pytest.mark.parametrize(
    ("kind", "message"),
    [("raise", "exploded on purpose"), ("nan_score", "non-finite score"), ("nan_loss", "non-finite loss")],
)
def test_a_failing_member_is_replaced_and_the_run_completes(kind: str, message: str) -> None:
    lr_bad = 200.0 if kind == "nan_score" else 0.5  # x > 100 makes the score NaN
    trainer = make_trainer(
        failing_model(kind),
        population_size=3,
        hyperparameters={"lr": Uniform(0.0, 300.0), "bad": Choice([False, True])},
        initial_hyperparameters=[
            {"lr": 0.5, "bad": False},
            {"lr": lr_bad, "bad": kind != "nan_score"},
            {"lr": 0.7, "bad": False},
        ],
        explore_strategy=None,
        stopping_criteria=StopAfter(3),
    )
    _, score = trainer.train()
    assert len(trainer.failures) == 1
    failure = trainer.failures[0]
    assert failure["member"] == 1 and failure["epoch"] == 0
    assert message in failure["error"]
    replacement = [event for event in trainer.exploits if event["reason"] == "failure"]
    assert len(replacement) == 1 and replacement[0]["member"] == 1
    assert replacement[0]["donor"] in (0, 2)
    assert [row["epoch"] for row in rows_of(trainer, 1)] == [2, 3]
    assert len(trainer.history) == 3 * 3 - 1
    assert score == pytest.approx(2.1)


def test_when_every_member_fails_the_error_says_why_and_history_is_kept() -> None:
    def step(state: dict[str, Any], hp: Mapping[str, Any]) -> dict[str, Any]:
        if state["steps"] >= 2:
            raise FloatingPointError("diverged after two steps")
        return {"steps": state["steps"] + 1}

    model = FunctionModel(lambda seed: {"steps": 0}, step, lambda state: float(state["steps"]))
    trainer = make_trainer(model, population_size=3)
    with pytest.raises(pybt.PyBTError) as caught:
        trainer.train()
    assert isinstance(caught.value, TrainingError)
    assert "Every member failed" in str(caught.value)
    assert "diverged after two steps" in str(caught.value)
    assert isinstance(caught.value.__cause__, FloatingPointError)
    assert len(trainer.history) == 3 * 2
    assert len(trainer.failures) == 3
    assert {failure["epoch"] for failure in trainer.failures} == {2}


def test_status_and_every_plot_of_a_trainer() -> None:
    pytest.importorskip("matplotlib")
    trainer = make_trainer()
    assert trainer.status == "not started"
    trainer.train()
    assert trainer.status == "finished"
    for what in ("scores", "metrics", "hyperparameters", "lineage", "schedule"):
        assert trainer.plot(what).axes, what
    with pytest.raises(pybt.PyBTError, match="what"):
        trainer.plot("nothing")
