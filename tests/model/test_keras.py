"""Tests for pybt.model.KerasModelWrapper on the torch backend (set by conftest).

Tiny networks on a slice of scikit-learn's bundled digits keep each test to a few seconds.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from pybt import Trainer
from pybt.executor import SerialExecutor
from pybt.model import KerasModelWrapper
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.space import IntUniform, Uniform

LOSS = "sparse_categorical_crossentropy"


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = load_digits()
    x, y = (data.data / 16.0).astype("float32"), data.target.astype("int64")
    return x[:160], y[:160], x[160:240], y[160:240]


def tiny_model() -> Any:
    return keras.Sequential(
        [
            keras.Input(shape=(64,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def wrap(model: Any = None, **kwargs: Any) -> KerasModelWrapper:
    compile_args: dict[str, Any] = {
        "optimizer": keras.optimizers.Adam(learning_rate=1e-2),
        "loss": LOSS,
        "metrics": ["accuracy"],
    }
    compile_args.update(kwargs)
    return KerasModelWrapper(model if model is not None else tiny_model(), **compile_args)


def short_trainer(wrapper: KerasModelWrapper, digits: Any, **overrides: Any) -> Trainer:
    x_train, y_train, x_val, y_val = digits
    arguments: dict[str, Any] = {
        "model": wrapper,
        "population_size": 2,
        "stopping_criteria": StopAfter(1),
        "ready_strategy": ReadyAfter(1),
        "step_args": {"epochs_per_step": 1, "fit_args": {"x": x_train, "y": y_train}},
        "eval_args": {"x": x_val, "y": y_val},
        "seed": 0,
        "verbose": 0,
    }
    arguments.update(overrides)
    return Trainer(**arguments)


def test_train_returns_the_best_keras_model(digits: Any) -> None:
    trainer = short_trainer(wrap(), digits, stopping_criteria=StopAfter(2))
    best, score = trainer.train()
    assert isinstance(best, keras.Model)
    predictions = best.predict(digits[2], verbose=0)
    assert predictions.shape == (80, 10)
    assert np.mean(predictions.argmax(axis=1) == digits[3]) == pytest.approx(score, abs=1e-6)
    # The default metric is the first compiled one, maximized.
    assert (trainer.metric, trainer.mode) == ("accuracy", "max")
    assert set(trainer.history[0]["metrics"]) == {"accuracy", "loss", "train_accuracy", "train_loss"}
    # Member 0 starts from what the user gave: the optimizer's learning rate, fit's batch size.
    first = next(row for row in trainer.history if row["member"] == 0)
    assert first["hyperparameters"]["learning_rate"] == pytest.approx(1e-2)
    assert first["hyperparameters"]["batch_size"] == 32


def test_without_compiled_metrics_the_validation_loss_is_minimized(digits: Any) -> None:
    trainer = short_trainer(wrap(metrics=None), digits)
    trainer.train()
    assert (trainer.metric, trainer.mode) == ("loss", "min")
    assert all(row["score"] == row["metrics"]["loss"] for row in trainer.history)


def test_members_get_their_own_initial_weights_unless_kept() -> None:
    wrapper = wrap()
    first, second, first_again = wrapper.spawn(1), wrapper.spawn(2), wrapper.spawn(1)
    assert not np.array_equal(first.unwrap().get_weights()[0], second.unwrap().get_weights()[0])
    for a, b in zip(first.unwrap().get_weights(), first_again.unwrap().get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    template = tiny_model()
    kept = wrap(template, keep_weights=True)
    for member in (kept.spawn(1), kept.spawn(2)):
        assert member.unwrap() is not template
        for a, b in zip(member.unwrap().get_weights(), template.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


def test_learning_rate_and_beta_1_reach_the_optimizer(digits: Any) -> None:
    template = tiny_model()
    trainer = short_trainer(
        wrap(template, keep_weights=True),
        digits,
        hyperparameters={"learning_rate": Uniform(0.0, 0.1), "beta_1": Uniform(0.0, 0.99)},
        initial_hyperparameters=[
            {"learning_rate": 0.0, "beta_1": 0.5},
            {"learning_rate": 0.05, "beta_1": 0.8},
        ],
        exploit_strategy=None,
    )
    trainer.train()
    frozen, trained = trainer.executor.model(0), trainer.executor.model(1)
    assert float(frozen.optimizer.learning_rate) == 0.0
    assert float(trained.optimizer.learning_rate) == pytest.approx(0.05)
    assert (frozen.optimizer.beta_1, trained.optimizer.beta_1) == (0.5, 0.8)
    # A learning rate of 0 really leaves the weights where they started; 0.05 moves them.
    for a, b in zip(frozen.get_weights(), template.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(trained.get_weights()[0], template.get_weights()[0])


def test_beta_1_changes_the_adam_update(digits: Any) -> None:
    x_train, y_train, *_ = digits
    fit_args = {"x": x_train, "y": y_train, "batch_size": len(y_train), "shuffle": False}
    momenta = {}
    for beta_1 in (0.0, 0.5):
        member = wrap(keep_weights=False).spawn(7)  # the same seed: the same weights and data
        member.fit({"learning_rate": 1e-3, "beta_1": beta_1}, 1, fit_args)
        variables = member.unwrap().optimizer.variables
        momenta[beta_1] = [v.numpy() for v in variables if v.name.endswith("_momentum")]
    # After one step Adam's first moment is (1 - beta_1) * gradient.
    assert momenta[0.0]
    for zero, half in zip(momenta[0.0], momenta[0.5], strict=True):
        np.testing.assert_allclose(half, 0.5 * zero, rtol=1e-4, atol=1e-8)


class StepsRecorder(keras.callbacks.Callback):
    """Records how many batches each fit runs (Keras derives it from batch_size)."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []

    def on_train_begin(self, logs: Any = None) -> None:
        self.steps.append(self.params["steps"])


