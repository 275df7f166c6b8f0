"""Tests for pybt.model.FunctionModel: plain functions as a PBT model.

They check the ModelWrapper contract the trainer relies on: spawn gives each member its own
state, fit/evaluate return float metrics, and states cross as dicts of NumPy arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import pybt
from pybt.model import FunctionModel, ModelWrapper
from pybt.space import Domain, Uniform
from tests.model.contract import ModelWrapperContract


def init(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {"weights": {"w": rng.normal(size=3), "b": 0.0}, "steps": 0}


def step(state: dict[str, Any], hp: dict[str, Any], target: float = 1.0) -> tuple[dict[str, Any], dict]:
    weights = {"w": state["weights"]["w"] + hp["lr"] * target, "b": state["weights"]["b"] + 1.0}
    return {"weights": weights, "steps": state["steps"] + 1}, {"loss": float(-weights["w"].sum())}


def evaluate(state: dict[str, Any], scale: float = 1.0) -> dict[str, float]:
    return {"total": scale * float(state["weights"]["w"].sum()), "steps": state["steps"]}


def nested_model() -> FunctionModel:
    return FunctionModel(init, step, evaluate)


class TestFunctionModelContract(ModelWrapperContract):
    def make_template(self) -> FunctionModel:
        return nested_model()

    def space(self) -> dict[str, Domain]:
        return {"lr": Uniform(0.0, 1.0)}

    def fit_args(self) -> dict[str, Any]:
        return {"target": 2.0}

    def eval_args(self) -> dict[str, Any]:
        return {"scale": 0.5}


def test_is_a_model_wrapper_and_spawns_members_with_their_own_state() -> None:
    template = nested_model()
    assert isinstance(template, ModelWrapper)
    first, second, again = template.spawn(1), template.spawn(2), template.spawn(1)
    assert not np.array_equal(first.unwrap()["weights"]["w"], second.unwrap()["weights"]["w"])
    np.testing.assert_array_equal(first.unwrap()["weights"]["w"], again.unwrap()["weights"]["w"])
    assert template.unwrap() is None, "spawning leaves the template untouched"


def test_fit_runs_one_step_per_epoch_and_passes_fit_args() -> None:
    member = nested_model().spawn(0)
    start = member.unwrap()["weights"]["w"].copy()
    metrics = member.fit({"lr": 0.5}, epochs=3, fit_args={"target": 2.0})
    state = member.unwrap()
    assert state["steps"] == 3
    np.testing.assert_allclose(state["weights"]["w"], start + 3 * 0.5 * 2.0)
    assert metrics == {"loss": pytest.approx(-float(state["weights"]["w"].sum()))}
    assert all(isinstance(value, float) for value in metrics.values())


def test_evaluate_passes_eval_args_and_returns_floats() -> None:
    member = nested_model().spawn(0)
    metrics = member.evaluate({"scale": 2.0})
    assert metrics["total"] == pytest.approx(2.0 * float(member.unwrap()["weights"]["w"].sum()))
    assert metrics["steps"] == 0.0 and isinstance(metrics["steps"], float)


def test_a_number_from_evaluate_is_the_score_metric() -> None:
    member = FunctionModel(
        lambda seed: np.zeros(2), lambda s, hp: s + 1, lambda s: np.float32(s.sum())
    ).spawn(0)
    member.fit({}, 2, {})
    assert member.evaluate({}) == {"score": 4.0}


def test_step_returning_only_a_state_gives_no_train_metrics() -> None:
    member = FunctionModel(lambda seed: np.zeros(2), lambda s, hp: s + 1, lambda s: 0.0).spawn(0)
    assert member.fit({}, 1, {}) == {}


def test_nested_state_round_trips_through_arrays() -> None:
    donor, member = nested_model().spawn(1), nested_model().spawn(2)
    donor.fit({"lr": 0.1}, 2, {})
    state = donor.get_state()
    assert all(isinstance(value, np.ndarray) for value in state.values())
    member.set_state(state)
    copied = member.unwrap()
    np.testing.assert_array_equal(copied["weights"]["w"], donor.unwrap()["weights"]["w"])
    assert copied["weights"]["b"] == 2.0 and isinstance(copied["weights"]["b"], float)
    assert copied["steps"] == 2 and isinstance(copied["steps"], int)
    # A copy, not shared memory: training the donor on does not move the member.
    donor.fit({"lr": 0.1}, 1, {})
    assert member.unwrap()["steps"] == 2
    state["weights/w"][:] = 123.0
    assert not np.any(member.unwrap()["weights"]["w"] == 123.0)


def test_array_state_round_trips() -> None:
    template = FunctionModel(lambda seed: np.full(3, float(seed)), lambda s, hp: s, lambda s: 0.0)
    donor, member = template.spawn(5), template.spawn(7)
    member.set_state(donor.get_state())
    np.testing.assert_array_equal(member.unwrap(), np.full(3, 5.0))


def test_to_arrays_and_from_arrays_convert_other_states() -> None:
    class Box:
        def __init__(self, value: float) -> None:
            self.value = value

    template = FunctionModel(
        lambda seed: Box(float(seed)),
        lambda s, hp: Box(s.value + 1),
        lambda s: s.value,
        to_arrays=lambda box: {"value": np.array(box.value)},
        from_arrays=lambda arrays: Box(float(arrays["value"])),
    )
    donor, member = template.spawn(3), template.spawn(9)
    member.set_state(donor.get_state())
    assert member.unwrap().value == 3.0
    assert member.evaluate({}) == {"score": 3.0}


def test_a_state_that_cannot_be_copied_names_the_fix() -> None:
    member = FunctionModel(lambda seed: {"model": object()}, lambda s, hp: s, lambda s: 0.0).spawn(0)
    with pytest.raises(pybt.PyBTError, match="to_arrays"):
        member.get_state()


def test_non_numeric_metric_is_an_error_naming_it() -> None:
    member = FunctionModel(lambda seed: np.zeros(1), lambda s, hp: s, lambda s: {"acc": "high"}).spawn(0)
    with pytest.raises(pybt.PyBTError, match=r"evaluate metric 'acc'.*received 'high'"):
        member.evaluate({})


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"init": 3}, "FunctionModel(init=...)"),
        ({"evaluate": "score"}, "FunctionModel(evaluate=...)"),
        ({"to_arrays": lambda s: {}}, "FunctionModel(to_arrays=..., from_arrays=...)"),
    ],
)
def test_invalid_arguments_are_named(kwargs: dict[str, Any], argument: str) -> None:
    arguments: dict[str, Any] = {"init": lambda seed: 0.0, "step": lambda s, hp: s, "evaluate": lambda s: s}
    arguments.update(kwargs)
    with pytest.raises(pybt.PyBTError) as caught:
        FunctionModel(**arguments)
    assert argument in str(caught.value)
