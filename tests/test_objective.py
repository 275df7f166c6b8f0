"""Which way is better: metric names read as min or max, and the refusal of names that do not say."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pybt
from pybt.model import FunctionModel
from pybt.objective import classify, fitness, infer_mode


@pytest.mark.parametrize(
    "name",
    ["loss", "val_loss", "train_loss", "mean_squared_error", "sparse_categorical_crossentropy", "mae",
     "wer", "logloss", "perplexity", "rmse_1"],
)  # fmt: skip
def test_loss_and_error_like_names_are_minimized(name: str) -> None:
    assert classify(name) == "min" and infer_mode(name) == "min"


@pytest.mark.parametrize(
    "name",
    ["accuracy", "val_accuracy", "sparse_categorical_accuracy", "acc", "auc_1", "score", "mean_return",
     "episode_reward", "f1", "Q"],
)  # fmt: skip
def test_accuracy_score_and_return_like_names_are_maximized(name: str) -> None:
    assert classify(name) == "max" and infer_mode(name) == "max"


@pytest.mark.parametrize("name", ["latency", "total", "token", "x", "throughput_per_s"])
def test_a_name_that_does_not_say_is_refused_with_the_fix(name: str) -> None:
    assert classify(name) is None
    with pytest.raises(pybt.PyBTError) as error:
        infer_mode(name)
    message = str(error.value)
    assert "mode='min'" in message and "mode='max'" in message and repr(name) in message


@given(st.floats(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False, allow_infinity=False))
def test_fitness_orders_scores_by_mode(a: float, b: float) -> None:
    assert (fitness(a, "max") > fitness(b, "max")) == (a > b)
    assert (fitness(a, "min") > fitness(b, "min")) == (a < b)


def test_no_score_has_the_lowest_fitness() -> None:
    assert fitness(None, "max") == -math.inf and fitness(math.nan, "min") == -math.inf


def test_a_trainer_refuses_an_unclassifiable_metric_before_training() -> None:
    model = FunctionModel(lambda seed: {"x": 0.0}, lambda s, h: s, lambda s: {"latency": 1.0})
    with pytest.raises(pybt.PyBTError, match="mode="):
        pybt.Trainer(model, population_size=2, hyperparameters={"lr": 0.1}, metric="latency", verbose=0)
    # Named with its mode, it trains; found only at the first evaluation, it is refused then.
    trainer = pybt.Trainer(
        model, population_size=2, hyperparameters={"lr": 0.1}, metric="latency", mode="min", verbose=0
    )
    assert trainer.train()[1] == 1.0 and trainer.mode == "min"
    with pytest.raises(pybt.PyBTError, match="latency"):
        pybt.Trainer(model, population_size=2, hyperparameters={"lr": 0.1}, verbose=0).train()
