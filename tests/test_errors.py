"""Each user mistake raises a pybt.PyBTError that names the argument and the value received.

One test per mistake, so a failing message points at exactly one check.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import pybt
from pybt import Trainer
from pybt.model import FunctionModel, KerasModelWrapper
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.space import Uniform

X = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
Y = (X.sum(axis=1) > 0).astype("int64")


def function_model() -> FunctionModel:
    return FunctionModel(
        init=lambda seed: {"x": 0.0},
        step=lambda state, hp: {"x": state["x"] + hp["lr"]},
        evaluate=lambda state: {"score": state["x"]},
    )


def keras_wrapper(**compile_args: Any) -> KerasModelWrapper:
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2, activation="softmax")])
    arguments: dict[str, Any] = {
        "optimizer": keras.optimizers.Adam(1e-2),
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
    }
    arguments.update(compile_args)
    return KerasModelWrapper(model, **arguments)


def trainer(**overrides: Any) -> Trainer:
    arguments: dict[str, Any] = {
        "model": function_model(),
        "population_size": 2,
        "hyperparameters": {"lr": Uniform(0.0, 1.0)},
        "stopping_criteria": StopAfter(2),
        "ready_strategy": ReadyAfter(1),
        "verbose": 0,
        "seed": 0,
    }
    arguments.update(overrides)
    return Trainer(**arguments)


def keras_trainer(wrapper: KerasModelWrapper, **overrides: Any) -> Trainer:
    arguments: dict[str, Any] = {
        "model": wrapper,
        "hyperparameters": {"learning_rate": Uniform(1e-4, 1e-1)},
        "step_args": {"fit_args": {"x": X, "y": Y}},
        "eval_args": {"x": X, "y": Y},
        "stopping_criteria": StopAfter(1),
    }
    arguments.update(overrides)
    return trainer(**arguments)


def assert_names(error: pytest.ExceptionInfo[BaseException], argument: str, received: str) -> None:
    message = str(error.value)
    assert isinstance(error.value, pybt.PyBTError)
    assert argument in message, message
    assert f"received {received}" in message, message


def test_population_size_below_two() -> None:
    with pytest.raises(pybt.PyBTError) as error:
        trainer(population_size=1)
    assert_names(error, "population_size", "1")


def test_unknown_metric_with_function_model() -> None:
    run = trainer(metric="accuracy")
    with pytest.raises(pybt.PyBTError) as error:
        run.train()
    assert_names(error, "metric", "'accuracy'")
    assert "score" in str(error.value), "the message lists the metrics there are"


def test_unknown_metric_with_keras_is_refused_before_training() -> None:
    with pytest.raises(pybt.PyBTError) as error:
        keras_trainer(keras_wrapper(), metric="val_auc")
    assert_names(error, "metric", "'val_auc'")
    assert "accuracy" in str(error.value)


def test_keras_validation_metric_names_are_understood() -> None:
    run = keras_trainer(keras_wrapper(), metric="val_accuracy")
    assert run.metric == "accuracy" and run.mode == "max"
    run.train()
    assert all(step.score == step.metrics["accuracy"] for step in run.history)


def test_hyperparameter_the_keras_optimizer_lacks() -> None:
    with pytest.raises(pybt.PyBTError) as error:
        keras_trainer(keras_wrapper(), hyperparameters={"momentum_decay": Uniform(0.0, 1.0)})
    assert_names(error, "hyperparameters", "'momentum_decay'")
    assert "beta_1" in str(error.value), "the message lists what can be tuned"


def test_stop_after_zero() -> None:
    with pytest.raises(pybt.PyBTError) as error:
        StopAfter(0)
    assert_names(error, "StopAfter(epochs)", "0")


def test_ready_after_negative() -> None:
    with pytest.raises(pybt.PyBTError) as error:
        ReadyAfter(-1)
    assert_names(error, "ReadyAfter(epochs)", "-1")


def test_keras_fit_args_without_x() -> None:
    with pytest.raises(pybt.PyBTError) as error:
        keras_trainer(keras_wrapper(), step_args={"fit_args": {"y": Y}})
    assert_names(error, "step_args['fit_args']", "['y']")


def test_epochs_per_step_below_one() -> None:
    with pytest.raises(pybt.PyBTError) as error:
        trainer(step_args={"epochs_per_step": 0})
    assert_names(error, "step_args['epochs_per_step']", "0")


def test_initial_hyperparameters_of_the_wrong_length() -> None:
    with pytest.raises(pybt.PyBTError) as error:
        trainer(initial_hyperparameters=[{"lr": 0.1}, {"lr": 0.2}, {"lr": 0.3}])
    assert_names(error, "initial_hyperparameters", "'a list of 3'")
    assert "(2)" in str(error.value), "the message says how many were expected"


def test_initial_hyperparameters_out_of_bounds() -> None:
    with pytest.raises(pybt.PyBTError) as error:
        trainer(initial_hyperparameters=[{"lr": 0.1}, {"lr": 5.0}])
    assert_names(error, "initial_hyperparameters[1]['lr']", "5.0")


class NotAWrapper:
    def __repr__(self) -> str:
        return "NotAWrapper()"


def test_model_that_is_not_a_model_wrapper() -> None:
    with pytest.raises(pybt.PyBTError) as error:
        trainer(model=NotAWrapper())
    assert_names(error, "model", "NotAWrapper()")
    assert "ModelWrapper" in str(error.value)


def test_uncompilable_keras_model() -> None:
    with pytest.raises(pybt.PyBTError) as error:
        keras_wrapper(optimizer="no_such_optimizer")
    assert_names(error, "KerasModelWrapper(**compile_kwargs)", "{'optimizer': 'no_such_optimizer'")


def test_unknown_step_args_key() -> None:
    with pytest.raises(pybt.PyBTError) as error:
        trainer(step_args={"epochs_per_step": 1, "batch_size": 32})
    assert_names(error, "step_args", "['batch_size']")
