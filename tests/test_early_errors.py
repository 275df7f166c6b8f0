"""Mistakes that can be found before training are: each is a PyBTError raised by the Trainer's
construction (or, where only a step can tell, by the first step) — never after the whole
population has trained."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

import pybt
from pybt.model import FunctionModel

X = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
Y = (X.sum(axis=1) > 0).astype("int64")


def function_trainer(
    init: Any = None, step: Any = None, evaluate: Any = None, **overrides: Any
) -> pybt.Trainer:
    arguments: dict[str, Any] = {
        "population_size": 2,
        "hyperparameters": {"lr": pybt.Uniform(0.0, 1.0)},
        "verbose": 0,
    }
    arguments.update(overrides)
    return pybt.Trainer(
        FunctionModel(
            init or (lambda seed: {"w": np.zeros(2)}),
            step or (lambda state, h: {"w": state["w"] + h["lr"]}),
            evaluate or (lambda state: float(state["w"][0])),
        ),
        **arguments,
    )


@pytest.mark.parametrize("state", [True, [1.0, 2.0], None, {"w": np.zeros(2), "flag": False}])
def test_a_state_that_cannot_be_copied(state: Any) -> None:
    with pytest.raises(pybt.PyBTError, match=r"FunctionModel\(init=...\)"):
        function_trainer(init=lambda seed: state)


def test_evaluate_needing_arguments_nobody_gives() -> None:
    def evaluate(state: Any, x: Any, y: Any) -> float:
        return 0.0

    with pytest.raises(pybt.PyBTError, match=r"FunctionModel\(evaluate=...\)") as error:
        function_trainer(evaluate=evaluate)
    assert "eval_args" in str(error.value) and "'x'" in str(error.value)


def test_step_not_taking_the_fit_args() -> None:
    with pytest.raises(pybt.PyBTError, match=r"FunctionModel\(step=...\)"):
        function_trainer(step_args={"fit_args": {"x": X}})


@pytest.mark.parametrize("value", ["0.5", True])
def test_an_evaluation_that_is_not_a_number(value: Any) -> None:
    trainer = function_trainer(evaluate=lambda state: {"score": value})
    with pytest.raises(pybt.PyBTError, match="evaluate metric 'score'"):
        trainer.train()
    assert trainer.history == []


def test_an_evaluated_metric_clashing_with_a_training_metric() -> None:
    steps = []

    def step(state: Any, h: Any) -> Any:
        steps.append(1)
        return {"w": state["w"] + h["lr"]}, {"loss": 1.0}

    trainer = function_trainer(step=step, evaluate=lambda state: {"score": 1.0, "train_loss": 2.0})
    with pytest.raises(pybt.PyBTError, match="train_loss"):
        trainer.train()
    assert len(steps) == 1, "found at the first step, before the rest of the population trains"


@pytest.mark.parametrize("name", ["lr", "learning_rate", "weight_decay", "batch_size"])
def test_negative_values_where_they_must_not_be(name: str) -> None:
    with pytest.raises(pybt.PyBTError, match=rf"hyperparameters\['{name}'\]"):
        function_trainer(hyperparameters={name: pybt.Uniform(-0.1, 0.1)})


def test_a_population_memory_cannot_hold_is_refused_at_once() -> None:
    started = time.perf_counter()
    with pytest.raises(pybt.PyBTError, match="population_size") as error:
        function_trainer(population_size=10**8)
    assert time.perf_counter() - started < 2
    assert "GiB" in str(error.value)


# ---- Keras and PyTorch data ---------------------------------------------------------------------
def keras_trainer(fit_args: dict[str, Any], eval_args: dict[str, Any], **overrides: Any) -> pybt.Trainer:
    keras = pytest.importorskip("keras")
    from pybt.model import KerasModelWrapper

    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2, activation="softmax")])
    wrapper = KerasModelWrapper(
        model, optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy"
    )
    arguments: dict[str, Any] = {
        "population_size": 2,
        "step_args": {"fit_args": fit_args},
        "eval_args": eval_args,
    }
    arguments.update(overrides)
    return pybt.Trainer(wrapper, verbose=0, **arguments)


@pytest.mark.parametrize(
    ("fit_args", "eval_args", "named"),
    [
        ({"x": X, "y": Y[:30]}, {"x": X, "y": Y}, "fit_args"),
        ({"x": X, "y": Y}, {"x": X[:0], "y": Y[:0]}, "eval_args"),
        ({"x": X, "y": Y, "batch_size": 0}, {"x": X, "y": Y}, "batch_size"),
    ],
)
def test_keras_data_that_cannot_train(fit_args: Any, eval_args: Any, named: str) -> None:
    with pytest.raises(pybt.PyBTError, match=named):
        keras_trainer(fit_args, eval_args)


def test_a_keras_optimizer_counter_is_no_hyperparameter() -> None:
    with pytest.raises(pybt.PyBTError, match="iterations"):
        keras_trainer(
            {"x": X, "y": Y}, {"x": X, "y": Y}, hyperparameters={"iterations": pybt.IntUniform(1, 9)}
        )


@pytest.mark.parametrize(
    ("fit_args", "named"),
    [({"x": X, "y": Y[:30]}, "fit_args"), ({"x": X, "y": Y, "batch_size": 0}, "batch_size")],
)
def test_torch_data_that_cannot_train(fit_args: Any, named: str) -> None:
    torch = pytest.importorskip("torch")
    from pybt.model import TorchModelWrapper

    wrapper = TorchModelWrapper(
        torch.nn.Linear(4, 2), torch.optim.SGD, torch.nn.CrossEntropyLoss(), optimizer_kwargs={"lr": 0.1}
    )
    with pytest.raises(pybt.PyBTError, match=named):
        pybt.Trainer(
            wrapper,
            population_size=2,
            step_args={"fit_args": fit_args},
            eval_args={"x": X, "y": Y},
            verbose=0,
        )
