"""pybt.load_run: a run folder read back — its history, its winner's weights in your own model
(evaluating to the recorded score), the winner exported in its framework's format."""

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

sys.path.insert(0, str(Path(__file__).parent))
from resumable_run import make_trainer


def test_a_finished_run_reads_back_with_its_winner(tmp_path: Path) -> None:
    trainer = make_trainer(str(tmp_path / "run"))
    state, score = trainer.train()
    run = pybt.load_run(tmp_path / "run")
    assert run.finished and run.status == "finished" and run.version == pybt.__version__
    assert (run.best_member, run.best_score) == (trainer.best_member, score)
    assert run.schedule() == trainer.schedule() and run.lineage() == trainer.lineage()
    assert run.created_at <= run.updated_at
    model = run.best_model(make_trainer(None).model)
    assert np.array_equal(model["theta"], state["theta"])
    exported = np.load(tmp_path / "run" / "best.npz")
    assert np.array_equal(exported["theta"], state["theta"])
    pandas = pytest.importorskip("pandas")
    assert isinstance(run.history_frame(), pandas.DataFrame) and len(run.history_frame()) == len(
        trainer.history
    )


def test_an_interrupted_run_reads_back_its_best_at_the_newest_cut(tmp_path: Path) -> None:
    calls = {"n": 0}
    model = make_trainer(None).model

    def stop_midway(state: Any, h: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 40:
            raise KeyboardInterrupt
        return model._step(state, h)

    trainer = pybt.Trainer(
        FunctionModel(model._init, stop_midway, model._evaluate),
        population_size=4,
        hyperparameters={"h0": pybt.Uniform(0, 1), "h1": pybt.Uniform(0, 1)},
        stopping_criteria=StopAfter(24),
        ready_strategy=ReadyAfter(4),
        run_dir=str(tmp_path / "run"),
        seed=11,
        verbose=0,
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    run = pybt.load_run(tmp_path / "run")
    assert run.status == "interrupted" and not run.finished
    weights = run.best_model(model)
    assert 1.2 - float(np.sum(weights["theta"] ** 2)) in {step.score for step in run.history.steps}


def test_best_ever_returns_the_best_state_seen_and_survives_a_resume(tmp_path: Path) -> None:
    # A score that rises then falls: the best state seen is not where the members end.
    def step(state: dict, h: dict) -> dict:
        return {"x": state["x"] + h["lr"]}

    def evaluate(state: dict) -> float:
        return -abs(float(state["x"][0]) - 3.0)

    def trainer(run_dir: Path | None, result: str) -> pybt.Trainer:
        return pybt.Trainer(
            FunctionModel(lambda seed: {"x": np.zeros(1)}, step, evaluate),
            population_size=3,
            hyperparameters={"lr": pybt.Uniform(0.4, 0.6)},
            stopping_criteria=StopAfter(12),
            ready_strategy=ReadyAfter(2),
            exploit_strategy=None,
            explore_strategy=None,
            run_dir=None if run_dir is None else str(run_dir),
            seed=0,
            verbose=0,
            result=result,
        )

    reference = trainer(None, "final")
    _, final = reference.train()
    kept = trainer(tmp_path / "run", "best_ever")
    kept_state, best = kept.train()
    assert best > final and best == max(step.score for step in reference.history)
    # The trainer and the run folder describe the weights train() returned, not the best now.
    best_step = reference.run_history.best_ever()
    assert kept.best_member == best_step.member
    assert kept.schedule()[-1]["to_epoch"] == best_step.epoch
    assert pybt.load_run(tmp_path / "run").schedule() == kept.schedule()
    assert evaluate(kept_state) == best
    run = pybt.load_run(tmp_path / "run")
    assert run.best_score == best and evaluate(run.best_model(trainer(None, "final").model)) == best
    again_state, again = trainer(tmp_path / "run", "best_ever").train()  # the finished run, read back
    assert again == best and evaluate(again_state) == best
    with pytest.raises(pybt.PyBTError, match="result"):
        trainer(None, "best")


def test_keras_and_torch_winners_load_back_and_score_as_recorded(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    torch = pytest.importorskip("torch")
    from pybt.model import KerasModelWrapper, TorchModelWrapper

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    data = {"step_args": {"fit_args": {"x": x, "y": y, "batch_size": 16}}, "eval_args": {"x": x, "y": y}}

    def keras_wrapper() -> KerasModelWrapper:
        model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2, activation="softmax")])
        return KerasModelWrapper(
            model,
            optimizer=keras.optimizers.SGD(0.1),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )

    def torch_wrapper() -> TorchModelWrapper:
        return TorchModelWrapper(torch.nn.Linear(4, 2), torch.optim.SGD, torch.nn.CrossEntropyLoss(),
                                 optimizer_kwargs={"lr": 0.1})  # fmt: skip

    for name, make, suffix in (("keras", keras_wrapper, ".keras"), ("torch", torch_wrapper, ".pt")):
        run_dir = tmp_path / name
        trainer = pybt.Trainer(
            make(), population_size=2, stopping_criteria=StopAfter(2), ready_strategy=ReadyAfter(1),
            run_dir=str(run_dir), seed=0, verbose=0, **data,
        )  # fmt: skip
        _, score = trainer.train()
        model = pybt.load_run(run_dir).best_model(make())
        wrapper = make()
        wrapper.prepare(trainer.space, data["step_args"]["fit_args"], data["eval_args"])
        member = wrapper.spawn(0)
        member.set_state(trainer.executor.get_state(trainer.best_member))
        assert member.evaluate(data["eval_args"])[trainer.metric] == score
        assert (run_dir / f"best{suffix}").is_file()
        if name == "keras":
            assert isinstance(model, keras.Model)
            reloaded = keras.saving.load_model(run_dir / "best.keras")
            assert reloaded.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] == pytest.approx(score)
            assert model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] == pytest.approx(score)
        else:
            assert isinstance(model, torch.nn.Module)
            accuracy = float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
            assert accuracy == pytest.approx(score)
            fresh = torch.nn.Linear(4, 2)
            fresh.load_state_dict(torch.load(run_dir / "best.pt"))
            assert float((fresh(torch.from_numpy(x)).argmax(1).numpy() == y).mean()) == pytest.approx(score)
