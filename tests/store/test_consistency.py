"""A run folder and the trainers that write it agree: another writer in between is noticed, a
resumed run forgets its old winner, readers rank members the way the run does before any cut,
and which winner a run returns is part of what makes the run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pybt
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.store import load_run

sys.path.insert(0, str(Path(__file__).parent))
from resumable_run import make_trainer


def stopping_at(calls: int) -> Any:
    """A step function of the resumable run that raises KeyboardInterrupt at its ``calls``-th call."""
    model = make_trainer(None).model
    count = {"n": 0}

    def step(state: Any, h: Any) -> Any:
        count["n"] += 1
        if count["n"] == calls:
            raise KeyboardInterrupt
        return model._step(state, h)

    return FunctionModel(model._init, step, model._evaluate)


def resumable(run_dir: Path, model: Any = None, **overrides: Any) -> pybt.Trainer:
    base = make_trainer(None)
    arguments: dict[str, Any] = {
        "population_size": 4,
        "hyperparameters": base.space,
        "stopping_criteria": StopAfter(24),
        "ready_strategy": ReadyAfter(4),
        "run_dir": str(run_dir),
        "seed": 11,
        "verbose": 0,
    }
    arguments.update(overrides)
    return pybt.Trainer(model or base.model, **arguments)


def test_a_trainer_notices_another_wrote_to_its_folder_in_between(tmp_path: Path) -> None:
    first = resumable(tmp_path, stopping_at(30))
    with pytest.raises(KeyboardInterrupt):
        first.train()
    second = resumable(tmp_path)  # resumes from the folder, and writes to it
    second.train()
    with pytest.raises(pybt.PyBTError, match="written by another trainer") as error:
        first.train()
    assert "Create a new Trainer" in str(error.value)
    assert len(load_run(tmp_path).history.steps) == 4 * 24, "the folder holds the second's whole run"


def test_a_resumed_run_forgets_its_old_winner(tmp_path: Path) -> None:
    resumable(tmp_path).train()
    assert load_run(tmp_path).winner is not None
    # The newest cut damaged: the run goes back to the one before, and is not over any more.
    checkpoints = sorted(
        (tmp_path / "checkpoints").glob("*.npz"), key=lambda p: int(p.stem.split("-seq-")[1])
    )
    checkpoints[-1].write_bytes(b"damaged")
    with pytest.raises(KeyboardInterrupt):
        resumable(tmp_path, stopping_at(1)).train()
    run = load_run(tmp_path)
    assert not run.finished and run.winner is None
    assert run.best_score == run.history.best().score


def test_readers_rank_by_the_resolved_mode_before_any_cut(tmp_path: Path) -> None:
    def evaluate(state: dict) -> dict:
        return {"loss": float(np.sum(state["w"] ** 2))}  # a loss: lower is better, read off its name

    calls = {"n": 0}

    def step(state: dict, h: dict) -> dict:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # after a round of three: no cut yet
        return {"w": state["w"] * (1 - h["lr"])}

    trainer = pybt.Trainer(
        FunctionModel(lambda seed: {"w": np.random.default_rng(seed).normal(size=3)}, step, evaluate),
        population_size=3,
        hyperparameters={"lr": pybt.Uniform(0.1, 0.9)},
        stopping_criteria=StopAfter(8),
        ready_strategy=ReadyAfter(4),
        run_dir=str(tmp_path),
        seed=0,
        verbose=0,
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    run = load_run(tmp_path)
    assert (run.metric, run.mode) == ("loss", "min")
    assert run.best_score == min(step.score for step in run.history.steps)


def test_which_winner_a_run_returns_is_part_of_the_run(tmp_path: Path) -> None:
    resumable(tmp_path, result="best_ever").train()
    with pytest.raises(pybt.PyBTError, match="result"):
        resumable(tmp_path)  # result="final" would answer differently from the folder's winner
