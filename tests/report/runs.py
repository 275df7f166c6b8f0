"""Tiny real PBT runs and hand-made records for the report's tests, and ways to find what a
figure drew (by the gids the figures give their artists). Needs NumPy only."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

import pybt
from pybt.history import RunHistory
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.exploit import Truncation
from pybt.policy.ready import ReadyAfter
from pybt.store import describe

SPACE = {"lr": pybt.LogUniform(1e-4, 1.0), "opt": pybt.Choice(["adam", "sgd"])}
# Starting points that span four decades of lr (a log axis) and both optimizers.
INITIAL = [
    {"lr": 1e-4, "opt": "sgd"},
    {"lr": 0.3, "opt": "adam"},
    {"lr": 0.01, "opt": "sgd"},
    {"lr": 0.05, "opt": "adam"},
]


@dataclass
class Run:
    trainer: pybt.Trainer
    history: RunHistory
    config: dict[str, Any]


def pbt_run(
    population: int = 4,
    epochs: int = 12,
    *,
    mode: str = "max",
    fail_above: float | None = None,
    exploit: bool = True,
    initial: list[dict[str, Any]] | None = INITIAL,
) -> Run:
    """A FunctionModel run: w climbs towards 1 at speed lr (slower with sgd); lr above
    ``fail_above`` makes a step fail."""

    def init(seed: int) -> dict[str, Any]:
        return {"w": np.zeros(1)}

    def step(state: dict[str, Any], hp: dict[str, Any]) -> dict[str, Any]:
        if fail_above is not None and hp["lr"] > fail_above:
            raise FloatingPointError("loss diverged")
        gain = 1.0 if hp["opt"] == "adam" else 0.6
        w = float(state["w"][0])
        return {"w": np.array([w + hp["lr"] * gain * (1.0 - w)])}

    def evaluate(state: dict[str, Any]) -> dict[str, float]:
        w = float(state["w"][0])
        return {"accuracy": w, "loss": 1.0 - w}

    metric = "accuracy" if mode == "max" else "loss"
    trainer = pybt.Trainer(
        FunctionModel(init, step, evaluate),
        population_size=population,
        hyperparameters=SPACE,
        initial_hyperparameters=initial if initial is not None and len(initial) == population else None,
        stopping_criteria=StopAfter(epochs),
        ready_strategy=ReadyAfter(3),
        exploit_strategy=Truncation() if exploit else None,
        metric=metric,
        mode=mode,
        seed=0,
        verbose=0,
    )
    trainer.train()
    config = {
        "metric": metric,
        "mode": mode,
        "population_size": population,
        "space": describe(SPACE),
        "seed": 0,
    }
    return Run(trainer, trainer.run_history, config)


def member_lines(ax: Any) -> list[Any]:
    return [line for line in ax.lines if (line.get_gid() or "").startswith("member-")]


def by_gid(artists: Any, gid: str) -> list[Any]:
    return [artist for artist in artists if artist.get_gid() == gid]


def async_history() -> RunHistory:
    """Records as an asynchronous executor leaves them: member 1 raced ahead to epoch 5, then
    copied member 0 at epoch 3 (going back two epochs) and trained on to epoch 5. No mode: the
    history reads it as "max"."""
    hp0, hp1, hp1_new = {"lr": 0.1, "opt": "adam"}, {"lr": 0.001, "opt": "sgd"}, {"lr": 0.12, "opt": "adam"}
    steps, exploits = [], []
    sequence = 0

    def add_step(member: int, epoch: int, score: float, hp: dict[str, Any]) -> None:
        nonlocal sequence
        sequence += 1
        steps.append(
            {
                "member": member,
                "epoch": epoch,
                "hyperparameters": dict(hp),
                "metrics": {"accuracy": score},
                "score": score,
                "seconds": 0.5,
                "sequence": sequence,
            }
        )

    for epoch, score in enumerate([0.05, 0.07, 0.08, 0.09, 0.1], start=1):
        add_step(1, epoch, score, hp1)
    for epoch, score in enumerate([0.2, 0.4, 0.6], start=1):
        add_step(0, epoch, score, hp0)
    sequence += 1
    exploits.append(
        {
            "member": 1,
            "donor": 0,
            "epoch": 3,
            "member_epoch": 5,
            "old_hyperparameters": dict(hp1),
            "new_hyperparameters": dict(hp1_new),
            "reason": "exploit",
            "sequence": sequence,
        }
    )
    add_step(0, 4, 0.7, hp0)
    add_step(1, 4, 0.75, hp1_new)
    add_step(1, 5, 0.9, hp1_new)
    return RunHistory.from_rows(steps, exploits)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])
