"""The toy problem of the PBT paper (Jaderberg et al. 2017, section 4 and Figure 2).

Two members maximize Q(θ) = 1.2 − (θ0² + θ1²) from θ = (0.9, 0.9), but each only sees a
surrogate Q̂(θ|h) = 1.2 − (h0·θ0² + h1·θ1²) and climbs it one gradient step per epoch. With
h = (1, 0) a member can only shrink θ0; with h = (0, 1) only θ1. So grid search over those
two settings ends at Q = 1.2 − 0.81 = 0.39 however long it trains, while PBT, copying the
better member's θ and perturbing its h every 4 epochs, gets close to the optimum Q = 1.2.

Run::

    python examples/toy.py            # 10 seeds (under a second)
    python examples/toy.py --quick    # 1 seed

It prints where each run ends, and exits 1 if PBT does not end above grid search.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from pybt import Trainer, Uniform
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.report import merged_schedule

STEP_SIZE = 0.05
EPOCHS = 100
SPACE = {"h0": Uniform(0.0, 1.0), "h1": Uniform(0.0, 1.0)}
# The paper's two members: each surrogate sees one coordinate of θ.
START = [{"h0": 1.0, "h1": 0.0}, {"h0": 0.0, "h1": 1.0}]


def init(seed: int) -> np.ndarray:
    return np.array([0.9, 0.9])


def step(theta: np.ndarray, h: Mapping[str, float]) -> np.ndarray:
    """One gradient-ascent step on the surrogate Q̂(θ|h)."""
    return theta - STEP_SIZE * 2.0 * np.array([h["h0"], h["h1"]]) * theta


def q(theta: np.ndarray) -> float:
    """The true objective, which every member is scored on."""
    return 1.2 - float(theta @ theta)


def run(seed: int, pbt: bool) -> tuple[Trainer, np.ndarray, float]:
    """Train the two members with PBT (or as a grid search); the trainer, winning θ and its Q."""
    policies: dict[str, Any] = {} if pbt else {"exploit_strategy": None, "explore_strategy": None}
    trainer = Trainer(
        model=FunctionModel(init, step, q),
        population_size=2,
        hyperparameters=SPACE,
        initial_hyperparameters=START,
        stopping_criteria=StopAfter(EPOCHS),
        ready_strategy=ReadyAfter(4),
        seed=seed,
        verbose=0,
        **policies,
    )
    theta, score = trainer.train()
    return trainer, theta, score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed")
    parser.add_argument("--seeds", type=int, help="how many seeds (default 10; quick 1)")
    args = parser.parse_args(argv)
    seeds = args.seeds or (1 if args.quick else 10)

    print(f"Toy problem: 2 members from θ = (0.9, 0.9), {EPOCHS} epochs, ReadyAfter(4), {seeds} seed(s)")
    print(f"{'seed':>4}  {'grid search θ':>18} {'Q':>7}   {'PBT θ':>18} {'Q':>7}  {'exploits':>8}")
    grid_scores, pbt_scores = [], []
    for seed in range(seeds):
        _, grid_theta, grid_q = run(seed, pbt=False)
        trainer, pbt_theta, pbt_q = run(seed, pbt=True)
        grid_scores.append(grid_q)
        pbt_scores.append(pbt_q)
        print(
            f"{seed:>4}  ({grid_theta[0]:+.4f}, {grid_theta[1]:+.4f}) {grid_q:>7.4f}   "
            f"({pbt_theta[0]:+.4f}, {pbt_theta[1]:+.4f}) {pbt_q:>7.4f}  {len(trainer.exploits):>8}"
        )
    grid, pbt = statistics.median(grid_scores), statistics.median(pbt_scores)
    print(f"\nGrid search ends at Q = {grid:.4f} (median), PBT at Q = {pbt:.4f}; the optimum is 1.2.")
    print("How the PBT winner got there (last seed): its h, stretch by stretch, and who trained it")
    for entry in merged_schedule(trainer.schedule()):
        h = entry["hyperparameters"]
        print(
            f"  epochs {entry['from_epoch']:>3}-{entry['to_epoch']:<3} member {entry['member']}  "
            f"h = ({h['h0']:.3f}, {h['h1']:.3f})"
        )
    return 0 if pbt > grid else 1


if __name__ == "__main__":
    sys.exit(main())
