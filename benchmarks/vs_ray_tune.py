"""PyBT on RayExecutor against Ray Tune's PopulationBasedTraining, on the same workload.

The workload: PyTorch MLPs (64-128-10, SGD with momentum 0.9, batch 32) on scikit-learn's
digits, population 8, 30 epochs, ready (Tune: ``perturbation_interval``) every 3 epochs,
learning rate in LogUniform(1e-3, 0.3); both sides start from the same 8 learning rates. One
epoch runs the same code on both sides: a ``TorchModelWrapper`` member's ``fit`` and
``evaluate``, so the difference is the orchestration alone.

- Ray Tune: a function trainable, as Tune's PBT docs show: it restores from
  ``tune.get_checkpoint()`` and reports every epoch with a checkpoint
  (``tune.report(metrics, checkpoint=Checkpoint.from_directory(...))``);
  ``PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=3,
  quantile_fraction=0.25, resample_probability=0.25, perturbation_factors=(1.2, 0.8))``,
  ``num_samples`` = one trial per starting learning rate, one CPU per trial.
- PyBT: ``Trainer(..., executor=RayExecutor())``, ``Truncation(0.25, 0.25)``,
  ``Perturb((0.8, 1.2), resample_probability=0.25)``, ``ReadyAfter(3)``, ``StopAfter(30)``.

Both run in the same Ray session (``ray.init(num_cpus=2)``, started once and not timed), one
thread per trial or actor, seed after seed, alternating which side goes first.

Targets (over >= 3 seeds): PyBT's median wall time <= 0.5x Ray Tune's, and its median final
best validation accuracy (the best member's latest score; Tune: ``scope="last"``) at least
Ray Tune's.

Ray Tune is a benchmark-only dependency: ``pip install "ray[tune]==<the installed ray version>"``.
Run: ``python benchmarks/vs_ray_tune.py`` (a few minutes on a quiet 2-core machine;
``--help``). Exits 1 when a target is missed, 2 when Ray Tune is not installed.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import sys
import tempfile
import time
from typing import Any

import _common  # noqa: F401  (before NumPy: thread limits, import path)
import numpy as np
import ray
import torch
from _common import Verdicts, digits_split, load_note, median, section, tune_missing
from torch import nn

from pybt import LogUniform, Trainer
from pybt.executor.ray import RayExecutor
from pybt.model import TorchModelWrapper
from pybt.policy.done import StopAfter
from pybt.policy.exploit import Truncation
from pybt.policy.explore import Perturb
from pybt.policy.ready import ReadyAfter

torch.set_num_threads(1)
LOW, HIGH = 1e-3, 0.3


def wrapper() -> TorchModelWrapper:
    return TorchModelWrapper(
        nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)),
        torch.optim.SGD,
        nn.CrossEntropyLoss(),
        optimizer_kwargs={"lr": 0.05, "momentum": 0.9},
    )


# ---- Ray Tune ------------------------------------------------------------------------------------
def tune_trainable(config: dict[str, Any], data: Any = None, seeds: Any = None, epochs: int = 30) -> None:
    from ray import tune

    x, y, x_val, y_val = data
    torch.set_num_threads(1)
    member = wrapper().spawn(seeds.get(config["lr"], 0))  # a fresh trial starts from its own seed
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory, open(os.path.join(directory, "state.pkl"), "rb") as f:
            saved = pickle.load(f)
        member.set_state(saved["state"])
        start = saved["epoch"]
    for epoch in range(start + 1, epochs + 1):
        member.fit({"lr": config["lr"]}, 1, {"x": x, "y": y})
        accuracy = member.evaluate({"x": x_val, "y": y_val})["accuracy"]
        with tempfile.TemporaryDirectory() as directory:
            with open(os.path.join(directory, "state.pkl"), "wb") as f:
                pickle.dump({"epoch": epoch, "state": member.get_state()}, f)
            tune.report(
                {"mean_accuracy": accuracy, "epoch": epoch},
                checkpoint=tune.Checkpoint.from_directory(directory),
            )


def run_tune(data: Any, lrs: list[float], epochs: int, ready: int, storage: str) -> dict[str, Any]:
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    scheduler = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=ready,
        hyperparam_mutations={"lr": tune.loguniform(LOW, HIGH)},
        quantile_fraction=0.25,
        resample_probability=0.25,
        perturbation_factors=(1.2, 0.8),
    )
    tuner = tune.Tuner(
        tune.with_parameters(
            tune_trainable, data=data, seeds={lr: i for i, lr in enumerate(lrs)}, epochs=epochs
        ),
        param_space={"lr": tune.grid_search(lrs)},
        tune_config=tune.TuneConfig(
            scheduler=scheduler, metric="mean_accuracy", mode="max", num_samples=1, reuse_actors=True
        ),
        run_config=tune.RunConfig(
            storage_path=storage,
            verbose=0,
            stop={"training_iteration": epochs},
            # Every checkpoint is kept: PBT restores exploiting trials from their donors' latest.
        ),
    )
    started = time.perf_counter()
    results = tuner.fit()
    seconds = time.perf_counter() - started
    best = results.get_best_result(metric="mean_accuracy", mode="max", scope="last")
    frames = [result.metrics_dataframe for result in results if result.metrics_dataframe is not None]
    return {
        "seconds": seconds,
        "accuracy": float(best.metrics["mean_accuracy"]),
        "epoch_s": median([float(t) for frame in frames for t in frame["time_this_iter_s"]]),
        "errors": len(results.errors),
    }


# ---- PyBT ------------------------------------------------------------------------------------------
def run_pybt(data: Any, lrs: list[float], epochs: int, ready: int, seed: int) -> dict[str, Any]:
    x, y, x_val, y_val = data
    with RayExecutor() as executor:  # its actors gone at the end, before Ray Tune's next run
        trainer = Trainer(
            model=wrapper(),
            population_size=len(lrs),
            hyperparameters={"lr": LogUniform(LOW, HIGH)},
            initial_hyperparameters=[{"lr": lr} for lr in lrs],
            stopping_criteria=StopAfter(epochs),
            ready_strategy=ReadyAfter(ready),
            exploit_strategy=Truncation(upper=0.25, lower=0.25),
            explore_strategy=Perturb(factors=(0.8, 1.2), resample_probability=0.25),
            step_args={"epochs_per_step": 1, "fit_args": {"x": x, "y": y}},
            eval_args={"x": x_val, "y": y_val},
            executor=executor,
            seed=seed,
            verbose=0,
        )
        started = time.perf_counter()
        _, score = trainer.train()
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "accuracy": float(score),
        "epoch_s": median([row["seconds"] for row in trainer.history]),
        "errors": len(trainer.failures),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds (>= 3 for the targets)")
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--ready", type=int, default=3, help="ready / perturbation interval, in epochs")
    args = parser.parse_args(argv)
    missing = tune_missing()
    if missing:
        print(f'Ray Tune is needed: pip install "ray[tune]=={ray.__version__}" ({missing})')
        return 2
    logging.getLogger("ray.tune").setLevel(logging.WARNING)  # not a line per exploit
    data = digits_split(0)
    print(
        f"digits: {len(data[1])} train / {len(data[3])} validation rows; MLP 64-128-10, SGD; "
        f"population {args.population}, {args.epochs} epochs, ready every {args.ready}; {load_note()}"
    )
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(f"ray.init(num_cpus=2): {time.perf_counter() - started:.1f} s (not counted below)")

    section(f"Runs, {args.seeds} seeds")
    print(f"{'seed':>5}  {'side':<10}{'wall s':>8}{'best acc':>10}{'epoch ms':>10}{'errors':>8}")
    results: dict[str, list[dict[str, Any]]] = {"Ray Tune": [], "PyBT": []}
    try:
        with tempfile.TemporaryDirectory() as storage:
            for seed in range(args.seeds):
                rng = np.random.default_rng(seed)
                lrs = [float(v) for v in np.exp(rng.uniform(np.log(LOW), np.log(HIGH), args.population))]
                sides = {
                    "Ray Tune": lambda lrs=lrs: run_tune(data, lrs, args.epochs, args.ready, storage),
                    "PyBT": lambda lrs=lrs, seed=seed: run_pybt(data, lrs, args.epochs, args.ready, seed),
                }
                for name in list(sides) if seed % 2 == 0 else list(reversed(sides)):
                    row = sides[name]()
                    results[name].append(row)
                    print(
                        f"{seed:>5}  {name:<10}{row['seconds']:>8.1f}{row['accuracy']:>10.4f}"
                        f"{1000 * row['epoch_s']:>10.1f}{row['errors']:>8}",
                        flush=True,
                    )
    finally:
        ray.shutdown()

    tune_rows, pybt_rows = results["Ray Tune"], results["PyBT"]
    section("Medians and ratios")
    for name, rows in results.items():
        print(
            f"{name:<10} wall {median([r['seconds'] for r in rows]):7.1f} s   "
            f"best accuracy {median([r['accuracy'] for r in rows]):.4f}   "
            f"one epoch {1000 * median([r['epoch_s'] for r in rows]):.1f} ms"
        )
    wall_ratio = median([p["seconds"] for p in pybt_rows]) / median([t["seconds"] for t in tune_rows])
    paired = [p["seconds"] / t["seconds"] for p, t in zip(pybt_rows, tune_rows, strict=True)]
    pybt_accuracy = median([r["accuracy"] for r in pybt_rows])
    tune_accuracy = median([r["accuracy"] for r in tune_rows])
    print(f"wall time PyBT / Ray Tune: {wall_ratio:.2f} (per seed: {', '.join(f'{r:.2f}' for r in paired)})")
    print(f"median best accuracy PyBT - Ray Tune: {pybt_accuracy - tune_accuracy:+.4f}")

    verdicts = Verdicts()
    enough = args.seeds >= 3
    verdicts.check(
        "PyBT median wall time <= 0.5x Ray Tune's (>= 3 seeds)",
        enough and wall_ratio <= 0.5,
        f"{wall_ratio:.2f}x over {args.seeds} seeds ({load_note()})",
    )
    verdicts.check(
        "PyBT median best accuracy >= Ray Tune's (>= 3 seeds)",
        enough and pybt_accuracy >= tune_accuracy,
        f"PyBT {pybt_accuracy:.4f} vs Ray Tune {tune_accuracy:.4f}",
    )
    return verdicts.report()


if __name__ == "__main__":
    sys.exit(main())
