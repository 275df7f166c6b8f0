"""Resuming a run folder on RayExecutor: an interrupted asynchronous run continues from its cut.

The interrupted trainer and the one that resumes share one executor, as in a notebook: the
second ``start()`` begins a new run while the first run's steps are still in flight.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import pybt
from pybt.executor.ray import RayExecutor
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.exploit import Truncation
from pybt.policy.ready import ReadyAfter
from pybt.store import RunStore, load_run

# A NumPy-only environment skips the file here (importing pybt.executor.ray needs no Ray).
ray = pytest.importorskip("ray")

EPOCHS = 12


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


class InterruptingTruncation(Truncation):
    """Truncation that stands in for a crash of the driver once a member is ready at epoch 8.

    It never picks a donor that is behind the member: the population defers such a copy (the
    donor is still training) without marking the member ready, and a member deferred at every
    ready point would hold back every checkpoint cut, as cuts wait for all members to pass a
    ready point. So by epoch 8 every member has passed earlier ready points (no member runs
    more than a ready interval ahead of the slowest), and a cut exists; the run stops at 12.
    The switch is a class attribute, so it is not part of the run's configuration.
    """

    crash: ClassVar[bool] = False

    def donor(self, member: Any, population: Any, rng: np.random.Generator) -> int | None:
        if InterruptingTruncation.crash and member.epoch >= 8:
            raise KeyboardInterrupt
        donor = super().donor(member, population, rng)
        if donor is not None and population.get(donor).epoch < member.epoch:
            return None
        return donor


def step(state: dict, h: dict) -> dict:
    time.sleep(0.02)  # long enough for steps to overlap on two actors
    theta = state["theta"]
    return {"theta": theta - 0.1 * np.array([h["h0"], h["h1"]]) * theta}


def make_trainer(run_dir: Path, executor: RayExecutor) -> pybt.Trainer:
    return pybt.Trainer(
        FunctionModel(
            lambda seed: {"theta": np.array([0.9, 0.9])}, step, lambda s: 1.2 - float(np.sum(s["theta"] ** 2))
        ),
        population_size=4,
        hyperparameters={"h0": pybt.Uniform(0, 1), "h1": pybt.Uniform(0, 1)},
        stopping_criteria=StopAfter(EPOCHS),
        ready_strategy=ReadyAfter(2),
        exploit_strategy=InterruptingTruncation(),
        executor=executor,
        run_dir=str(run_dir),
        seed=5,
        verbose=0,
    )


def test_an_interrupted_ray_run_resumes_from_its_newest_cut(tmp_path: Path) -> None:
    with RayExecutor(max_concurrent=2) as executor:
        InterruptingTruncation.crash = True
        with pytest.raises(KeyboardInterrupt):
            make_trainer(tmp_path, executor).train()
        InterruptingTruncation.crash = False

        store = RunStore(tmp_path)
        cut = store.latest_cut()
        before = store.rows("steps")
        store.close()
        assert cut is not None, "the interrupted run had written a checkpoint cut"
        sequence, _, states = cut
        assert sorted(states) == [0, 1, 2, 3], "a cut holds every member's state"
        kept = [row for row in before if row["sequence"] <= sequence]
        assert kept, "the cut comes after some steps"
        assert not load_run(tmp_path).finished

        trainer = make_trainer(tmp_path, executor)
        _, score = trainer.train()

    run = load_run(tmp_path)
    assert run.finished
    assert list(run.history.steps) == trainer.history
    # The rows up to the cut are kept as they were; the ones after it were trained again.
    assert trainer.history[: len(kept)] == kept
    sequences = [row["sequence"] for row in trainer.history]
    assert len(sequences) == len(set(sequences))
    # Every member finished, and the winner's schedule covers its epochs without a gap.
    for member in range(4):
        assert trainer.lineage(member)[-1]["to_epoch"] >= EPOCHS
    schedule = trainer.schedule()
    assert schedule[0]["from_epoch"] == 0 and schedule[-1]["to_epoch"] >= EPOCHS
    assert all(a["to_epoch"] == b["from_epoch"] for a, b in itertools.pairwise(schedule))
    assert score == max(row["score"] for row in trainer.history if row["epoch"] >= EPOCHS)
