"""The Executor contract: what the trainer relies on from every executor.

Each executor's tests subclass :class:`ExecutorContract` and provide ``make_executor()``; every
test here then runs against that executor. The members are :class:`FunctionModel` members of
a quadratic bowl whose state counts its own epochs, defined at module level so that an
executor in other processes can unpickle them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from pybt.executor.base import Executor, StepResult
from pybt.model import FunctionModel

TARGET = np.array([1.0, -2.0, 0.5])


def init(seed: int) -> dict[str, Any]:
    return {"w": np.random.default_rng(seed).normal(size=3), "epochs": 0}


def step(state: dict[str, Any], hp: dict[str, Any], target: np.ndarray) -> Any:
    if hp.get("fail"):
        raise RuntimeError(f"boom at epoch {state['epochs']}")
    w = state["w"] - hp["lr"] * 2 * (state["w"] - target)
    return {"w": w, "epochs": state["epochs"] + 1}, {"step_norm": float(np.abs(w - state["w"]).sum())}


def evaluate(state: dict[str, Any], target: np.ndarray) -> dict[str, float]:
    return {"score": -float(np.sum((state["w"] - target) ** 2)), "epochs": float(state["epochs"])}


def other_init(seed: int) -> dict[str, Any]:
    """The members of a second run: another model altogether (two weights, from 100)."""
    return {"w": np.full(2, 100.0 + seed), "epochs": 0}


def bowl() -> FunctionModel:
    return FunctionModel(init, step, evaluate)


def trained(seed: int, lr: float, epochs: int) -> dict[str, Any]:
    """What a member trains to in this process: what every executor must reproduce."""
    state = init(seed)
    for _ in range(epochs):
        state, _ = step(state, {"lr": lr}, TARGET)
    return state


def drain(executor: Executor) -> list[StepResult]:
    """Every pending step's result; checks that ``pending`` counts down as they come."""
    results: list[StepResult] = []
    while executor.pending:
        before = executor.pending
        for result in executor.completed():
            results.append(result)
            before -= 1
            assert executor.pending == before
        assert executor.pending == before, "completed() yielded nothing while steps were pending"
    assert list(executor.completed()) == []
    return results


