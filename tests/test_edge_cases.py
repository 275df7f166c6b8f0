"""Edge cases found in review: train() called again after an interrupt, resuming after damage or
with another model, values a run folder must take, a stop that a step does not divide, and
input checks at the edges of spaces, FunctionModel and TorchModelWrapper."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import pybt
from pybt.model import FunctionModel
from pybt.policy.done import DoneStrategy, StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.space import Choice, IntUniform


def _init(seed):
    return {"theta": np.array([0.9, 0.9])}


def _step(state, h):
    return {"theta": state["theta"] - 0.1 * np.array([h["h0"], h["h1"]]) * state["theta"]}


def _evaluate(state):
    return 1.2 - float(np.sum(state["theta"] ** 2))


def _trainer(step=_step, evaluate=_evaluate, **kwargs):
    args = dict(
        population_size=4,
        hyperparameters={"h0": pybt.Uniform(0, 1), "h1": pybt.Uniform(0, 1)},
        stopping_criteria=StopAfter(12),
        ready_strategy=ReadyAfter(4),
        seed=3,
        verbose=0,
    )
    args.update(kwargs)
    return pybt.Trainer(FunctionModel(_init, step, evaluate), **args)


def _key(rows):
    return [(r["member"], r["epoch"], r["score"]) for r in rows]


def test_train_called_again_after_an_interrupt_finishes():
    calls = {"n": 0}

    def step(state, h):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt  # Ctrl-C in a notebook, inside a member's step
        return _step(state, h)

    trainer = _trainer(step)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()

    def spinning(*_):
        raise TimeoutError("train() did not return: it waits for a step that no longer exists")

    previous = signal.signal(signal.SIGALRM, spinning)
    signal.alarm(20)  # the unpatched trainer spins forever here
    try:
        _, score = trainer.train()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    final = {trainer.run_history.standing(member).epoch for member in range(trainer.population_size)}
    assert final == {trainer.stopping_criteria.max_epochs}, "every member trained to the end"
    assert score == _trainer().train()[1]


def test_a_run_folder_takes_numpy_hyperparameter_values(tmp_path):
    space = {"h0": Choice([np.float32(0.5), np.float32(1.0)]), "h1": pybt.Uniform(0, 1), "k": np.int64(3)}
    _, score = _trainer(hyperparameters=space, run_dir=str(tmp_path)).train()
    _, again = _trainer(hyperparameters=space, run_dir=str(tmp_path)).train()
    assert again == score


def test_a_nan_is_not_in_an_int_domain():
    assert not IntUniform(0, 10).contains(float("nan"))
    assert not IntUniform(0, 10).contains(float("inf"))
    space = {"h0": pybt.Uniform(0, 1), "h1": pybt.Uniform(0, 1), "n": IntUniform(1, 8)}
    with pytest.raises(pybt.PyBTError, match=r"initial_hyperparameters\[0\]\['n'\]"):
        _trainer(hyperparameters=space, initial_hyperparameters=[{"n": float("nan")}, {}, {}, {}])


def test_resuming_with_a_model_of_another_state_layout_is_a_pybt_error(tmp_path):
    _trainer(run_dir=str(tmp_path)).train()
    other = FunctionModel(lambda s: {"w": np.zeros(2)}, lambda s, h: s, lambda s: 0.0)
    with pytest.raises(pybt.PyBTError, match="run_dir"):
        pybt.Trainer(
            other,
            **{
                **dict(
                    population_size=4,
                    hyperparameters={"h0": pybt.Uniform(0, 1), "h1": pybt.Uniform(0, 1)},
                    stopping_criteria=StopAfter(12),
                    ready_strategy=ReadyAfter(4),
                    seed=3,
                    verbose=0,
                ),
                "run_dir": str(tmp_path),
            },
        ).train()


def test_an_empty_evaluation_is_a_pybt_error():
    with pytest.raises(pybt.PyBTError, match="evaluate"):
        _trainer(evaluate=lambda state: {}).train()


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_falling_back_forgets_the_damaged_cut(tmp_path):
    calls = {"n": 0, "limit": 60}

    def step(state, h):
        calls["n"] += 1
        if calls["n"] > calls["limit"]:
            raise KeyboardInterrupt
        return _step(state, h)

    with pytest.raises(KeyboardInterrupt):
        _trainer(step, run_dir=str(tmp_path), stopping_criteria=StopAfter(40)).train()
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    newest = db.execute("SELECT MAX(id) FROM cuts").fetchone()[0]
    (path,) = db.execute("SELECT path FROM checkpoints WHERE cut = ? AND member = 1", (newest,)).fetchone()
    _damage(tmp_path / "checkpoints" / path)
    calls.update(n=0, limit=0)  # resume (which happens before the first step), then stop
    with pytest.raises(KeyboardInterrupt):
        _trainer(step, run_dir=str(tmp_path), stopping_criteria=StopAfter(40)).train()
    assert db.execute("SELECT COUNT(*) FROM cuts WHERE id = ?", (newest,)).fetchone()[0] == 0


def test_a_run_folder_without_an_intact_cut_is_an_error_not_a_fresh_start(tmp_path):
    class StopAtTarget(DoneStrategy):
        max_epochs = 16

        def is_done(self, member):
            return member.epoch >= 16 or (member.score is not None and member.score > 0.0)

    kwargs = dict(
        run_dir=str(tmp_path),
        stopping_criteria=StopAtTarget(),
        exploit_strategy=None,
        explore_strategy=None,
        initial_hyperparameters=[{"h0": 1.0, "h1": 1.0}] + [{"h0": 0.1, "h1": 0.1}] * 3,
    )
    _trainer(**kwargs).train()
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    shared = db.execute("SELECT path FROM checkpoints GROUP BY path HAVING COUNT(*) = 2").fetchall()
    assert shared, "member 0 stopped early: both kept cuts share its file"
    _damage(tmp_path / "checkpoints" / shared[0][0])
    db.execute("DELETE FROM run WHERE key IN ('finished', 'best_member', 'final_sequence')")
    db.commit()
    steps = db.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
    with pytest.raises(pybt.PyBTError, match="intact"):
        _trainer(**kwargs).train()
    assert db.execute("SELECT COUNT(*) FROM steps").fetchone()[0] == steps  # the journal is kept


def test_a_damaged_journal_is_a_pybt_error(tmp_path):
    (tmp_path / "journal.sqlite").write_bytes(b"not a database\n" * 100)
    with pytest.raises(pybt.PyBTError, match="run_dir"):
        _trainer(run_dir=str(tmp_path))


def test_the_last_step_stops_at_stop_after():
    trainer = _trainer(stopping_criteria=StopAfter(10), step_args={"epochs_per_step": 3})
    trainer.train()
    last_epochs = {row["member"]: row["epoch"] for row in trainer.history}
    assert set(last_epochs.values()) == {10}


def test_a_torch_run_resumed_matches_the_uninterrupted_run(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn

    from pybt.model import TorchModelWrapper

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    calls = {"n": 0, "limit": None}
    cross_entropy = nn.CrossEntropyLoss()

    def loss(outputs, targets):
        calls["n"] += 1
        if calls["limit"] is not None and calls["n"] > calls["limit"]:
            raise KeyboardInterrupt
        return cross_entropy(outputs, targets)

    def make(run_dir):
        net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
        wrapper = TorchModelWrapper(net, torch.optim.SGD, loss, optimizer_kwargs={"lr": 0.05})
        return pybt.Trainer(
            wrapper,
            population_size=3,
            hyperparameters={"lr": pybt.LogUniform(1e-3, 0.5)},
            stopping_criteria=StopAfter(8),
            ready_strategy=ReadyAfter(2),
            step_args={"fit_args": {"x": x, "y": y, "batch_size": 16}},
            eval_args={"x": x, "y": y},
            run_dir=run_dir,
            seed=1,
            verbose=0,
        )

    expected = make(None)
    expected.train()
    calls.update(n=0, limit=3 * 6 * 5)
    with pytest.raises(KeyboardInterrupt):
        make(str(tmp_path)).train()
    calls.update(n=0, limit=None)
    resumed = make(str(tmp_path))
    resumed.train()
    assert _key(resumed.history) == _key(expected.history)


def test_torch_tuple_settings_need_a_tuple_domain():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    from pybt.model import TorchModelWrapper

    wrapper = TorchModelWrapper(nn.Linear(4, 2), torch.optim.Adam, nn.CrossEntropyLoss())
    x, y = np.zeros((8, 4), "float32"), np.zeros(8, "int64")
    with pytest.raises(pybt.PyBTError, match="betas"):
        pybt.Trainer(
            wrapper,
            population_size=2,
            hyperparameters={"betas": pybt.Uniform(0.8, 0.99)},
            step_args={"fit_args": {"x": x, "y": y}},
            eval_args={"x": x, "y": y},
            verbose=0,
        )
