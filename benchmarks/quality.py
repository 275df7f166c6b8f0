"""Does PBT find better models than random search for the same compute? (Keras, digits)

For each seed, one population of a small Keras MLP on scikit-learn's digits is trained twice
from the same start (same seed: same initial hyperparameters and weights), for the same
member-epochs:

- PBT: default Truncation exploit and Perturb explore, ready every few epochs;
- random search: ``exploit_strategy=None, explore_strategy=None`` (each member keeps its
  sampled hyperparameters to the end).

Hyperparameters come from KerasModelWrapper's default space (learning_rate
LogUniform(1e-7, 1e-1), batch_size IntUniform(8, 512, log=True)), wide enough that most
random draws train badly. Members are scored on a held-out validation split; a separate test
split, never used for selection, shows the winners' accuracy on unseen data.
Target: over >= 5 seeds, PBT's median best validation accuracy >= random search's.

Run: ``python benchmarks/quality.py [--seeds N --epochs E --population P]``. Exits 1 when
the target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import _common  # noqa: F401  (before NumPy: thread limits, Keras backend, import path)
from _common import Verdicts, digits_split, import_keras, keras_digits_mlp, median, pbt_policies, section

from pybt import Trainer
from pybt.model import KerasModelWrapper
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter


def search(
    keras: Any, data: tuple[Any, ...], seed: int, pbt: bool, population: int, epochs: int, ready: int
) -> dict[str, Any]:
    x, y, x_val, y_val, x_test, y_test = data
    policies = pbt_policies(pbt)
    trainer = Trainer(
        model=KerasModelWrapper(
            keras_digits_mlp(keras, 64),
            optimizer=keras.optimizers.Adam(),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        ),
        population_size=population,
        stopping_criteria=StopAfter(epochs),
        ready_strategy=ReadyAfter(ready),
        step_args={"epochs_per_step": 1, "fit_args": {"x": x, "y": y}},
        eval_args={"x": x_val, "y": y_val},
        seed=seed,
        verbose=0,
        **policies,
    )
    started = time.perf_counter()
    model, score = trainer.train()
    seconds = time.perf_counter() - started
    test = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    final = trainer.schedule()[-1]["hyperparameters"]
    return {
        "val": score,
        "test": float(test),
        "seconds": seconds,
        # One history row per member-step of one epoch: the compute actually spent.
        "member_epochs": len(trainer.history),
        "exploits": len(trainer.exploits),
        "lr": final["learning_rate"],
        "batch": final["batch_size"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds (>= 5 for the target)")
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10, help="epochs per member")
    parser.add_argument("--ready", type=int, default=2, help="ReadyAfter(epochs) for PBT")
    args = parser.parse_args(argv)
    keras = import_keras()
    verdicts = Verdicts()
    data = digits_split(0, validation=0.2, test=0.2)
    print(
        f"digits: {len(data[1])} train / {len(data[3])} validation / {len(data[5])} test rows; "
        f"Dense(64) MLP, Adam; population {args.population}, {args.epochs} epochs each, "
        f"PBT ready every {args.ready}"
    )

    section(f"PBT vs random search, {args.seeds} seeds")
    print(
        f"{'seed':>6}  {'side':<8}{'val acc':>9}{'test acc':>10}{'member-ep':>11}{'exploits':>9}"
        f"{'final lr':>11}{'batch':>7}{'seconds':>9}"
    )
    results: dict[str, list[dict[str, Any]]] = {"pbt": [], "random": []}
    started = time.perf_counter()
    for seed in range(args.seeds):
        for side in ("pbt", "random"):
            row = search(keras, data, seed, side == "pbt", args.population, args.epochs, args.ready)
            results[side].append(row)
            print(
                f"{seed:>6}  {side:<8}{row['val']:>9.4f}{row['test']:>10.4f}{row['member_epochs']:>11}"
                f"{row['exploits']:>9}{row['lr']:>11.2e}{row['batch']:>7}{row['seconds']:>9.1f}",
                flush=True,
            )
    print(f"({time.perf_counter() - started:.0f} s)")

    section("Medians")
    for side, rows in results.items():
        print(
            f"{side:<8} validation {median([r['val'] for r in rows]):.4f}   "
            f"test {median([r['test'] for r in rows]):.4f}   "
            f"member-epochs {median([r['member_epochs'] for r in rows]):.0f}"
        )
    wins = sum(p["val"] > r["val"] for p, r in zip(results["pbt"], results["random"], strict=True))
    ties = sum(p["val"] == r["val"] for p, r in zip(results["pbt"], results["random"], strict=True))
    print(f"PBT better on {wins} seeds, tied on {ties}, worse on {args.seeds - wins - ties}")

    pbt = median([r["val"] for r in results["pbt"]])
    random = median([r["val"] for r in results["random"]])
    same_budget = all(
        p["member_epochs"] == r["member_epochs"]
        for p, r in zip(results["pbt"], results["random"], strict=True)
    )
    verdicts.check("same member-epochs on both sides", same_budget, "checked per seed from trainer.history")
    verdicts.check(
        "median best validation accuracy: PBT >= random search (>= 5 seeds)",
        args.seeds >= 5 and pbt >= random,
        f"PBT {pbt:.4f} vs random {random:.4f} over {args.seeds} seeds",
    )
    return verdicts.report()


if __name__ == "__main__":
    sys.exit(main())
