"""The progress display: member-epochs, rate and time left, the best member now and the best
score ever — its last line agreeing with what train() returns — in a terminal (tqdm), in a log
(a line every 10 %), and per member with verbose=2."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pybt
from pybt.callbacks import ProgressBar
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.records import ExploitRecord, StepRecord


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def falling_score_trainer(**overrides: Any) -> pybt.Trainer:
    """A score that rises, then falls: the best ever is not what train() returns at the end."""

    def evaluate(state: dict) -> float:
        return -abs(float(state["x"][0]) - 3.0)

    arguments: dict[str, Any] = {
        "population_size": 4,
        "hyperparameters": {"lr": pybt.Uniform(0.4, 0.6)},
        "stopping_criteria": StopAfter(10),
        "ready_strategy": ReadyAfter(2),
        "seed": 0,
        "verbose": 0,
    }
    arguments.update(overrides)
    return pybt.Trainer(
        FunctionModel(lambda seed: {"x": np.zeros(1)}, lambda s, h: {"x": s["x"] + h["lr"]}, evaluate),
        **arguments,
    )


def test_a_log_gets_a_line_every_tenth_and_the_last_agrees_with_train(
    capsys: pytest.CaptureFixture[str],
) -> None:
    trainer = falling_score_trainer(verbose=1)
    _, score = trainer.train()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 10 and all(line.startswith("member-epochs") for line in lines)
    assert "40/40" in lines[-1] and lines[-1].count("40/40") == 1
    assert f"best now score {score:.4g} (member {trainer.best_member})" in lines[-1]
    ever = trainer.run_history.best_ever()
    assert (
        ever.score > score
        and f"best ever {ever.score:.4g} (member {ever.member}, epoch {ever.epoch})" in lines[-1]
    )
    assert re.search(r"member-epochs/s", lines[-1])
    falling_score_trainer(verbose=0).train()
    assert capsys.readouterr().err == ""


def test_a_terminal_gets_a_tqdm_bar_with_both_numbers() -> None:
    pytest.importorskip("tqdm")
    stream = Terminal()
    trainer = falling_score_trainer(callbacks=[ProgressBar(stream)])
    _, score = trainer.train()
    text = stream.getvalue()
    final = text.replace("\r", "\n").strip().splitlines()[-1]
    assert "40/40" in final and "100%" in final and "member-epoch/s" in final
    assert f"best now score {score:.4g} (member {trainer.best_member})" in final
    assert "best ever" in final


def test_verbose_2_shows_each_member() -> None:
    pytest.importorskip("tqdm")
    stream = Terminal()
    trainer = falling_score_trainer(callbacks=[ProgressBar(stream, per_member=True)])
    trainer.train()
    text = stream.getvalue()
    for member in range(4):
        assert re.search(rf"member +{member} epoch +\d+ score", text)
    if trainer.exploits:
        assert "← copied member" in text


def test_re_running_a_finished_run_shows_its_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, score = falling_score_trainer(run_dir=str(tmp_path / "run")).train()
    falling_score_trainer(run_dir=str(tmp_path / "run"), verbose=1).train()
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "40/40" in line and f"best now score {score:.4g}" in line and "best now -" not in line


def test_a_member_that_ends_on_its_donors_last_epoch_counts_as_done() -> None:
    # On Ray a member at epoch 9 may copy a donor already at 10 and so end the run without a
    # step of its own at 10: the count still reaches the total.
    trainer = falling_score_trainer()  # 4 members, 10 epochs: 40 member-epochs
    progress = ProgressBar(io.StringIO())
    progress.on_train_begin(trainer)
    hyperparameters = {"lr": 0.5}
    for sequence, (member, epoch) in enumerate([(0, 10), (1, 10), (2, 10), (3, 9)]):
        step = StepRecord(sequence, member, epoch, hyperparameters, {"score": -1.0}, -1.0, 0.1)
        progress.on_step(trainer, step)
    assert progress.done == 39
    progress.on_exploit(trainer, ExploitRecord(4, 3, 0, 10, 9, hyperparameters, hyperparameters))
    assert progress.done == 40 and "40/40" in progress.line()
