"""PBT in its home field, reinforcement learning: a policy-gradient agent on CartPole-v1.

The agent is REINFORCE with a baseline and an entropy bonus, written in NumPy: a linear
softmax policy over gymnasium's CartPole-v1 (vectorized, so a batch of episodes runs as one
array), trained with Adam. PyBT sees it through ``FunctionModel``: ``init`` makes a policy,
``step`` plays one batch of episodes and updates the policy once (one "epoch"), and
``evaluate`` returns the mean return of the episodes just played, the score the PBT paper
uses for RL. PBT explores the learning rate and the entropy cost.

The same population then trains again without exploit and explore (random search: every
member keeps the hyperparameters it started with) for the same epochs: the same compute in
updates and episodes (PBT's better policies play longer episodes, so its runs take longer).
For each seed, the winner of each run plays 100 fresh episodes; the script prints the table
and exits 1 when PBT's mean over seeds is not higher.

Everything is deterministic given the seed. Run::

    python examples/cartpole.py            # population 8, 30 updates, 5 seeds (under a minute)
    python examples/cartpole.py --quick    # a few seconds: population 4, 6 epochs, 1 seed

``--exploit``, ``--explore``, ``--population`` and ``--ready`` try other policies.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from pybt import LogUniform, Trainer
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.exploit import BinaryTournament, Truncation
from pybt.policy.explore import Perturb, Resample
from pybt.policy.ready import ReadyAfter
from pybt.report.tables import schedule_table

try:
    import gymnasium
except ModuleNotFoundError:
    sys.exit("This example needs gymnasium: pip install gymnasium")

GAMMA = 0.99
EVAL_EPISODES = 100
EVAL_SEED = 2**20  # fresh episodes for the final comparison, the same for every winner
SPACE = {"learning_rate": LogUniform(1e-2, 3.0), "entropy_cost": LogUniform(1e-4, 1e-1)}
EXPLOITS = {"truncation": Truncation, "tournament": BinaryTournament}
EXPLORES = {"perturb": Perturb, "resample": Resample}

_envs: dict[int, Any] = {}


def _env(episodes: int) -> Any:
    """One vectorized CartPole-v1 per batch size, reused (each rollout resets it with a seed)."""
    if episodes not in _envs:
        _envs[episodes] = gymnasium.make_vec(
            "CartPole-v1", num_envs=episodes, vectorization_mode="vector_entry_point"
        )
    return _envs[episodes]


# ---- the agent --------------------------------------------------------------------------------
def init(seed: int) -> dict[str, Any]:
    """A fresh member: small random weights, zeroed Adam moments, its own random stream."""
    weights = np.random.default_rng(seed).normal(0.0, 0.01, size=(5, 2))  # 4 observations + bias
    return {
        "weights": weights,
        "adam_m": np.zeros_like(weights),
        "adam_v": np.zeros_like(weights),
        "updates": 0,
        "seed": int(seed),
        "last_return": 0.0,
    }


def _features(observations: np.ndarray) -> np.ndarray:
    return np.concatenate([observations, np.ones((*observations.shape[:-1], 1))], axis=-1)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def rollout(
    weights: np.ndarray, episodes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Play ``episodes`` episodes at once; return features [T, E, 5], actions [T, E], alive [T, E]."""
    env = _env(episodes)
    observations, _ = env.reset(seed=int(rng.integers(2**31)))
    alive = np.ones(episodes, dtype=bool)
    features, actions, alives = [], [], []
    while alive.any():
        x = _features(observations.astype(np.float64))
        action = (rng.random(episodes) < _softmax(x @ weights)[:, 1]).astype(np.int64)
        features.append(x)
        actions.append(action)
        alives.append(alive.copy())
        observations, _, terminated, truncated, _ = env.step(action)
        # An episode that ended is reset by the vector env on its next step; those steps are masked.
        alive &= ~(terminated | truncated)
    return np.array(features), np.array(actions), np.array(alives)


