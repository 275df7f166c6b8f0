"""What a run folder costs: a small Keras PBT run with and without ``run_dir``, side by side.

The two sides alternate, repeat after repeat, in one process (the machine is shared and
noisy); the ratio of the medians is the journal + checkpoint cost. Target: <= 1.10.

    python benchmarks/journal.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile

import _common  # first of the non-stdlib imports: thread limits, Keras backend, import path

import pybt
from pybt.demo import digits_model, load_digits_split
from pybt.model import KerasModelWrapper
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.store import RunStore

TARGET = 1.10
POPULATION, EPOCHS, READY = 4, 8, 2
disk_bytes = 0


def one_run(with_run_dir: bool) -> int:
    """One PBT run of a small Keras MLP on the digits; returns the member-steps it trained."""
    global disk_bytes
    keras = _common.import_keras()
    x_train, y_train, x_val, y_val = load_digits_split()
    wrapped = KerasModelWrapper(
        digits_model(keras),
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    with tempfile.TemporaryDirectory() as folder:
        trainer = pybt.Trainer(
            wrapped,
            population_size=POPULATION,
            stopping_criteria=StopAfter(EPOCHS),
            ready_strategy=ReadyAfter(READY),
            step_args={"epochs_per_step": 1, "fit_args": {"x": x_train, "y": y_train}},
            eval_args={"x": x_val, "y": y_val},
            run_dir=folder if with_run_dir else None,
            seed=0,
            verbose=0,
        )
        trainer.train()
        if with_run_dir:
            store = RunStore(folder)
            disk_bytes = store.disk_bytes()
            store.close()
    return len(trainer.history)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args()
    print(_common.load_note())
    steps = one_run(False)  # warm-up: imports, first builds
    timings = _common.interleaved_timings(
        {"without run_dir": lambda: one_run(False), "with run_dir": lambda: one_run(True)}, args.repeats
    )
    plain, journaled = (_common.median(timings.wall[name]) for name in ("without run_dir", "with run_dir"))
    ratio = journaled / plain
    print(f"member-steps per run: {steps} (population {POPULATION} x {EPOCHS} epochs, ready every {READY})")
    print(f"median wall without run_dir: {plain:.3f} s   with run_dir: {journaled:.3f} s")
    print(f"journal + checkpoint cost per member-step: {(journaled - plain) / steps * 1e3:+.2f} ms")
    print(f"checkpoint files on disk at the end: {disk_bytes / 1024:.0f} KiB")
    verdicts = _common.Verdicts()
    verdicts.check("with/without run_dir wall-time ratio <= 1.10", ratio <= TARGET, f"{ratio:.3f}")
    return verdicts.report()


if __name__ == "__main__":
    sys.exit(main())
