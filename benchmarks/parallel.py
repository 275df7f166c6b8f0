"""RayExecutor against in process: how much faster a 2-core machine trains a population.

The workload: PyTorch MLPs (64-512-512-10, SGD with momentum) on scikit-learn's digits through
``TorchModelWrapper``, population 8, 96 epochs each, 2 epochs per step (a step is >= 100 ms on
one thread), PBT ready every 8 epochs. It runs twice in one process, side by side: with the default
in-process executor, and on ``RayExecutor(max_concurrent=2)``, two actors with one CPU each.
Every side trains on one thread (``torch.set_num_threads(1)`` and ``OMP_NUM_THREADS=1`` here;
each actor pins torch to the one CPU it holds), so the in-process run does not use both cores.

Ray is started once, before the timings (a cluster is a running service); each Ray run's time
includes starting its actors, loading torch there and sending them the data. Asynchronous
PBT makes other decisions than the synchronous rounds in process: a ready member compares
itself with the latest scores, some of members still training towards its epoch, and may copy
one that trained less and redo its epochs. So the script also prints the member-epochs each
side trained, and the throughput ratio beside the wall-clock ratio.

Targets: median step >= 100 ms; wall-clock speedup (in process / Ray) >= 1.6.
Run: ``python benchmarks/parallel.py`` (about 1.5 minutes on a quiet 2-core machine; ``--help``).
Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import _common  # noqa: F401  (before NumPy: thread limits, import path)
import numpy as np
import ray
import torch
from _common import Verdicts, digits_split, load_note, median, section
from torch import nn

from pybt import LogUniform, Trainer
from pybt.executor.ray import RayExecutor
from pybt.model import TorchModelWrapper
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter

torch.set_num_threads(1)


def network(hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10)
    )


def run(executor: Any, args: argparse.Namespace, data: tuple[np.ndarray, ...]) -> dict[str, Any]:
    x, y, x_val, y_val = data
    trainer = Trainer(
        model=TorchModelWrapper(
            network(args.hidden),
            torch.optim.SGD,
            nn.CrossEntropyLoss(),
            optimizer_kwargs={"lr": 0.05, "momentum": 0.9},
        ),
        population_size=args.population,
        hyperparameters={"lr": LogUniform(1e-3, 0.3)},
        stopping_criteria=StopAfter(args.epochs),
        ready_strategy=ReadyAfter(args.ready),
        step_args={"epochs_per_step": 2, "fit_args": {"x": x, "y": y}},
        eval_args={"x": x_val, "y": y_val},
        executor=executor,
        seed=0,
        verbose=0,
    )
    started = time.perf_counter()
    _, score = trainer.train()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "score": score,
        "member_epochs": 2 * len(trainer.history),
        "step": median([row["seconds"] for row in trainer.history]),
        "exploits": len(trainer.exploits),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=96, help="epochs per member")
    parser.add_argument("--ready", type=int, default=8, help="ReadyAfter(epochs)")
    parser.add_argument("--hidden", type=int, default=512, help="width of the MLP's hidden layers")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side (medians are judged)")
    args = parser.parse_args(argv)
    data = digits_split(0)
    print(
        f"digits: {len(data[1])} train / {len(data[3])} validation rows; MLP 64-{args.hidden}-"
        f"{args.hidden}-10, SGD; population {args.population}, {args.epochs} epochs each, "
        f"2 epochs per step, ready every {args.ready}; {load_note()}"
    )

    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(f"ray.init(num_cpus=2): {time.perf_counter() - started:.1f} s (not counted below)")
    sides = {
        "in process": lambda: run(None, args, data),
        "RayExecutor (2 actors)": lambda: run(RayExecutor(max_concurrent=2), args, data),
    }
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    section("Runs")
    print(f"{'side':<24}{'wall s':>8}{'member-epochs':>15}{'epochs/s':>10}{'step ms':>9}{'best acc':>10}")
    try:
        for repeat in range(args.repeats):
            order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
            for name in order:
                row = sides[name]()
                results[name].append(row)
                print(
                    f"{name:<24}{row['seconds']:>8.1f}{row['member_epochs']:>15}"
                    f"{row['member_epochs'] / row['seconds']:>10.1f}{1000 * row['step']:>9.0f}"
                    f"{row['score']:>10.4f}",
                    flush=True,
                )
    finally:
        ray.shutdown()

    local, remote = results["in process"], results["RayExecutor (2 actors)"]
    wall = median([a["seconds"] / b["seconds"] for a, b in zip(local, remote, strict=True)])
    throughput = median(
        [
            (b["member_epochs"] / b["seconds"]) / (a["member_epochs"] / a["seconds"])
            for a, b in zip(local, remote, strict=True)
        ]
    )
    step = median([row["step"] for row in local + remote])
    section("Ratios")
    print(f"wall-clock speedup (in process / Ray): {wall:.2f}x")
    print(f"throughput ratio (member-epochs per second, Ray / in process): {throughput:.2f}x")
    verdicts = Verdicts()
    verdicts.check("median step >= 100 ms", step >= 0.1, f"{1000 * step:.0f} ms")
    verdicts.check("wall-clock speedup >= 1.6x on 2 actors", wall >= 1.6, f"{wall:.2f}x ({load_note()})")
    return verdicts.report()


if __name__ == "__main__":
    sys.exit(main())