def _returns_to_go(alive: np.ndarray) -> np.ndarray:
    """Discounted returns from every step (reward 1 per step alive), zero after the episode ends."""
    returns = np.zeros(alive.shape)
    running = np.zeros(alive.shape[1])
    for t in range(len(alive) - 1, -1, -1):
        running = alive[t] * (1.0 + GAMMA * running)
        returns[t] = running
    return returns


def advantages(alive: np.ndarray) -> np.ndarray:
    """Returns-to-go minus a baseline, normalized, for every step played (``alive`` order)."""
    returns = _returns_to_go(alive)
    # Baseline: the mean return-to-go of the episodes still running at that time step.
    counts = np.maximum(alive.sum(axis=1, keepdims=True), 1)
    advantage = (returns - returns.sum(axis=1, keepdims=True) / counts)[alive]
    return (advantage - advantage.mean()) / (advantage.std() + 1e-8)


def policy_gradient(
    weights: np.ndarray, features: np.ndarray, actions: np.ndarray, alive: np.ndarray, entropy_cost: float
) -> np.ndarray:
    """The gradient of the REINFORCE loss with a baseline, minus the entropy bonus."""
    x, a, advantage = features[alive], actions[alive], advantages(alive)
    p = _softmax(x @ weights)
    log_p = np.log(p + 1e-12)
    entropy = -(p * log_p).sum(axis=1, keepdims=True)
    chosen = np.eye(2)[a]
    # d(-advantage·log π(a|x) - entropy_cost·H(π(·|x))) / d logits, averaged over every step.
    d_logits = -advantage[:, None] * (chosen - p) + entropy_cost * p * (log_p + entropy)
    return x.T @ d_logits / len(x)


def step(state: dict[str, Any], hyperparameters: Mapping[str, float], episodes: int = 8) -> Any:
    """One epoch: play a batch of episodes, then one Adam step on the policy."""
    # The random stream depends on the member's seed, its update count and its hyperparameters,
    # so a member that copied another one (and explored) does not replay its donor's episodes.
    key = np.array([hyperparameters["learning_rate"], hyperparameters["entropy_cost"]]).view(np.uint64)
    rng = np.random.default_rng([state["seed"], state["updates"], *key.tolist()])
    weights = state["weights"]
    features, actions, alive = rollout(weights, episodes, rng)
    gradient = policy_gradient(weights, features, actions, alive, hyperparameters["entropy_cost"])
    t = state["updates"] + 1
    m = 0.9 * state["adam_m"] + 0.1 * gradient
    v = 0.999 * state["adam_v"] + 0.001 * gradient**2
    update = hyperparameters["learning_rate"] * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    mean_return = float(alive.sum(axis=0).mean())
    new_state = {
        **state,
        "weights": weights - update,
        "adam_m": m,
        "adam_v": v,
        "updates": t,
        "last_return": mean_return,
    }
    return new_state, {"return": mean_return}


def evaluate(state: dict[str, Any]) -> dict[str, float]:
    """The mean return of the last batch of episodes (the policy before its latest update)."""
    return {"mean_return": state["last_return"]}


def fresh_return(state: Mapping[str, Any], episodes: int = EVAL_EPISODES, seed: int = EVAL_SEED) -> float:
    """The policy's mean return over ``episodes`` new episodes (the same ones for every policy)."""
    _, _, alive = rollout(state["weights"], episodes, np.random.default_rng(seed))
    return float(alive.sum(axis=0).mean())


# ---- PBT against random search ------------------------------------------------------------------
def train(
    seed: int,
    pbt: bool,
    population: int,
    epochs: int,
    ready: int,
    episodes: int,
    exploit: str = "truncation",
    explore: str = "perturb",
) -> tuple[Trainer, dict[str, Any]]:
    """One run; returns the trainer and the winning member's state."""
    policies: dict[str, Any] = {"exploit_strategy": None, "explore_strategy": None}
    if pbt:
        policies = {"exploit_strategy": EXPLOITS[exploit](), "explore_strategy": EXPLORES[explore]()}
    trainer = Trainer(
        model=FunctionModel(init, step, evaluate),
        population_size=population,
        hyperparameters=SPACE,
        stopping_criteria=StopAfter(epochs),
        ready_strategy=ReadyAfter(ready),
        step_args={"epochs_per_step": 1, "fit_args": {"episodes": episodes}},
        seed=seed,
        verbose=0,
        **policies,
    )
    best_state, _ = trainer.train()
    return trainer, best_state


