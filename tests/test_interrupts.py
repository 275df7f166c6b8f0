"""Interrupt and go on: Ctrl-C (or any exception) out of train(), then train() again, gives
exactly the run an uninterrupted train() gives — same records, best score and schedule — with
and without a run folder, wherever the interrupt lands."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pybt
from pybt.callbacks import Callback
from pybt.errors import CallbackError
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter

POPULATION, EPOCHS = 3, 6
STEPS = POPULATION * EPOCHS


class Interrupter:
    """Raises ``error`` the ``at``-th time it is called, once."""

    def __init__(self, at: int, error: BaseException | None = None) -> None:
        self.at, self.calls, self.error = at, 0, error or KeyboardInterrupt()

    def __call__(self) -> None:
        self.calls += 1
        if self.calls == self.at:
            raise self.error


def make_trainer(
    run_dir: Path | None, in_step: Interrupter | None = None, callbacks: Any = (), **overrides: Any
) -> pybt.Trainer:
    def step(state: dict[str, np.ndarray], h: dict[str, float]) -> dict[str, np.ndarray]:
        if in_step is not None:
            in_step()
        theta = state["theta"]
        return {"theta": theta - 0.1 * np.array([h["h0"], h["h1"]]) * theta}

    arguments: dict[str, Any] = {
        "population_size": POPULATION,
        "hyperparameters": {"h0": pybt.Uniform(0, 1), "h1": pybt.Uniform(0, 1)},
        "stopping_criteria": StopAfter(EPOCHS),
        "ready_strategy": ReadyAfter(2),
        "run_dir": None if run_dir is None else str(run_dir),
        "seed": 5,
        "verbose": 0,
        "callbacks": list(callbacks),
    }
    arguments.update(overrides)
    model = FunctionModel(
        lambda seed: {"theta": np.array([0.9, 0.9])},
        step,
        lambda state: 1.2 - float(np.sum(state["theta"] ** 2)),
    )
    return pybt.Trainer(model, **arguments)


def outcome(trainer: pybt.Trainer, score: float) -> tuple:
    records = [(type(r).__name__, *sorted(r.as_dict().items())) for r in trainer.run_history.records()]
    records = [tuple((k, v) for k, v in r[1:] if k != "seconds") for r in records]
    return records, score, trainer.schedule(), trainer.lineage()


@pytest.fixture(scope="module")
def expected() -> tuple:
    trainer = make_trainer(None)
    _, score = trainer.train()
    assert trainer.exploits, "the run should exploit, so interrupts land around copies too"
    return outcome(trainer, score)


def interrupted_then_continued(trainer: pybt.Trainer, capsys: pytest.CaptureFixture[str]) -> tuple:
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    err = capsys.readouterr().err
    assert err.count("Call trainer.train() again") == 1, err
    _, score = trainer.train()
    return outcome(trainer, score)


@pytest.mark.parametrize("with_run_dir", [False, True], ids=["in memory", "with run_dir"])
@pytest.mark.parametrize("at", range(1, STEPS + 1))
def test_ctrl_c_in_any_step_then_train_again(
    at: int, with_run_dir: bool, tmp_path: Path, expected: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = make_trainer(tmp_path / "run" if with_run_dir else None, Interrupter(at))
    assert interrupted_then_continued(trainer, capsys) == expected
    if with_run_dir:
        assert outcome(trainer, 0)[0] == [
            tuple((k, v) for k, v in sorted(r.as_dict().items()) if k != "seconds")
            for r in pybt.store.load_run(tmp_path / "run").history.records()
        ], "the journal holds what the trainer holds: no gap, no duplicate"


class InterruptInHook(Callback):
    def __init__(self, hook: str, at: int) -> None:
        self.hook, self.interrupter = hook, Interrupter(at)

    def on_step(self, trainer: Any, record: Any) -> None:
        if self.hook == "on_step":
            self.interrupter()

    def on_exploit(self, trainer: Any, record: Any) -> None:
        if self.hook == "on_exploit":
            self.interrupter()

    def on_checkpoint(self, trainer: Any, sequence: int) -> None:
        if self.hook == "on_checkpoint":
            self.interrupter()


HOOKS = [("on_step", 1), ("on_step", 4), ("on_step", 9), ("on_exploit", 1), ("on_exploit", 2),
         ("on_checkpoint", 1), ("on_checkpoint", 2)]  # fmt: skip


@pytest.mark.parametrize(("hook", "at"), HOOKS)
def test_ctrl_c_in_a_callback_then_train_again(
    hook: str, at: int, tmp_path: Path, expected: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    counter = Counter()

    class Count(Callback):
        def on_step(self, trainer: Any, record: Any) -> None:
            counter["step"] += 1

    trainer = make_trainer(tmp_path / "run", callbacks=[InterruptInHook(hook, at), Count()])
    assert interrupted_then_continued(trainer, capsys) == expected
    # The interrupted hook's record reached the callbacks before it, not the ones after it.
    assert counter["step"] in (STEPS, STEPS - 1)


def test_any_exception_then_train_again() -> None:
    class Flaky(Callback):
        calls = 0

        def on_exploit(self, trainer: Any, record: Any) -> None:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise ConnectionError("the dashboard went away")

    trainer = make_trainer(None, callbacks=[Flaky()])
    with pytest.raises(CallbackError):
        trainer.train()
    _, score = trainer.train()
    reference = make_trainer(None)
    assert outcome(trainer, score) == outcome(reference, reference.train()[1])


def test_a_torch_step_interrupted_halfway_is_put_back_and_run_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    torch = pytest.importorskip("torch")
    from pybt.model import TorchModelWrapper

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("int64")
    batches = {"n": 0, "at": 0}

    def train_step(module: Any, optimizer: Any, batch: Any, hyperparameters: Any) -> dict[str, Any]:
        batches["n"] += 1
        if batches["n"] == batches["at"]:
            raise KeyboardInterrupt  # halfway through an epoch: some batches already trained
        inputs, targets = batch
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(inputs), targets)
        loss.backward()
        optimizer.step()
        return {"loss": loss}

    def trainer() -> pybt.Trainer:
        torch.manual_seed(0)
        wrapper = TorchModelWrapper(
            torch.nn.Linear(4, 2), torch.optim.SGD, torch.nn.CrossEntropyLoss(), train_step=train_step,
            optimizer_kwargs={"lr": 0.1, "momentum": 0.9},
        )  # fmt: skip
        return pybt.Trainer(
            wrapper,
            population_size=3,
            hyperparameters={"lr": pybt.LogUniform(1e-3, 0.5)},
            stopping_criteria=StopAfter(4),
            ready_strategy=ReadyAfter(2),
            step_args={"fit_args": {"x": x, "y": y, "batch_size": 16}},
            eval_args={"x": x, "y": y},
            seed=1,
            verbose=0,
        )

    reference = trainer()
    _, expected = reference.train()
    batches.update(n=0, at=19)  # the second batch of the fifth member-step
    interrupted = trainer()
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    _, score = interrupted.train()
    assert score == expected
    assert [(r.member, r.epoch, r.score) for r in interrupted.history] == [
        (r.member, r.epoch, r.score) for r in reference.history
    ]


# ---- interrupts in the run's bookkeeping (found by review) ----------------------------------------
def interrupted_inside(target: Any, name: str, at: int, trainer: pybt.Trainer) -> pybt.Trainer:
    """``trainer`` with ``target.name`` raising KeyboardInterrupt on its ``at``-th call, once."""
    original = getattr(target, name)
    calls = {"n": 0}

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == at:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    setattr(target, name, wrapped)
    return trainer


@pytest.mark.parametrize(("where", "at"), [("get_state", 2), ("save_cut", 2), ("copy_states", 1)])
def test_ctrl_c_in_a_cut_or_a_copy_then_train_again(
    where: str, at: int, tmp_path: Path, expected: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = make_trainer(tmp_path / "reference")
    reference.train()
    trainer = make_trainer(tmp_path / "run")
    target = trainer._log.store if where == "save_cut" else trainer.executor
    interrupted_inside(target, where, at, trainer)
    assert interrupted_then_continued(trainer, capsys) == expected
    cuts = [cut for _, cut in pybt.store.RunStore.read(tmp_path / "run").journal.cuts()]
    assert cuts == [cut for _, cut in pybt.store.RunStore.read(tmp_path / "reference").journal.cuts()]
    run = pybt.store.load_run(tmp_path / "run")
    assert run.finished and len(run.history.steps) == STEPS


def test_a_stop_rule_raising_while_a_copy_is_applied_records_the_copy_once() -> None:
    class Flaky(StopAfter):
        calls = 0

        def is_done(self, member: Any) -> bool:
            Flaky.calls += 1
            if Flaky.calls == 12:
                raise KeyboardInterrupt
            return super().is_done(member)

    reference = make_trainer(None)
    reference.train()
    trainer = make_trainer(None, stopping_criteria=Flaky(EPOCHS))
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    trainer.train()
    assert len(trainer.exploits) == len(reference.exploits)
    assert [(r.member, r.donor, r.epoch) for r in trainer.exploits] == [
        (r.member, r.donor, r.epoch) for r in reference.exploits
    ]
