"""Resume after a crash: a run killed with SIGKILL continues from its newest checkpoint."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pybt
from pybt.store import JOURNAL_NAME, RunStore

sys.path.insert(0, str(Path(__file__).parent))
from resumable_run import EPOCHS, POPULATION, make_trainer

SCRIPT = Path(__file__).with_name("resumable_run.py")


def _steps_in_journal(run_dir: Path) -> int:
    try:
        with sqlite3.connect(run_dir / JOURNAL_NAME) as db:
            return db.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
    except sqlite3.Error:
        return 0


def _run(run_dir: Path, calls: Path, sleep: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(run_dir), str(calls), str(sleep)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _key(row: dict) -> tuple:
    return (row["member"], row["epoch"], tuple(sorted(row["hyperparameters"].items())), row["score"])


def test_killed_run_resumes_without_gaps_or_repeats_and_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    uninterrupted = make_trainer(None)
    _, expected_score = uninterrupted.train()

    run_dir, calls = tmp_path / "run", tmp_path / "calls.txt"
    process = _run(run_dir, calls, sleep=0.02)
    total_steps = POPULATION * EPOCHS
    deadline = time.time() + 60
    while _steps_in_journal(run_dir) < total_steps // 2 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = _steps_in_journal(run_dir)
    assert 0 < killed_at < total_steps, "the kill must land mid-run"
    calls_before = len(calls.read_text().splitlines())

    store = RunStore(run_dir)
    cut = store.latest_cut()
    store.close()
    assert cut is not None, "a checkpoint cut must exist before the kill"
    steps_at_cut = sum(1 for row in uninterrupted.history if row["sequence"] <= cut[0])

    resumed = _run(run_dir, calls, sleep=0.0)
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0
    result = json.loads(output)
    calls_after = len(calls.read_text().splitlines()) - calls_before

    # Only the steps after the cut were trained again.
    assert calls_after == total_steps - steps_at_cut

    store = RunStore(run_dir)
    history = store.rows("steps")
    store.close()
    member_epochs = [(row["member"], row["epoch"]) for row in history]
    assert len(member_epochs) == len(set(member_epochs)) == total_steps
    for member in range(POPULATION):
        assert sorted(e for m, e in member_epochs if m == member) == list(range(1, EPOCHS + 1))

    assert [_key(r) for r in history] == [_key(r) for r in uninterrupted.history]
    assert result["score"] == expected_score
    assert result["schedule"] == json.loads(json.dumps(uninterrupted.schedule()))


def test_a_finished_run_returns_its_result_without_training(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    first = make_trainer(str(tmp_path / "run"), str(calls))
    _, score = first.train()
    trained = len(calls.read_text().splitlines())
    again = make_trainer(str(tmp_path / "run"), str(calls))
    state, score_again = again.train()
    assert score_again == score
    assert len(calls.read_text().splitlines()) == trained
    assert again.history == first.history
    assert 1.2 - float((state["theta"] ** 2).sum()) == pytest.approx(score)


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_cut(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    expected = make_trainer(None)
    _, expected_score = expected.train()
    make_trainer(str(run_dir)).train()

    store = RunStore(run_dir)
    newest_sequence = store.latest_cut()[0]
    newest = max((run_dir / "checkpoints").glob("*.npz"), key=lambda p: int(p.stem.split("-seq-")[1]))
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the archive
    newest.write_bytes(bytes(data))
    fallback = store.latest_cut()
    store.close()
    assert fallback is not None and fallback[0] < newest_sequence

    resumed = make_trainer(str(run_dir))
    _, score = resumed.train()
    assert score == expected_score
    assert [_key(r) for r in resumed.history] == [_key(r) for r in expected.history]


def test_a_run_folder_of_another_configuration_is_refused(tmp_path: Path) -> None:
    make_trainer(str(tmp_path / "run")).train()
    other = make_trainer(None)
    with pytest.raises(pybt.PyBTError, match="run_dir") as error:
        pybt.Trainer(
            other.model,
            population_size=POPULATION + 1,
            hyperparameters=other.space,
            run_dir=str(tmp_path / "run"),
            verbose=0,
        )
    assert "population_size" in str(error.value)