def verdict(pbt_returns: list[float], baseline_returns: list[float]) -> tuple[bool, str]:
    """PBT wins when its mean over seeds is higher; the text says by how much and on how many seeds."""
    pbt, baseline = statistics.mean(pbt_returns), statistics.mean(baseline_returns)
    wins = sum(p > b for p, b in zip(pbt_returns, baseline_returns, strict=True))
    ok = pbt > baseline
    text = (
        f"{'PBT is higher' if ok else 'PBT is NOT higher'}: mean return {pbt:.1f} against {baseline:.1f} "
        f"without exploit/explore at equal compute (PBT higher on {wins} of {len(pbt_returns)} seeds)"
    )
    return ok, text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: small population, 1 seed")
    parser.add_argument("--seeds", type=int, help="how many seeds (default 5; quick 1)")
    parser.add_argument("--population", type=int, help="members (default 8; quick 4)")
    parser.add_argument("--epochs", type=int, help="updates per member (default 30; quick 6)")
    parser.add_argument("--ready", type=int, default=4, help="epochs between exploits (default 4)")
    parser.add_argument("--episodes", type=int, help="episodes per update (default 8)")
    parser.add_argument("--exploit", choices=sorted(EXPLOITS), default="truncation")
    parser.add_argument("--explore", choices=sorted(EXPLORES), default="perturb")
    args = parser.parse_args(argv)
    quick = args.quick
    seeds = args.seeds or (1 if quick else 5)
    population = args.population or (4 if quick else 8)
    epochs = args.epochs or (6 if quick else 30)
    episodes = args.episodes or 8
    setup = dict(population=population, epochs=epochs, ready=args.ready, episodes=episodes)

    print(
        f"CartPole-v1, REINFORCE: population {population}, {epochs} updates of {episodes} episodes each, "
        f"ReadyAfter({args.ready}), {args.exploit} + {args.explore}, {seeds} seed(s)"
    )
    print(f"{'seed':>4}  {'PBT':>8}  {'no PBT':>8}  {'exploits':>8}  {'PBT time':>8}  {'no-PBT time':>11}")
    pbt_returns, baseline_returns = [], []
    pbt_runs = []
    for seed in range(seeds):
        started = time.perf_counter()
        pbt, pbt_best = train(seed, True, exploit=args.exploit, explore=args.explore, **setup)
        pbt_seconds = time.perf_counter() - started
        started = time.perf_counter()
        _, baseline_best = train(seed, False, **setup)
        baseline_seconds = time.perf_counter() - started
        pbt_returns.append(fresh_return(pbt_best))
        baseline_returns.append(fresh_return(baseline_best))
        pbt_runs.append(pbt)
        print(
            f"{seed:>4}  {pbt_returns[-1]:>8.1f}  {baseline_returns[-1]:>8.1f}  {len(pbt.exploits):>8}  "
            f"{pbt_seconds:>7.1f}s  {baseline_seconds:>10.1f}s",
            flush=True,
        )
    print(f"{'mean':>4}  {statistics.mean(pbt_returns):>8.1f}  {statistics.mean(baseline_returns):>8.1f}")
    print(f"(mean return of each run's winner over {EVAL_EPISODES} fresh episodes; 500 is the most)")
    print("\nThe PBT winner's schedule (seed 0):")
    print(schedule_table(pbt_runs[0].run_history))
    ok, text = verdict(pbt_returns, baseline_returns)
    print(f"\n{text}")
    if quick:
        print("(--quick is too small to judge: the verdict is not enforced with --quick)")
        return 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
