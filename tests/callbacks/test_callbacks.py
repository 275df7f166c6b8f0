"""Callbacks: each hook once per record, in the order records are made; a failing callback
stops the run with an error naming it and loses nothing."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

import pybt
from pybt.callbacks import Callback, TrainResult
from pybt.errors import CallbackError
from pybt.executor import SerialExecutor
from pybt.history import ExploitRecord, FailureRecord, StepRecord
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter


def init(seed: int) -> dict[str, Any]:
    return {"x": np.zeros(1)}


def step(state: dict[str, Any], h: dict[str, Any]) -> dict[str, Any]:
    if h["lr"] > 0.9:
        raise FloatingPointError("lr too high")
    return {"x": state["x"] + h["lr"]}


def evaluate(state: dict[str, Any]) -> float:
    return float(state["x"][0])


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_train_begin(self, trainer: pybt.Trainer) -> None:
        self.events.append(("begin", len(trainer.run_history)))

    def on_step(self, trainer: pybt.Trainer, record: StepRecord) -> None:
        assert record is trainer.run_history.steps[-1], "a record is in the history before callbacks see it"
        self.events.append(("step", record))

    def on_exploit(self, trainer: pybt.Trainer, record: ExploitRecord) -> None:
        self.events.append(("exploit", record))

    def on_failure(self, trainer: pybt.Trainer, record: FailureRecord) -> None:
        self.events.append(("failure", record))

    def on_checkpoint(self, trainer: pybt.Trainer, sequence: int) -> None:
        self.events.append(("checkpoint", sequence))

    def on_train_end(self, trainer: pybt.Trainer, result: TrainResult | None) -> None:
        self.events.append(("end", result))


def make_trainer(callbacks: list[Callback], **overrides: Any) -> pybt.Trainer:
    arguments: dict[str, Any] = {
        "population_size": 5,
        "hyperparameters": {"lr": pybt.Uniform(0.0, 1.0)},
        "stopping_criteria": StopAfter(12),
        "ready_strategy": ReadyAfter(2),
        "seed": 2,
        "verbose": 0,
        "callbacks": callbacks,
    }
    arguments.update(overrides)
    return pybt.Trainer(FunctionModel(init, step, evaluate), **arguments)


def test_every_record_reaches_the_callbacks_once_in_order(tmp_path: Any) -> None:
    recorder = Recorder()
    trainer = make_trainer([recorder], run_dir=str(tmp_path))
    model, score = trainer.train()
    kinds = Counter(kind for kind, _ in recorder.events)
    assert kinds["step"] == len(trainer.history)
    assert kinds["exploit"] == len(trainer.exploits) > 0
    assert kinds["failure"] == len(trainer.failures) > 0, "the run should exercise failures"
    assert kinds["begin"] == kinds["end"] == 1 and kinds["checkpoint"] >= 2
    records = [value for kind, value in recorder.events if kind in ("step", "exploit", "failure")]
    assert records == trainer.run_history.records()
    assert recorder.events[0] == ("begin", 0)
    kind, result = recorder.events[-1]
    assert kind == "end" and isinstance(result, TrainResult)
    assert (result.score, result.member) == (score, trainer.best_member) and result.model is model
    checkpoints = [value for kind, value in recorder.events if kind == "checkpoint"]
    assert checkpoints == sorted(checkpoints) and checkpoints[-1] == records[-1].sequence


def test_a_failing_callback_stops_the_run_with_its_name_and_keeps_the_records(tmp_path: Any) -> None:
    class Fragile(Callback):
        def __init__(self) -> None:
            self.seen = 0

        def on_step(self, trainer: pybt.Trainer, record: StepRecord) -> None:
            self.seen += 1
            if self.seen == 7:
                raise ValueError("the dashboard is down")

        def __repr__(self) -> str:
            return "Fragile()"

    recorder = Recorder()
    trainer = make_trainer([Fragile(), recorder], run_dir=str(tmp_path))
    with pytest.raises(CallbackError) as caught:
        trainer.train()
    message = str(caught.value)
    assert "Fragile()" in message and "on_step" in message and "the dashboard is down" in message
    assert isinstance(caught.value, pybt.PyBTError) and isinstance(caught.value.__cause__, ValueError)
    assert len(trainer.history) == 7, "the step the callback choked on is recorded"
    assert len(pybt.store.load_run(tmp_path).history.steps) == 7, "and in the journal"
    assert recorder.events[-1] == ("end", None), "every callback hears that train() ended badly"


def test_callbacks_are_checked() -> None:
    with pytest.raises(pybt.PyBTError, match=r"callbacks\[0\]"):
        make_trainer([print])  # type: ignore[list-item]


class CountingExecutor(SerialExecutor):
    closed = 0

    def close(self) -> None:
        self.closed += 1


def test_train_closes_only_the_executor_it_made() -> None:
    executor = CountingExecutor()
    first = make_trainer([], executor=executor)
    first.train()
    assert executor.closed == 0, "the user's executor is the user's to close"
    second = make_trainer([], executor=executor, seed=5)
    _, score = second.train()
    assert score == make_trainer([], seed=5).train()[1], "one executor serves two trainers in a row"
    with executor:
        pass
    assert executor.closed == 1
