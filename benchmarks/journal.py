"""What a run folder costs: a small Keras PBT run with and without ``run_dir``, side by side.

The two sides alternate, repeat after repeat, in one process (this machine is shared and
noisy); the ratio of the medians is the journal + checkpoint cost. Target: <= 1.10.

    python benchmarks/journal.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402

import pybt  # noqa: E402
from pybt.demo import digits_model, load_digits_split  # noqa: E402
from pybt.model import KerasModelWrapper  # noqa: E402
from pybt.policy.done import StopAfter  # noqa: E402
from pybt.policy.ready import ReadyAfter  # noqa: E402
from pybt.store import RunStore  # noqa: E402

TARGET = 1.10
POPULATION, EPOCHS, READY = 4, 8, 2


def one_run(run_dir: str | None) -> tuple[float, int]:
    """Seconds for one PBT run, and the member-steps it trained."""
    x_train, y_train, x_val, y_val = load_digits_split()
    wrapped = KerasModelWrapper(
        digits_model(keras),
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    trainer = pybt.Trainer(
        wrapped,
        population_size=POPULATION,
        stopping_criteria=StopAfter(EPOCHS),
        ready_strategy=ReadyAfter(READY),
        step_args={"epochs_per_step": 1, "fit_args": {"x": x_train, "y": y_train}},
        eval_args={"x": x_val, "y": y_val},
        run_dir=run_dir,
        seed=0,
        verbose=0,
    )
    started = time.perf_counter()
    trainer.train()
    return time.perf_counter() - started, len(trainer.history)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    one_run(None)  # warm-up: imports, first graph builds
    plain, journaled, disk = [], [], 0
    for repeat in range(args.repeats):
        seconds, steps = one_run(None)
        plain.append(seconds)
        with tempfile.TemporaryDirectory() as folder:
            seconds, _ = one_run(folder)
            journaled.append(seconds)
            store = RunStore(folder)
            disk = store.disk_bytes()
            store.close()
        print(f"repeat {repeat + 1}: without run_dir {plain[-1]:.2f} s, with run_dir {journaled[-1]:.2f} s")
    ratio = statistics.median(journaled) / statistics.median(plain)
    per_step_ms = (statistics.median(journaled) - statistics.median(plain)) / steps * 1e3
    print(f"member-steps per run: {steps} (population {POPULATION} x {EPOCHS} epochs, ready every {READY})")
    print(f"median without run_dir: {statistics.median(plain):.3f} s")
    print(f"median with run_dir:    {statistics.median(journaled):.3f} s")
    print(f"journal + checkpoint cost per member-step: {per_step_ms:.2f} ms")
    print(f"checkpoint files on disk at the end: {disk / 1024:.0f} KiB")
    print(f"ratio with/without: {ratio:.3f} (target <= {TARGET}) -> {'OK' if ratio <= TARGET else 'MISSED'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
