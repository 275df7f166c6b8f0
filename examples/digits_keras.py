"""PBT of a Keras network on scikit-learn's bundled digits (no download).

A small MLP, wrapped in ``KerasModelWrapper``, trains as a population of 8; PBT explores the
learning rate and the batch size. The script prints every member's validation accuracy, the
winning schedule, the winner's lineage and the accuracy of the returned ``keras.Model`` on
held-out test digits.

Keras runs on the backend named by ``KERAS_BACKEND``, else on the first one installed
(tensorflow, jax, torch). Run::

    python examples/digits_keras.py                      # population 8, 16 epochs
    python examples/digits_keras.py --quick              # population 4, 8 epochs (seconds)
    python examples/digits_keras.py --run-dir runs/keras # a resumable run folder; then
    pybt report runs/keras                               # writes runs/keras/report.html
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# A tiny network: more than one math thread per process only makes the threads wait on each other
# (on a busy 2-core machine this run took 16x longer with two). Set these yourself to override.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from pybt.demo import choose_keras_backend, digits_model, load_digits_split  # noqa: E402

BACKEND = choose_keras_backend()  # sets KERAS_BACKEND if unset, before Keras is imported

import keras  # noqa: E402

from pybt import IntUniform, LogUniform, Trainer  # noqa: E402
from pybt.model import KerasModelWrapper  # noqa: E402
from pybt.policy.done import StopAfter  # noqa: E402
from pybt.policy.ready import ReadyAfter  # noqa: E402
from pybt.report.tables import schedule_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="population 4, 8 epochs (seconds)")
    parser.add_argument("--population", type=int, help="members (default 8; quick 4)")
    parser.add_argument("--epochs", type=int, help="epochs per member (default 16; quick 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", help="keep the run in this folder (resumable; `pybt report` reads it)")
    args = parser.parse_args(argv)
    population = args.population or (4 if args.quick else 8)
    epochs = args.epochs or (8 if args.quick else 16)

    x_train, y_train, x_rest, y_rest = load_digits_split(args.seed)
    half = len(y_rest) // 2
    x_val, y_val, x_test, y_test = x_rest[:half], y_rest[:half], x_rest[half:], y_rest[half:]
    print(
        f"Keras ({BACKEND} backend) on digits: {len(y_train)} train / {len(y_val)} validation / "
        f"{len(y_test)} test; population {population}, {epochs} epochs each"
    )

    model = digits_model(keras)
    wrapped = KerasModelWrapper(
        model,
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    trainer = Trainer(
        model=wrapped,
        population_size=population,
        # Batches below 16 make an epoch slow without helping on 1347 digits.
        hyperparameters={
            "learning_rate": LogUniform(1e-4, 1e-1),
            "batch_size": IntUniform(16, 256, log=True),
        },
        stopping_criteria=StopAfter(epochs),
        ready_strategy=ReadyAfter(4),
        step_args={"epochs_per_step": 2, "fit_args": {"x": x_train, "y": y_train}},
        eval_args={"x": x_val, "y": y_val},
        run_dir=args.run_dir,
        seed=args.seed,
    )
    started = time.perf_counter()
    best_model, score = trainer.train()
    seconds = time.perf_counter() - started

    print("\nEvery member at the end (validation accuracy, hyperparameters):")
    last = {row["member"]: row for row in trainer.history}
    for member, row in sorted(last.items()):
        hp = row["hyperparameters"]
        print(
            f"  member {member}: {row['score']:.4f}  learning_rate={hp['learning_rate']:.3g} "
            f"batch_size={hp['batch_size']}"
        )
    best, exploits = trainer.best_member, len(trainer.exploits)
    print(
        f"\nBest: member {best}, validation accuracy {score:.4f}, after {exploits} exploits in the population"
    )
    print("Its schedule:")
    print(schedule_table(trainer.run_history))
    segments = reversed(trainer.lineage())
    lineage = " <- ".join(
        f"member {s['member']} (epochs {s['from_epoch']}-{s['to_epoch']})" for s in segments
    )
    print(f"Its lineage, newest first: {lineage}")
    _, test_accuracy = best_model.evaluate(x_test, y_test, verbose=0)
    print(f"\nThe returned keras.Model on the test digits: accuracy {test_accuracy:.4f}")
    print(f"Training took {seconds:.1f} s.")
    if args.run_dir:
        print(f"Run folder: {args.run_dir} (write its HTML report with: pybt report {args.run_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
