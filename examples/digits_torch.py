"""PBT of a PyTorch network on scikit-learn's bundled digits (no download).

A small ``nn.Sequential`` MLP, wrapped in ``TorchModelWrapper`` with Adam and a cross-entropy
loss, trains as a population of 8; PBT explores Adam's ``lr`` and the batch size. The script
prints every member's validation accuracy, the winning schedule and its lineage, the test
accuracy of the returned ``nn.Module``, and then replays the winning schedule on a fresh
network with ``pybt.replay`` (the schedule, not the weights, is the reusable result of PBT).

Run::

    python examples/digits_torch.py            # population 8, 16 epochs
    python examples/digits_torch.py --quick    # population 4, 8 epochs (seconds)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# A tiny network: more than one math thread per process only makes the threads wait on each other
# (on a busy 2-core machine, many times slower). Set these yourself to override.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from pybt import IntUniform, LogUniform, Trainer, replay  # noqa: E402
from pybt.demo import load_digits_split  # noqa: E402
from pybt.model import TorchModelWrapper  # noqa: E402
from pybt.policy.done import StopAfter  # noqa: E402
from pybt.policy.ready import ReadyAfter  # noqa: E402
from pybt.report.tables import schedule_table  # noqa: E402


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def accuracy(module: nn.Module, x: object, y: object) -> float:
    with torch.no_grad():
        predicted = module(torch.as_tensor(x)).argmax(dim=1)
    return float((predicted == torch.as_tensor(y)).float().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="population 4, 8 epochs (seconds)")
    parser.add_argument("--population", type=int, help="members (default 8; quick 4)")
    parser.add_argument("--epochs", type=int, help="epochs per member (default 16; quick 8)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    population = args.population or (4 if args.quick else 8)
    epochs = args.epochs or (8 if args.quick else 16)

    x_train, y_train, x_rest, y_rest = load_digits_split(args.seed)
    half = len(y_rest) // 2
    x_val, y_val, x_test, y_test = x_rest[:half], y_rest[:half], x_rest[half:], y_rest[half:]
    print(
        f"PyTorch on digits: {len(y_train)} train / {len(y_val)} validation / {len(y_test)} test; "
        f"population {population}, {epochs} epochs each"
    )

    wrapped = TorchModelWrapper(mlp(), torch.optim.Adam, nn.CrossEntropyLoss(), optimizer_kwargs={"lr": 1e-3})
    step_args = {"epochs_per_step": 2, "fit_args": {"x": x_train, "y": y_train}}
    trainer = Trainer(
        model=wrapped,
        population_size=population,
        # Batches below 16 make an epoch slow without helping on 1347 digits.
        hyperparameters={"lr": LogUniform(1e-4, 1e-1), "batch_size": IntUniform(16, 256, log=True)},
        stopping_criteria=StopAfter(epochs),
        ready_strategy=ReadyAfter(4),
        step_args=step_args,
        eval_args={"x": x_val, "y": y_val},
        seed=args.seed,
    )
    started = time.perf_counter()
    best_module, score = trainer.train()
    seconds = time.perf_counter() - started

    print("\nEvery member at the end (validation accuracy, hyperparameters):")
    last = {row["member"]: row for row in trainer.history}
    for member, row in sorted(last.items()):
        hp = row["hyperparameters"]
        print(f"  member {member}: {row['score']:.4f}  lr={hp['lr']:.3g} batch_size={hp['batch_size']}")
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
    print(
        f"\nThe returned nn.Module on the test digits: accuracy {accuracy(best_module, x_test, y_test):.4f}"
    )

    replayed, metrics = replay(
        trainer.schedule(), wrapped, step_args=step_args, eval_args={"x": x_val, "y": y_val}
    )
    print(
        f"The winning schedule replayed on a fresh network: validation accuracy {metrics['accuracy']:.4f}, "
        f"test accuracy {accuracy(replayed, x_test, y_test):.4f}"
    )
    print(f"Training took {seconds:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
