"""A small deterministic PBT run with a run folder, started by the resume tests in a subprocess.

Usage: python resumable_run.py RUN_DIR CALLS_FILE SLEEP_SECONDS
Each step appends a line to CALLS_FILE, so the test can count the steps a process trained.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

import pybt
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter

POPULATION, EPOCHS, READY = 4, 24, 4


def make_trainer(run_dir: str | None, calls_file: str | None = None, sleep: float = 0.0) -> pybt.Trainer:
    def init(seed: int) -> dict[str, np.ndarray]:
        return {"theta": np.array([0.9, 0.9])}

    def step(state: dict[str, np.ndarray], h: dict[str, float]) -> dict[str, np.ndarray]:
        if calls_file:
            with open(calls_file, "a") as calls:
                calls.write("step\n")
        time.sleep(sleep)
        theta = state["theta"]
        return {"theta": theta - 0.05 * 2 * np.array([h["h0"], h["h1"]]) * theta}

    def evaluate(state: dict[str, np.ndarray]) -> float:
        return 1.2 - float(np.sum(state["theta"] ** 2))

    return pybt.Trainer(
        FunctionModel(init, step, evaluate),
        population_size=POPULATION,
        hyperparameters={"h0": pybt.Uniform(0, 1), "h1": pybt.Uniform(0, 1)},
        stopping_criteria=StopAfter(EPOCHS),
        ready_strategy=ReadyAfter(READY),
        run_dir=run_dir,
        seed=11,
        verbose=0,
    )


if __name__ == "__main__":
    run_dir, calls_file, sleep = sys.argv[1], sys.argv[2], float(sys.argv[3])
    trainer = make_trainer(run_dir, calls_file, sleep)
    _, score = trainer.train()
    print(json.dumps({"score": score, "schedule": trainer.schedule()}))
