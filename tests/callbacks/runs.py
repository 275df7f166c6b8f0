"""The small run the integration callbacks are tested on: members whose step can be made to fail
(lr > 0.9) or be interrupted (``INTERRUPT["after"]`` steps from now), scored by accuracy."""

from __future__ import annotations

from typing import Any

import numpy as np

import pybt
from pybt.callbacks import Callback
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter

INTERRUPT: dict[str, int | None] = {"after": None}  # steps left before a KeyboardInterrupt


def init(seed: int) -> dict[str, Any]:
    return {"w": np.zeros(1)}


def step(state: dict[str, Any], h: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    if INTERRUPT["after"] is not None:
        INTERRUPT["after"] -= 1
        if INTERRUPT["after"] < 0:
            INTERRUPT["after"] = None
            raise KeyboardInterrupt
    if h["lr"] > 0.9:
        raise FloatingPointError("lr too high")
    w = state["w"] + h["lr"]
    return {"w": w}, {"loss": float(1 / (1 + w[0]))}


def evaluate(state: dict[str, Any]) -> dict[str, float]:
    return {"accuracy": float(state["w"][0]), "loss": float(2 / (1 + state["w"][0]))}


def make_trainer(callbacks: list[Callback], **overrides: Any) -> pybt.Trainer:
    arguments: dict[str, Any] = {
        "population_size": 4,
        "hyperparameters": {"lr": pybt.Uniform(0.0, 1.0), "optimizer": pybt.Choice(["sgd", "adam"])},
        "stopping_criteria": StopAfter(8),
        "ready_strategy": ReadyAfter(2),
        "metric": "accuracy",
        "seed": 3,
        "verbose": 0,
        "callbacks": callbacks,
    }
    arguments.update(overrides)
    return pybt.Trainer(FunctionModel(init, step, evaluate), **arguments)
