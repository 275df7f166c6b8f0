"""pybt.replay: one fresh model trained along a recorded schedule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pybt
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.replay import load_schedule


def toy_model() -> FunctionModel:
    """The paper's toy problem: deterministic, so a replay must land on the winner's exact score."""

    def step(state: dict, h: dict) -> dict:
        theta = state["theta"]
        return {"theta": theta - 0.1 * np.array([h["h0"], h["h1"]]) * theta}

    return FunctionModel(
        lambda seed: {"theta": np.array([0.9, 0.9])}, step, lambda s: 1.2 - float(np.sum(s["theta"] ** 2))
    )


def toy_trainer(**overrides: object) -> pybt.Trainer:
    arguments: dict = {
        "population_size": 2,
        "hyperparameters": {"h0": pybt.Uniform(0, 1), "h1": pybt.Uniform(0, 1)},
        "initial_hyperparameters": [{"h0": 1.0, "h1": 0.0}, {"h0": 0.0, "h1": 1.0}],
        "stopping_criteria": StopAfter(40),
        "ready_strategy": ReadyAfter(4),
        "seed": 1,
        "verbose": 0,
        **overrides,
    }
    return pybt.Trainer(toy_model(), **arguments)


def test_replaying_the_winning_schedule_reproduces_the_winner() -> None:
    trainer = toy_trainer()
    state, score = trainer.train()
    assert trainer.exploits, "the schedule must cross members for this test to mean something"
    replayed, metrics = pybt.replay(trainer.schedule(), toy_model(), eval_args={})
    assert metrics["score"] == pytest.approx(score, abs=1e-12)
    np.testing.assert_allclose(replayed["theta"], state["theta"])


def test_a_run_folder_gives_the_same_schedule(tmp_path: Path) -> None:
    trainer = toy_trainer(run_dir=str(tmp_path))
    _, score = trainer.train()
    assert load_schedule(tmp_path) == trainer.schedule()
    _, metrics = pybt.replay(str(tmp_path), toy_model(), eval_args={})
    assert metrics["score"] == pytest.approx(score, abs=1e-12)


def test_replay_without_eval_args_returns_no_metrics() -> None:
    trainer = toy_trainer()
    trainer.train()
    _, metrics = pybt.replay(trainer.schedule(), toy_model())
    assert metrics == {}


def test_bad_replay_arguments_are_clear_errors() -> None:
    with pytest.raises(pybt.PyBTError, match="schedule"):
        pybt.replay([], toy_model())
    with pytest.raises(pybt.PyBTError, match="model"):
        pybt.replay([{"from_epoch": 0, "to_epoch": 1, "hyperparameters": {}}], object())  # type: ignore[arg-type]
    with pytest.raises(pybt.PyBTError, match=r"schedule\[0\]"):
        pybt.replay([{"from_epoch": 3, "to_epoch": 3, "hyperparameters": {"h0": 1, "h1": 1}}], toy_model())
