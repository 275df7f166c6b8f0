"""Tests for pybt.executor.serial.SerialExecutor: the Executor contract, in this process.

Beyond the contract, the in-process executor runs steps in submission order (the trainer sees
whole synchronous rounds), and a step interrupted mid-way is still pending afterwards.
"""

from __future__ import annotations

import numpy as np
import pytest

from pybt.executor.serial import SerialExecutor
from pybt.model import FunctionModel
from tests.executor.contract import TARGET, ExecutorContract, bowl, drain, evaluate, init, step


class TestSerialExecutorContract(ExecutorContract):
    def make_executor(self) -> SerialExecutor:
        return SerialExecutor()


def test_steps_run_in_submission_order() -> None:
    with SerialExecutor() as executor:
        executor.start(bowl(), {"target": TARGET}, {"target": TARGET})
        for member in range(4):
            executor.place(member, seed=member)
        for member in (2, 0, 3, 1):
            executor.submit(member, {"lr": 0.1}, 1)
        assert [result.member for result in drain(executor)] == [2, 0, 3, 1]


def interrupting_step(state: dict, hp: dict, target: np.ndarray) -> dict:
    if hp.get("interrupt"):
        raise KeyboardInterrupt
    return step(state, hp, target)[0]


def test_a_step_interrupted_midway_is_still_pending() -> None:
    executor = SerialExecutor()
    executor.start(FunctionModel(init, interrupting_step, evaluate), {"target": TARGET}, {"target": TARGET})
    executor.place(0, seed=0)
    executor.submit(0, {"lr": 0.1, "interrupt": True}, 1)
    with pytest.raises(KeyboardInterrupt):
        list(executor.completed())
    assert executor.pending == 1
