"""PBT of a PyTorch network on scikit-learn's digits, on Ray: the same Trainer, another executor.

The population trains as Ray actors on the cores of this machine (or a cluster: pass
``--address auto`` after ``ray start --head``). Members are scored and decide as soon as their
own step ends (asynchronous PBT); exploit copies weights actor to actor through Ray's object
store. The script prints every member's validation accuracy, the winner's schedule and lineage,
and how many actors were replaced (faults are recovered from, not fatal).

Run::

    python examples/digits_ray.py            # population 8, 16 epochs, all cores
    python examples/digits_ray.py --quick    # population 4, 6 epochs on 2 actors
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# Each actor trains a tiny network: one math thread per actor (Ray gives each actor one CPU).
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from pybt import IntUniform, LogUniform, Trainer  # noqa: E402
from pybt.demo import load_digits_split  # noqa: E402
from pybt.executor import RayExecutor  # noqa: E402
from pybt.model import TorchModelWrapper  # noqa: E402
from pybt.policy.done import StopAfter  # noqa: E402
from pybt.policy.ready import ReadyAfter  # noqa: E402
from pybt.report.tables import schedule_table  # noqa: E402


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="population 4, 6 epochs on 2 actors")
    parser.add_argument("--population", type=int, help="members (default 8; quick 4)")
    parser.add_argument("--epochs", type=int, help="epochs per member (default 16; quick 6)")
    parser.add_argument("--address", help="a Ray cluster to join ('auto' after `ray start --head`)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    population = args.population or (4 if args.quick else 8)
    epochs = args.epochs or (6 if args.quick else 16)

    x_train, y_train, x_val, y_val = load_digits_split(args.seed)
    print(f"PyTorch on digits with Ray: population {population}, {epochs} epochs each")
    wrapped = TorchModelWrapper(mlp(), torch.optim.Adam, nn.CrossEntropyLoss(), optimizer_kwargs={"lr": 1e-3})
    # The executor is the user's: `with` closes its actors (and Ray, if it started it) at the end.
    with RayExecutor(address=args.address, max_concurrent=2 if args.quick else None) as executor:
        trainer = Trainer(
            model=wrapped,
            population_size=population,
            hyperparameters={"lr": LogUniform(1e-4, 1e-1), "batch_size": IntUniform(16, 256, log=True)},
            stopping_criteria=StopAfter(epochs),
            ready_strategy=ReadyAfter(2),
            step_args={"epochs_per_step": 1, "fit_args": {"x": x_train, "y": y_train}},
            eval_args={"x": x_val, "y": y_val},
            executor=executor,
            seed=args.seed,
        )
        started = time.perf_counter()
        best_module, score = trainer.train()
        seconds = time.perf_counter() - started
        restarts = executor.restarts

    print("\nEvery member at the end (validation accuracy, hyperparameters):")
    for member in range(population):
        standing = trainer.run_history.standing(member)
        if standing is not None:
            print(f"  member {member}: {standing.score:.4f} at epoch {standing.epoch}")
    best, exploits = trainer.best_member, len(trainer.exploits)
    print(f"\nBest: member {best}, validation accuracy {score:.4f}; {exploits} exploits")
    print("Its schedule:")
    print(schedule_table(trainer.run_history))
    lineage = " <- ".join(
        f"member {s['member']} (epochs {s['from_epoch']}-{s['to_epoch']})"
        for s in reversed(trainer.lineage())
    )
    print(f"Its lineage, newest first: {lineage}")
    print(f"The returned module is a {type(best_module).__name__}, rebuilt in this process.")
    print(f"Training took {seconds:.1f} s on Ray; actors replaced after faults: {restarts}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
