"""Shared helpers for the benchmark scripts: set-up, side-by-side timing, data and verdicts.

Import it before NumPy or Keras: it pins the numerical libraries to one thread (the machines
these run on are small and shared, and one thread per process makes wall times steadier),
picks Keras's torch backend unless ``KERAS_BACKEND`` is set, and puts this checkout's
``pybt`` first on the import path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
os.environ.setdefault("KERAS_BACKEND", "torch")

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Mapping, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402


def import_keras() -> Any:
    """Keras on one torch thread (the same for every side of a comparison)."""
    import torch

    torch.set_num_threads(1)
    import keras

    return keras


def pbt_policies(pbt: bool) -> dict[str, Any]:
    """Trainer arguments for one side: PyBT's default exploit and explore, or none (the same
    members trained side by side without PBT)."""
    return {} if pbt else {"exploit_strategy": None, "explore_strategy": None}


def keras_digits_mlp(keras: Any, hidden: int) -> Any:
    """The digits MLP the Keras benchmarks train: 64 inputs, one ReLU layer, 10 softmax outputs."""
    return keras.Sequential(
        [
            keras.Input(shape=(64,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


@dataclass
class Timings:
    """Seconds per run of each side: wall clock, and this process's CPU time beside it."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]


def interleaved_timings(sides: Mapping[str, Callable[[], Any]], repeats: int) -> Timings:
    """Time each side ``repeats`` times, side by side.

    The order of the sides rotates every repeat (and reverses every other cycle), so load
    from other processes that drifts during the run falls on every side alike; ratios are
    then taken repeat by repeat. CPU time is kept too: it shows what the sides cost when other
    processes on a busy machine make the wall clock noisy.
    """
    names = list(sides)
    timings = Timings({name: [] for name in names}, {name: [] for name in names})
    for repeat in range(repeats):
        shift = repeat % len(names)
        order = names[shift:] + names[:shift]
        if (repeat // len(names)) % 2:
            order.reverse()
        for name in order:
            wall, cpu = time.perf_counter(), time.process_time()
            sides[name]()
            timings.cpu[name].append(time.process_time() - cpu)
            timings.wall[name].append(time.perf_counter() - wall)
    return timings


def busy() -> bool:
    """More runnable processes than cores (1-minute load average): the wall clock is noisy."""
    return os.getloadavg()[0] > (os.cpu_count() or 1)


def load_note() -> str:
    """The machine's load average against its cores."""
    note = f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count() or 1} cores"
    return note + (" (busy: other processes compete for the cores)" if busy() else "")


def paired_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """Ratio of each repeat's two timings (they ran next to each other, under the same load)."""
    return [a / b for a, b in zip(numerator, denominator, strict=True)]


def digits_split(seed: int, validation: float = 0.25, test: float = 0.0) -> tuple[np.ndarray, ...]:
    """scikit-learn's bundled 8x8 digits scaled to [0, 1], shuffled with ``seed`` and split.

    Returns ``x_train, y_train, x_val, y_val`` and, when ``test > 0``, ``x_test, y_test``.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    x = (digits.data[order] / 16.0).astype("float32")
    y = digits.target[order].astype("int64")
    n_test = round(test * len(y))
    n_val = round(validation * len(y))
    n_train = len(y) - n_val - n_test
    parts = [x[:n_train], y[:n_train], x[n_train : n_train + n_val], y[n_train : n_train + n_val]]
    if n_test:
        parts += [x[n_train + n_val :], y[n_train + n_val :]]
    return tuple(parts)


@dataclass
class Verdicts:
    """The targets a script checks; ``exit_code()`` is 1 when any was missed."""

    rows: list[tuple[str, str, bool]] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.rows.append((name, detail, bool(ok)))
        return bool(ok)

    def report(self) -> int:
        print("\nTargets")
        width = max((len(name) for name, _, _ in self.rows), default=0)
        for name, detail, ok in self.rows:
            print(f"  [{'PASS' if ok else 'FAIL'}] {name:<{width}}  {detail}")
        missed = sum(not ok for _, _, ok in self.rows)
        print("All targets met." if not missed else f"{missed} target(s) missed.")
        return 1 if missed else 0


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 86 - len(title)), flush=True)


def tune_missing() -> str | None:
    """Why Ray Tune cannot be imported here, or None when it can."""
    try:
        import ray.tune  # noqa: F401
    except ImportError as error:
        return str(error)
    return None
