"""The run folder: journal rows, checkpoint files, the disk bound, and resuming a Keras run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

import pybt
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.store import JOURNAL_NAME, RunStore, dumps, load_run, loads, read_checkpoint, write_atomically


def _failing_sometimes_trainer(run_dir: Path, population: int = 5) -> pybt.Trainer:
    """Members whose step fails when their rate is high: the journal sees steps, exploits, failures."""

    def step(state: dict, h: dict) -> dict:
        if h["rate"] > 0.9:
            raise FloatingPointError("rate too high")
        return {"w": state["w"] + h["rate"], "n": state["n"] + 1}

    return pybt.Trainer(
        FunctionModel(lambda seed: {"w": np.zeros(3), "n": 0}, step, lambda s: -abs(float(s["w"].sum()) - 5)),
        population_size=population,
        hyperparameters={"rate": pybt.Uniform(0.0, 1.0), "kind": pybt.Choice([(0.9, 0.99), (0.5, 0.9)])},
        stopping_criteria=StopAfter(12),
        ready_strategy=ReadyAfter(2),
        run_dir=str(run_dir),
        seed=4,
        verbose=0,
    )


def test_journal_holds_the_same_rows_as_the_trainer(tmp_path: Path) -> None:
    trainer = _failing_sometimes_trainer(tmp_path)
    trainer.train()
    run = load_run(tmp_path)
    assert list(run.history.steps) == trainer.history
    assert list(run.history.exploits) == trainer.exploits
    assert list(run.history.failures) == trainer.failures
    assert trainer.exploits and trainer.failures, "the run should exercise exploits and failures"
    assert run.finished and run.best_member == trainer.best_member
    assert (run.metric, run.mode) == (trainer.metric, trainer.mode)
    assert [m["id"] for m in run.members] == list(range(5))
    # Tuples (a Choice of Adam-style betas) survive the journal.
    assert isinstance(run.history.steps[0]["hyperparameters"]["kind"], tuple)


def test_journal_is_sqlite_in_wal_mode(tmp_path: Path) -> None:
    _failing_sometimes_trainer(tmp_path).train()
    with sqlite3.connect(tmp_path / JOURNAL_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT COUNT(*) FROM steps").fetchone()[0] > 0


def test_disk_use_stays_within_two_states_per_member(tmp_path: Path) -> None:
    trainer = _failing_sometimes_trainer(tmp_path)
    trainer.train()
    files = list((tmp_path / "checkpoints").glob("*.npz"))
    assert 0 < len(files) <= 2 * trainer.population_size
    store = RunStore(tmp_path)
    assert store.disk_bytes() == sum(f.stat().st_size for f in files)
    store.close()


def test_checkpoints_load_without_pickle_and_detect_damage(tmp_path: Path) -> None:
    path = tmp_path / "state.npz"
    state = {"weights/0000": np.arange(6.0).reshape(2, 3), "optimizer/step": np.array(3)}
    from pybt.store.files import npz_bytes

    data = npz_bytes(state)
    write_atomically(path, data)
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    loaded = read_checkpoint(path, digest)
    assert loaded is not None and set(loaded) == set(state)
    np.testing.assert_array_equal(loaded["weights/0000"], state["weights/0000"])
    path.write_bytes(data[: len(data) // 2])  # torn
    assert read_checkpoint(path, digest) is None
    assert read_checkpoint(tmp_path / "missing.npz", digest) is None
    with pytest.raises(pybt.PyBTError, match="Python objects"):
        npz_bytes({"bad": np.array([object()], dtype=object)})


def test_json_values_keep_tuples() -> None:
    value = {"betas": (0.9, 0.999), "nested": [(1, 2), {"t": ("a",)}], "x": 1.5}
    assert loads(dumps(value)) == value


def test_keras_run_resumes_after_an_interruption(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    load_digits = pytest.importorskip("sklearn.datasets").load_digits

    from pybt.model import KerasModelWrapper

    digits = load_digits()
    x, y = (digits.data[:400] / 16).astype("float32"), digits.target[:400]

    class Interrupt(keras.callbacks.Callback):
        """Stands in for a crash: stops the whole process's run after a number of fits."""

        fits = 0

        def on_train_end(self, logs=None):
            Interrupt.fits += 1
            if Interrupt.fits == 7:
                raise KeyboardInterrupt

    def make(callbacks: list, run_dir: Path | None = tmp_path) -> pybt.Trainer:
        model = keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10)]
        )
        wrapped = KerasModelWrapper(
            model,
            optimizer=keras.optimizers.Adam(1e-2),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return pybt.Trainer(
            wrapped,
            population_size=3,
            stopping_criteria=StopAfter(4),
            ready_strategy=ReadyAfter(2),
            step_args={
                "epochs_per_step": 1,
                "fit_args": {"x": x[:300], "y": y[:300], "callbacks": callbacks},
            },
            eval_args={"x": x[300:], "y": y[300:]},
            run_dir=run_dir and str(run_dir),
            seed=0,
            verbose=0,
        )

    with pytest.raises(KeyboardInterrupt):
        make([Interrupt()]).train()
    store = RunStore(tmp_path)
    cut = store.latest_cut()
    store.close()
    assert cut is not None and not load_run(tmp_path).finished

    resumed = make([])
    model, score = resumed.train()
    assert isinstance(model, keras.Model)
    member_epochs = [(r["member"], r["epoch"]) for r in resumed.history]
    assert sorted(member_epochs) == sorted((m, e) for m in range(3) for e in range(1, 5))
    assert 0.0 <= score <= 1.0
    # The resumed run trained exactly as an uninterrupted one (weights, optimizer state, and the
    # members' random streams all came back).
    uninterrupted = make([], run_dir=None)
    _, expected_score = uninterrupted.train()
    assert [(r["member"], r["epoch"], r["score"]) for r in resumed.history] == [
        (r["member"], r["epoch"], r["score"]) for r in uninterrupted.history
    ]
    assert score == expected_score
