"""Faults on RayExecutor: actors killed mid-step, steps that kill their actor, steps that raise.

An actor whose process dies is replaced and its members go on from their last state, without
the trainer seeing a failure; a step that raises (or keeps killing its actor) fails the member,
which the trainer replaces by exploiting, as in process.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pybt import Trainer
from pybt.errors import TrainingError
from pybt.executor.ray import MAX_DEATHS, RayExecutor
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.space import Choice, LogUniform

# A NumPy-only environment skips the file here (importing pybt.executor.ray needs no Ray).
ray = pytest.importorskip("ray")

FINAL = 6


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def init(seed: int) -> dict[str, Any]:
    return {"w": np.random.default_rng(seed).normal(size=2), "epochs": 0}


def step(state: dict[str, Any], hp: dict[str, Any], victim: str = "", pause: float = 0.05) -> Any:
    time.sleep(pause)
    if hp.get("fault") == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if hp.get("fault") == "raise":
        raise RuntimeError(f"boom at epoch {state['epochs']}")
    if victim and state["epochs"] == 2 and _claim(victim):
        time.sleep(60)  # the test kills this process meanwhile
    return {"w": state["w"] * (1 - hp["lr"]), "epochs": state["epochs"] + 1}


def _claim(victim: str) -> bool:
    """The first step to get here announces its process id (once per run) and is killed."""
    try:
        descriptor = os.open(victim + ".claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(descriptor)
    Path(victim + ".tmp").write_text(str(os.getpid()))
    os.rename(victim + ".tmp", victim)
    return True


def evaluate(state: dict[str, Any]) -> dict[str, float]:
    return {"score": -float(np.sum(state["w"] ** 2)), "epochs": float(state["epochs"]), "pid": os.getpid()}


def trainer_for(executor: RayExecutor, faults: list[str | None], **fit_args: Any) -> Trainer:
    return Trainer(
        FunctionModel(init, step, evaluate),
        population_size=len(faults),
        hyperparameters={"lr": LogUniform(0.01, 0.3), "fault": Choice([None, "kill", "raise"])},
        initial_hyperparameters=[{"fault": fault} for fault in faults],
        stopping_criteria=StopAfter(FINAL),
        ready_strategy=ReadyAfter(2),
        explore_strategy=None,  # a replaced member takes its donor's (healthy) hyperparameters
        step_args={"fit_args": fit_args},
        executor=executor,
        seed=0,
        verbose=0,
    )


def final_epochs(trainer: Trainer) -> dict[int, int]:
    events = sorted((r["sequence"], r["member"], r["epoch"]) for r in trainer.history + trainer.exploits)
    return {member: epoch for _, member, epoch in events}


def test_an_actor_killed_mid_step_is_replaced_and_the_run_completes(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    killed: list[int] = []

    def kill_when_announced() -> None:
        deadline = time.monotonic() + 120
        while not victim.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        if victim.exists():
            killed.append(int(victim.read_text()))
            os.kill(killed[0], signal.SIGKILL)
            killed.append(len(trainer.history))  # steps recorded by then

    with RayExecutor() as executor:
        trainer = trainer_for(executor, [None] * 4, victim=str(victim))
        killer = threading.Thread(target=kill_when_announced, daemon=True)
        killer.start()
        trainer.train()
        killer.join(timeout=5)

    assert killed, "no step announced itself"
    assert executor.restarts == 1
    assert trainer.failures == []  # the trainer never saw the fault
    assert final_epochs(trainer) == dict.fromkeys(range(4), FINAL)
    for row in trainer.history:  # the lost step ran again from the member's last state, not its seed
        assert row["metrics"]["epochs"] == row["epoch"]
    # The killed process ran no step after the kill: the rest ran on the other actor and the
    # replacement (whichever was free first).
    pids = [row["metrics"]["pid"] for row in trainer.history]
    assert len(pids) > killed[1] and killed[0] not in pids[killed[1] :]


def test_a_step_that_keeps_killing_its_actor_fails_the_member() -> None:
    with RayExecutor() as executor:
        trainer = trainer_for(executor, ["kill", None, None, None])
        trainer.train()

    assert executor.restarts == MAX_DEATHS
    [failure] = trainer.failures
    assert failure["member"] == 0 and f"died {MAX_DEATHS} times in a row" in failure["error"]
    replaced = [row for row in trainer.exploits if row["member"] == 0 and row["reason"] == "failure"]
    assert replaced and replaced[0]["new_hyperparameters"]["fault"] is None
    assert final_epochs(trainer) == dict.fromkeys(range(4), FINAL)


def test_a_step_that_raises_is_handled_as_in_process() -> None:
    with RayExecutor() as executor:
        trainer = trainer_for(executor, [None, "raise", None])
        trainer.train()

    [failure] = trainer.failures
    assert failure["member"] == 1 and failure["error"] == "RuntimeError: boom at epoch 0"
    assert [row["member"] for row in trainer.exploits if row["reason"] == "failure"] == [1]
    assert final_epochs(trainer) == dict.fromkeys(range(3), FINAL)

    # When every member fails, the error chains the actor's exception, with its traceback.
    with RayExecutor() as executor, pytest.raises(TrainingError, match="Every member failed") as raised:
        trainer_for(executor, ["raise", "raise"]).train()
    cause = raised.value.__cause__
    assert isinstance(cause, RuntimeError) and str(cause) == "boom at epoch 0"
    assert any("Raised in a Ray actor" in note and "in step" in note for note in cause.__notes__)
