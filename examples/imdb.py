"""The original PyBT's example on Keras 3: classifying IMDB movie reviews with PBT.

It follows the example the original PyBT shipped (from François Chollet's *Deep Learning with
Python*, notebook 3.5, "classifying movie reviews"): reviews as multi-hot vectors over the
10,000 most frequent words, a 16-16-1 dense network, 10,000 reviews held out for validation,
``StopAfter(20)``, ``ReadyAfter(4)``, two epochs per step. PBT explores RMSprop's learning
rate and the batch size.

Unlike the other examples it downloads its data (about 17 MB, on first use, into
``~/.keras/datasets``) and needs about 2 GB of memory for the vectors, so the test suite does
not run it against the real data. Run::

    python examples/imdb.py            # population 10, 20 epochs
    python examples/imdb.py --quick    # population 4, 4 epochs on 5,000 reviews
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from pybt.demo import choose_keras_backend

BACKEND = choose_keras_backend()  # sets KERAS_BACKEND if unset, before Keras is imported

import keras  # noqa: E402

from pybt import IntUniform, LogUniform, Trainer  # noqa: E402
from pybt.model import KerasModelWrapper  # noqa: E402
from pybt.policy.done import StopAfter  # noqa: E402
from pybt.policy.ready import ReadyAfter  # noqa: E402
from pybt.report.tables import schedule_table  # noqa: E402

NUM_WORDS = 10_000


def vectorize_sequences(sequences: Any, dimension: int = NUM_WORDS) -> np.ndarray:
    """Each review (a list of word indices) as a multi-hot vector of ``dimension`` words."""
    results = np.zeros((len(sequences), dimension), dtype="float32")
    for i, sequence in enumerate(sequences):
        results[i, sequence] = 1.0
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="population 4, 4 epochs, 5,000 reviews")
    parser.add_argument("--population", type=int, help="members (default 10; quick 4)")
    parser.add_argument("--epochs", type=int, help="epochs per member (default 20; quick 4)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    population = args.population or (4 if args.quick else 10)
    epochs = args.epochs or (4 if args.quick else 20)

    (train_data, train_labels), (test_data, test_labels) = keras.datasets.imdb.load_data(num_words=NUM_WORDS)
    if args.quick:
        train_data, train_labels = train_data[:5000], train_labels[:5000]
        test_data, test_labels = test_data[:5000], test_labels[:5000]
    x_train, x_test = vectorize_sequences(train_data), vectorize_sequences(test_data)
    y_train = np.asarray(train_labels).astype("float32")
    y_test = np.asarray(test_labels).astype("float32")
    held_out = min(10_000, len(y_train) // 2)
    x_val, partial_x_train = x_train[:held_out], x_train[held_out:]
    y_val, partial_y_train = y_train[:held_out], y_train[held_out:]
    print(
        f"IMDB on Keras {keras.__version__} ({BACKEND}): {len(partial_y_train)} training, "
        f"{len(y_val)} validation and {len(y_test)} test reviews; population {population}, {epochs} epochs"
    )

    model = keras.Sequential(
        [
            keras.Input(shape=(NUM_WORDS,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    wrapped_model = KerasModelWrapper(
        model,
        optimizer=keras.optimizers.RMSprop(learning_rate=0.001),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    trainer = Trainer(
        model=wrapped_model,
        population_size=population,
        # The original trained with batches of 512; small batches on 10,000-word vectors are slow.
        hyperparameters={
            "learning_rate": LogUniform(1e-4, 1e-2),
            "batch_size": IntUniform(64, 1024, log=True),
        },
        stopping_criteria=StopAfter(epochs),
        ready_strategy=ReadyAfter(4),
        step_args={
            "epochs_per_step": 2,
            "fit_args": {"x": partial_x_train, "y": partial_y_train, "batch_size": 512},
        },
        eval_args={"x": x_val, "y": y_val},
        seed=args.seed,
    )
    started = time.perf_counter()
    best_model, score = trainer.train()
    seconds = time.perf_counter() - started

    print(f"\nBest: member {trainer.best_member}, validation accuracy {score:.4f} ({seconds:.0f} s)")
    print(schedule_table(trainer.run_history))
    test_loss, test_accuracy = best_model.evaluate(x_test, y_test, verbose=0)
    print(f"Test accuracy of the returned keras.Model: {test_accuracy:.4f} (loss {test_loss:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