def test_batch_size_reaches_fit(digits: Any) -> None:
    x_train, y_train, *_ = digits
    recorder = StepsRecorder()
    trainer = short_trainer(
        wrap(),
        digits,
        hyperparameters={"batch_size": IntUniform(8, 160)},
        initial_hyperparameters=[{"batch_size": 16}, {"batch_size": 80}],
        step_args={"fit_args": {"x": x_train, "y": y_train, "callbacks": [recorder]}},
    )
    trainer.train()
    assert recorder.steps == [160 // 16, 160 // 80]


def test_copying_state_makes_a_member_equal_to_its_donor(digits: Any) -> None:
    x_train, y_train, x_val, y_val = digits
    executor = SerialExecutor()
    executor.start(wrap(), {"x": x_train, "y": y_train}, {"x": x_val, "y": y_val})
    executor.place(0, 11)
    executor.place(1, 22)
    executor.submit(0, {"learning_rate": 1e-2}, 1)
    executor.submit(1, {"learning_rate": 1e-3}, 1)
    assert [result.error for result in executor.completed()] == [None, None]

    donor, member = executor.get_state(0), executor.get_state(1)
    assert any(key.startswith("optimizer/") for key in donor)
    assert not np.array_equal(donor["weights/0000"], member["weights/0000"])

    executor.copy_states([(0, 1)])
    copied = executor.get_state(1)
    assert sorted(copied) == sorted(donor)
    for key in donor:
        np.testing.assert_array_equal(copied[key], donor[key], err_msg=key)
    np.testing.assert_array_equal(
        executor.model(1).predict(x_val, verbose=0), executor.model(0).predict(x_val, verbose=0)
    )
    # The copy is a copy: training the member on leaves the donor as it was.
    executor.submit(1, {"learning_rate": 1e-2}, 1)
    list(executor.completed())
    np.testing.assert_array_equal(executor.get_state(0)["weights/0000"], donor["weights/0000"])
