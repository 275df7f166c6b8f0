"""``pybt demo``: PBT of a small Keras network on scikit-learn's bundled digits.

It needs no download: the digits ship inside scikit-learn. Keras runs on whichever backend
is installed (``KERAS_BACKEND`` wins when set).
"""

from __future__ import annotations

import importlib.util
import os
import time
from typing import Any, TextIO

from pybt.callbacks.progress import format_seconds
from pybt.errors import MissingDependencyError, missing_extra

_BACKENDS = ("tensorflow", "jax", "torch")


def choose_keras_backend() -> str:
    """The backend named by KERAS_BACKEND, else the first installed one (set for this process)."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    for backend in _BACKENDS:
        if importlib.util.find_spec(backend) is not None:
            os.environ["KERAS_BACKEND"] = backend
            return backend
    raise MissingDependencyError(
        "The demo needs a Keras backend and none is installed. Install one, e.g.: pip install 'pybt[demo]'"
    )


def load_digits_split(seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """scikit-learn's 8x8 digits, scaled to [0, 1], split 75/25 with a fixed shuffle."""
    try:
        import numpy as np
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise missing_extra("scikit-learn", "demo") from error
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    x = (digits.data[order] / 16.0).astype("float32")
    y = digits.target[order].astype("int64")
    cut = int(0.75 * len(y))
    return x[:cut], y[:cut], x[cut:], y[cut:]


def digits_model(keras: Any, hidden: int = 64) -> Any:
    return keras.Sequential(
        [
            keras.Input(shape=(64,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def run_demo(
    population: int = 8,
    epochs: int = 20,
    seed: int = 0,
    out: TextIO | None = None,
    run_dir: str | None = None,
) -> float:
    """Train the demo population; print the result table; return the best validation accuracy.

    Members are ready every 2 epochs, so the winner's weights went through several copies and
    its schedule shows what PBT did. With ``run_dir`` the run is kept there for ``pybt report``.
    """
    import sys

    out = out or sys.stdout
    backend = choose_keras_backend()
    from pybt import Trainer
    from pybt.model import KerasModelWrapper
    from pybt.model.keras import load_keras
    from pybt.policy.done import StopAfter
    from pybt.policy.ready import ReadyAfter
    from pybt.report.tables import schedule_table

    keras = load_keras()
    x_train, y_train, x_val, y_val = load_digits_split(seed)
    out.write(
        f"PyBT demo: {population} Keras MLPs ({backend} backend) on scikit-learn's digits "
        f"({len(y_train)} train / {len(y_val)} validation), {epochs} epochs each.\n"
    )
    out.flush()
    started = time.perf_counter()
    wrapped = KerasModelWrapper(
        digits_model(keras),
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    trainer = Trainer(
        model=wrapped,
        population_size=population,
        stopping_criteria=StopAfter(epochs),
        ready_strategy=ReadyAfter(2),
        step_args={"epochs_per_step": 2, "fit_args": {"x": x_train, "y": y_train}},
        eval_args={"x": x_val, "y": y_val},
        run_dir=run_dir,
        seed=seed,
    )
    _, score = trainer.train()
    elapsed = time.perf_counter() - started
    lineage = " → ".join(
        f"member {s['member']} (epochs {s['from_epoch']}-{s['to_epoch']})" for s in trainer.lineage()
    )
    lines = [
        "",
        f"best validation accuracy  {score:.4f}  (member {trainer.best_member})",
        f"exploits                  {len(trainer.exploits)}",
        f"time                      {format_seconds(elapsed)} ({elapsed:.1f} s)",
        f"the winner's weights      {lineage}",
        "winning schedule (the hyperparameters that trained them):",
        schedule_table(trainer.run_history),
        "",
    ]
    if run_dir is not None:
        lines.append(f"Next: pybt report {run_dir}   (an HTML page of this run: scores, lineage, schedule)")
    else:
        lines.append(
            "Next: pybt demo --run-dir runs/demo, then pybt report runs/demo   (the run as an HTML page)"
        )
    out.write("\n".join(lines) + "\n")
    return score
