"""RayExecutor on a multi-node Ray cluster, simulated on this machine, losing a node mid-run.

``ray.cluster_utils.Cluster`` starts a head and two worker nodes (one CPU each) on loopback.
Removing a worker kills the actor there and the states it held; the run must still complete
with every member accounted for: members whose state survived go on from it, the others are
replaced by exploiting.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from pybt import Trainer
from pybt.executor.ray import RayExecutor
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.space import LogUniform

# A NumPy-only environment skips the file here (importing pybt.executor.ray needs no Ray).
ray = pytest.importorskip("ray")
Cluster = pytest.importorskip("ray.cluster_utils").Cluster

FINAL, POPULATION = 12, 6


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Any, list[Any]]]:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    # Ray declares a silent node dead after a few health checks; check often, so a lost node
    # is noticed in about a second rather than fifteen.
    fast_checks = {
        "health_check_period_ms": 300,
        "health_check_timeout_ms": 500,
        "health_check_failure_threshold": 3,
    }
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "_system_config": fast_checks},
    )
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster, workers
    ray.shutdown()  # in case the run failed before the executor closed the connection it made
    cluster.shutdown()


def init(seed: int) -> dict[str, Any]:
    # Large enough (160 kB) that Ray keeps it in the node's object store, not inline in the
    # driver: a removed node takes the states it held with it.
    return {"w": np.random.default_rng(seed).normal(size=2), "ballast": np.zeros(20_000), "epochs": 0}


def step(state: dict[str, Any], hp: dict[str, Any]) -> dict[str, Any]:
    time.sleep(0.1)
    return {"w": state["w"] * (1 - hp["lr"]), "ballast": state["ballast"], "epochs": state["epochs"] + 1}


def evaluate(state: dict[str, Any]) -> dict[str, float]:
    return {"score": -float(np.sum(state["w"] ** 2)), "epochs": float(state["epochs"]), "pid": os.getpid()}


def test_losing_a_node_mid_run_leaves_every_member_accounted_for(
    cluster: tuple[Any, list[Any]],
) -> None:
    simulated, workers = cluster
    # Connects to the head, as RayExecutor(address="auto") does on a machine of a real cluster
    # (an explicit address here, so that no other Ray on this machine is picked).
    with RayExecutor(address=simulated.address) as executor:
        trainer = Trainer(
            FunctionModel(init, step, evaluate),
            population_size=POPULATION,
            hyperparameters={"lr": LogUniform(0.01, 0.3)},
            stopping_criteria=StopAfter(FINAL),
            ready_strategy=ReadyAfter(3),
            executor=executor,
            seed=0,
            verbose=0,
        )
        removed_at: list[int] = []

        def remove_a_worker_mid_run() -> None:
            deadline = time.monotonic() + 120
            while len(trainer.history) < POPULATION * FINAL // 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            removed_at.append(len(trainer.history))
            simulated.remove_node(workers[0], allow_graceful=False)

        remover = threading.Thread(target=remove_a_worker_mid_run, daemon=True)
        remover.start()
        best, score = trainer.train()
        remover.join(timeout=30)

    assert removed_at and removed_at[0] < len(trainer.history)
    assert not ray.is_initialized()  # the executor made the connection, so closing it closed that
    assert executor.restarts >= 1  # the actor on the removed node
    events = sorted((r["sequence"], r["member"], r["epoch"]) for r in trainer.history + trainer.exploits)
    assert {member: epoch for _, member, epoch in events} == dict.fromkeys(range(POPULATION), FINAL)
    for failure in trainer.failures:  # only members whose state went with the node
        assert "lost with the Ray node" in failure["error"] or "actor died" in failure["error"]
    for row in trainer.history:
        assert row["metrics"]["epochs"] == row["epoch"]
    assert best["epochs"] == FINAL and -np.sum(best["w"] ** 2) == pytest.approx(score)
