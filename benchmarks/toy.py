"""The toy problem of the PBT paper (Jaderberg et al. 2017, Figure 2), run through PyBT.

The true objective is Q(θ) = 1.2 − (θ0² + θ1²); each member only climbs the surrogate
Q̂(θ|h) = 1.2 − (h0·θ0² + h1·θ1²), one gradient step of size 0.05 per epoch
(θ ← θ − 0.05·2·h·θ). Two members start at θ = (0.9, 0.9) with h = (1, 0) and (0, 1),
h ∈ [0, 1]², ready every 4 epochs, 100 epochs, default Truncation and Perturb.

Each member alone can only shrink one coordinate, so without PBT the best Q is
1.2 − 0.81 = 0.39; PBT combines the two by copying θ and exploring h. Target (over >= 20
seeds): median best Q >= 1.19 with exploit and explore, and 0.39 with neither.

Run: ``python benchmarks/toy.py [--seeds N]``. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import Any

import _common  # noqa: F401  (before NumPy and Keras: thread limits, import path)
import numpy as np
from _common import Verdicts, median, section

from pybt import Trainer, Uniform
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter

PBT_TARGET = 1.19
GRID_VALUE = 0.39
STEP_SIZE = 0.05

# name -> (exploit on, explore on); "pbt" and "grid" carry the targets.
VARIANTS: dict[str, tuple[bool, bool]] = {
    "pbt": (True, True),
    "grid": (False, False),
    "exploit-only": (True, False),
    "explore-only": (False, True),
}


def init(seed: int) -> np.ndarray:
    return np.array([0.9, 0.9])


def step(theta: np.ndarray, h: Mapping[str, float]) -> np.ndarray:
    """One gradient-ascent step on the surrogate Q̂(θ|h)."""
    return theta - STEP_SIZE * 2.0 * np.array([h["h0"], h["h1"]]) * theta


def true_q(theta: np.ndarray) -> float:
    return 1.2 - float(theta @ theta)


def make_trainer(seed: int, **policies: Any) -> Trainer:
    """The paper's set-up: two members, one starting on each axis, 100 steps, ready every 4."""
    return Trainer(
        model=FunctionModel(init, step, true_q),
        population_size=2,
        hyperparameters={"h0": Uniform(0, 1), "h1": Uniform(0, 1)},
        initial_hyperparameters=[{"h0": 1.0, "h1": 0.0}, {"h0": 0.0, "h1": 1.0}],
        stopping_criteria=StopAfter(100),
        ready_strategy=ReadyAfter(4),
        seed=seed,
        verbose=0,
        **policies,
    )


def run(seed: int, exploit: bool, explore: bool) -> tuple[float, np.ndarray, int]:
    """Best Q (the score ``train()`` returns), the winner's θ and the number of exploits."""
    policies: dict[str, Any] = {}
    if not exploit:
        policies["exploit_strategy"] = None
    if not explore:
        policies["explore_strategy"] = None
    trainer = make_trainer(seed, **policies)
    theta, score = trainer.train()
    return score, theta, len(trainer.exploits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30, help="how many seeds (>= 20 for the target)")
    args = parser.parse_args(argv)
    verdicts = Verdicts()
    started = time.perf_counter()

    section(f"Toy problem: population 2, 100 epochs, ReadyAfter(4), {args.seeds} seeds")
    scores: dict[str, list[float]] = {name: [] for name in VARIANTS}
    header = f"{'seed':>6}  {'θ of PBT winner':>18} {'exploits':>8}  " + "".join(f"{n:>13}" for n in VARIANTS)
    print(header)
    for seed in range(args.seeds):
        row = []
        for name, (exploit, explore) in VARIANTS.items():
            score, theta, exploits = run(seed, exploit, explore)
            scores[name].append(score)
            if name == "pbt":
                winner = f"({theta[0]:+.4f}, {theta[1]:+.4f})"
                pbt_exploits = exploits
            row.append(f"{score:>13.4f}")
        print(f"{seed:>6}  {winner:>18} {pbt_exploits:>8}  " + "".join(row))
    print(f"{'median':>6}  {'':>18} {'':>8}  " + "".join(f"{median(s):>13.4f}" for s in scores.values()))
    print(f"{'min':>6}  {'':>18} {'':>8}  " + "".join(f"{min(s):>13.4f}" for s in scores.values()))
    print(f"({time.perf_counter() - started:.1f} s)")
    print(
        "\nNote: exploit copies h along with θ, so 'exploit-only' leaves both members on one h and\n"
        "ends where grid search does; 'explore-only' perturbs (and now and then resamples) each\n"
        "member's own h at its ready points, which in time reaches both coordinates of θ."
    )

    pbt, grid = median(scores["pbt"]), median(scores["grid"])
    enough = args.seeds >= 20
    verdicts.check(
        f"median best Q with exploit+explore >= {PBT_TARGET} (>= 20 seeds)",
        enough and pbt >= PBT_TARGET,
        f"{pbt:.4f} over {args.seeds} seeds",
    )
    verdicts.check(
        f"median best Q with neither (grid search) == {GRID_VALUE}",
        enough and abs(grid - GRID_VALUE) < 0.005,
        f"{grid:.4f} over {args.seeds} seeds",
    )
    return verdicts.report()


if __name__ == "__main__":
    sys.exit(main())