class ExecutorContract:
    """Subclass and implement ``make_executor()``; each test gets a fresh executor, closed after."""

    def make_executor(self) -> Executor:
        raise NotImplementedError

    @pytest.fixture
    def executor(self) -> Iterator[Executor]:
        executor = self.make_executor()
        executor.start(bowl(), {"target": TARGET}, {"target": TARGET})
        yield executor
        executor.close()

    # ---- the contract ----------------------------------------------------------------------------
    def test_each_submitted_step_completes_once_with_its_results(self, executor: Executor) -> None:
        rates = {0: 0.1, 1: 0.2, 2: 0.3}
        for member in rates:
            executor.place(member, seed=10 + member)
        assert executor.pending == 0
        for member, lr in rates.items():
            executor.submit(member, {"lr": lr}, 2)
        assert executor.pending == 3

        results = drain(executor)
        assert sorted(result.member for result in results) == [0, 1, 2]
        for result in results:
            expected = trained(10 + result.member, rates[result.member], 2)
            assert result.error is None and result.epochs == 2 and result.seconds >= 0
            assert result.eval_metrics == evaluate(expected, TARGET)
            assert set(result.train_metrics) == {"step_norm"}
            np.testing.assert_allclose(executor.get_state(result.member)["w"], expected["w"])

        # A member goes on from where its last step ended.
        executor.submit(0, {"lr": 0.1}, 1)
        [result] = drain(executor)
        assert result.eval_metrics["epochs"] == 3
        assert result.eval_metrics["score"] == evaluate(trained(10, 0.1, 3), TARGET)["score"]

    def test_a_failing_step_is_a_failed_result_not_an_exception(self, executor: Executor) -> None:
        for member in (0, 1):
            executor.place(member, seed=member)
        executor.submit(0, {"lr": 0.1, "fail": True}, 1)
        executor.submit(1, {"lr": 0.1}, 1)

        results = {result.member: result for result in drain(executor)}
        assert results[0].error == "RuntimeError: boom at epoch 0"
        assert results[0].eval_metrics == {}
        assert results[1].error is None

    def test_copy_states_reads_every_donor_before_overwriting(self, executor: Executor) -> None:
        for member, lr in ((0, 0.1), (1, 0.4)):
            executor.place(member, seed=member)
            executor.submit(member, {"lr": lr}, 1 + member)
        drain(executor)
        before = {member: executor.get_state(member) for member in (0, 1)}

        executor.copy_states([(0, 1), (1, 0)])  # a swap
        for member, donor in ((0, 1), (1, 0)):
            after = executor.get_state(member)
            np.testing.assert_array_equal(after["w"], before[donor]["w"])
            assert after["epochs"] == before[donor]["epochs"]
        # The copied state is what the member trains on next.
        executor.submit(0, {"lr": 0.0}, 1)
        [result] = drain(executor)
        assert result.eval_metrics == {"score": evaluate(before[1], TARGET)["score"], "epochs": 3.0}

    def test_a_member_never_stepped_hands_on_its_seed_state(self, executor: Executor) -> None:
        for member in (0, 1):
            executor.place(member, seed=20 + member)
        np.testing.assert_array_equal(executor.get_state(1)["w"], init(21)["w"])
        executor.copy_states([(1, 0)])
        np.testing.assert_array_equal(executor.get_state(0)["w"], init(21)["w"])

    def test_get_state_and_set_state_round_trip(self, executor: Executor) -> None:
        for member in (0, 1):
            executor.place(member, seed=member)
        executor.submit(0, {"lr": 0.2}, 2)
        drain(executor)
        state = executor.get_state(0)
        assert set(state) == {"w", "epochs"} and all(isinstance(v, np.ndarray) for v in state.values())

        executor.set_state(1, state)
        assert {k: v.tolist() for k, v in executor.get_state(1).items()} == {
            k: v.tolist() for k, v in state.items()
        }
        state["w"][:] = 0.0  # the executor keeps its own copy
        assert executor.get_state(1)["w"].any()
        executor.submit(1, {"lr": 0.2}, 1)
        [result] = drain(executor)
        assert result.eval_metrics["epochs"] == 3

    def test_model_is_the_unwrapped_member_in_this_process(self, executor: Executor) -> None:
        for member in (0, 1):
            executor.place(member, seed=member)
        assert executor.model(1)["epochs"] == 0  # before any step: the seed's model
        np.testing.assert_array_equal(executor.model(1)["w"], init(1)["w"])
        executor.submit(0, {"lr": 0.3}, 2)
        drain(executor)

        model = executor.model(0)
        assert isinstance(model, dict) and model["epochs"] == 2
        np.testing.assert_allclose(model["w"], trained(0, 0.3, 2)["w"])
        assert model["w"].flags.writeable  # a model of this process's own, not a read-only view
        executor.set_state(1, {"w": np.zeros(3), "epochs": np.array(7)})
        assert executor.model(1)["epochs"] == 7 and not executor.model(1)["w"].any()

    def test_a_second_start_begins_a_new_run(self, executor: Executor) -> None:
        for member in (0, 1, 2):
            executor.place(member, seed=member)
            executor.submit(member, {"lr": 0.1}, 1)
        drain(executor)
        executor.submit(0, {"lr": 0.1}, 1)  # left pending, as by an interrupted run

        executor.start(
            FunctionModel(other_init, step, evaluate), {"target": np.zeros(2)}, {"target": np.zeros(2)}
        )
        assert executor.pending == 0
        for member in (0, 1):
            executor.place(member, seed=member)
        np.testing.assert_array_equal(executor.get_state(1)["w"], [101.0, 101.0])
        executor.submit(0, {"lr": 0.5}, 1)
        executor.submit(1, {"lr": 0.5}, 2)

        results = {result.member: result for result in drain(executor)}
        assert sorted(results) == [0, 1]  # nothing of the first run comes back
        assert results[0].eval_metrics == {"score": 0.0, "epochs": 1.0}  # the new data (target 0)
        assert results[1].eval_metrics == {"score": 0.0, "epochs": 2.0}
        assert executor.model(1)["epochs"] == 2

    def test_a_context_manager_closed_on_exit_and_twice_is_fine(self) -> None:
        executor = self.make_executor()
        with executor as entered:
            assert entered is executor
            executor.start(bowl(), {"target": TARGET}, {"target": TARGET})
            executor.place(0, seed=0)
            executor.submit(0, {"lr": 0.1}, 1)
            [result] = drain(executor)
            assert result.error is None
        executor.close()
        executor.shutdown()  # the old name, the same
