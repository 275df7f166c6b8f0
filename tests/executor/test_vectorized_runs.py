"""Whole runs on VectorizedExecutor: the same run as in process, and run folders that move across.

A seeded run on the vectorized executor makes the same decisions as the in-process one (its
members' losses agree to float rounding), and a run folder written by either executor resumes
on the other: the state layout is TorchModelWrapper's on both sides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pybt import Trainer
from pybt.callbacks.base import Callback
from pybt.executor.base import Executor
from pybt.executor.serial import SerialExecutor
from pybt.model import TorchModelWrapper
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.space import IntUniform, LogUniform

torch = pytest.importorskip("torch")
load_digits = pytest.importorskip("sklearn.datasets").load_digits
nn = torch.nn

from pybt.executor.vectorized import VectorizedExecutor  # noqa: E402  (after the skip: needs torch)


@pytest.fixture(scope="module")
def data() -> tuple[dict[str, Any], dict[str, Any]]:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return {"x": x[:300], "y": y[:300]}, {"x": x[300:420], "y": y[300:420]}


class InterruptAfter(Callback):
    """Ctrl-C after ``steps`` step records (once a checkpoint cut exists)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_step(self, trainer: Any, record: Any) -> None:
        self.steps -= 1
        if self.steps == 0:
            raise KeyboardInterrupt


class CountSteps(Callback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step(self, trainer: Any, record: Any) -> None:
        self.steps += 1


def make_trainer(executor: Executor, data: Any, run_dir: Path | None = None, **kwargs: Any) -> Trainer:
    fit, evaluation = data
    module = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    return Trainer(
        TorchModelWrapper(module, torch.optim.Adam, nn.CrossEntropyLoss(), optimizer_kwargs={"lr": 0.01}),
        population_size=4,
        hyperparameters={"lr": LogUniform(1e-3, 1e-1), "batch_size": IntUniform(16, 64, log=True)},
        stopping_criteria=StopAfter(6),
        ready_strategy=ReadyAfter(2),
        step_args={"fit_args": fit},
        eval_args=evaluation,
        metric="loss",  # continuous: no ties for float rounding to break differently
        executor=executor,
        run_dir=str(run_dir) if run_dir else None,
        seed=7,
        verbose=0,
        **kwargs,
    )


def steps(trainer: Trainer) -> list[tuple[int, int, float]]:
    return [(record.member, record.epoch, record.score) for record in trainer.history]


def assert_same_run(got: Trainer, expected: Trainer) -> None:
    got_steps, expected_steps = steps(got), steps(expected)
    assert [step[:2] for step in got_steps] == [step[:2] for step in expected_steps]
    np.testing.assert_allclose([s[2] for s in got_steps], [s[2] for s in expected_steps], rtol=1e-4)
    assert [(e.member, e.donor) for e in got.exploits] == [(e.member, e.donor) for e in expected.exploits]


def test_a_seeded_run_matches_the_in_process_run(data: Any) -> None:
    expected = make_trainer(SerialExecutor(), data)
    _, expected_score = expected.train()
    trainer = make_trainer(VectorizedExecutor(), data)
    model, score = trainer.train()
    assert score == pytest.approx(expected_score, rel=1e-4)
    assert_same_run(trainer, expected)
    assert expected.exploits  # the run did exploit: copies inside the stack were exercised
    assert isinstance(model, nn.Sequential) and not model.training


@pytest.mark.parametrize(
    "first, then", [(SerialExecutor, VectorizedExecutor), (VectorizedExecutor, SerialExecutor)]
)
def test_a_run_folder_resumes_on_the_other_executor(first: Any, then: Any, data: Any, tmp_path: Path) -> None:
    expected = make_trainer(first(), data)
    expected.train()
    with pytest.raises(KeyboardInterrupt):
        make_trainer(first(), data, tmp_path, callbacks=[InterruptAfter(11)]).train()
    counted = CountSteps()
    resumed = make_trainer(then(), data, tmp_path, callbacks=[counted])
    resumed.train()
    assert_same_run(resumed, expected)
    assert 0 < counted.steps < len(expected.history)  # it went on from a checkpoint, not from scratch
