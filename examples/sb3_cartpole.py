"""PBT of Stable-Baselines3's PPO on gymnasium's CartPole-v1, against the same population without it.

``SB3ModelWrapper`` makes each member a PPO agent with its own seed and its own 8 environments;
one epoch is ``agent.learn(steps)``, and the score is the mean return of 10 evaluation episodes
(deterministic actions; 3 with ``--quick``). PBT explores the learning rate, PPO's clip range and the entropy
coefficient. The same population (same seeds, same starting hyperparameters) then trains again
without exploit and explore, for the same environment steps. Each run's winner (the PPO agent
``trainer.train()`` returns) then plays 50 fresh episodes (10 with ``--quick``), the same ones
for every winner.

Run::

    python examples/sb3_cartpole.py            # population 8, 8 epochs of 1024 steps, 2 seeds (~2 min)
    python examples/sb3_cartpole.py --quick    # population 4, 2 epochs of 256 steps, 1 seed (seconds)

It needs Stable-Baselines3: ``pip install 'pybt[sb3]'``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

# Tiny networks: more than one math thread per process only makes the threads wait on each
# other (on a busy 2-core machine, many times slower). Set these yourself to override.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

try:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
except ModuleNotFoundError:
    sys.exit("This example needs Stable-Baselines3: pip install 'pybt[sb3]'")

from pybt import LogUniform, Trainer, Uniform  # noqa: E402
from pybt.model.sb3 import SB3ModelWrapper  # noqa: E402
from pybt.policy.done import StopAfter  # noqa: E402
from pybt.policy.ready import ReadyAfter  # noqa: E402
from pybt.report.tables import schedule_table  # noqa: E402

ENV = "CartPole-v1"
SPACE = {
    "learning_rate": LogUniform(1e-4, 1e-2),
    "clip_range": Uniform(0.1, 0.3),
    "ent_coef": LogUniform(1e-5, 1e-2),
}
FINAL_EPISODES = 50
FINAL_SEED = 2**20  # fresh episodes for the final comparison, the same for every winner


def agent(n_steps: int) -> Any:
    """PPO after rl-baselines3-zoo's CartPole: 8 environments, short rollouts, gamma 0.98."""
    envs = make_vec_env(ENV, n_envs=8)
    return PPO(
        "MlpPolicy",
        envs,
        n_steps=n_steps,
        batch_size=256,
        n_epochs=10,
        gamma=0.98,
        gae_lambda=0.8,
        device="cpu",
    )


def train(
    seed: int, pbt: bool, population: int, epochs: int, steps: int, ready: int, episodes: int = 10
) -> tuple[Trainer, Any]:
    """One run; returns the trainer and the winning PPO agent."""
    policies: dict[str, Any] = {} if pbt else {"exploit_strategy": None, "explore_strategy": None}
    wrapper = SB3ModelWrapper(
        agent(n_steps=min(64, steps // 8)), steps_per_epoch=steps, eval_episodes=episodes
    )
    trainer = Trainer(
        model=wrapper,
        population_size=population,
        hyperparameters=SPACE,
        stopping_criteria=StopAfter(epochs),
        ready_strategy=ReadyAfter(ready),
        seed=seed,
        verbose=0,
        **policies,
    )
    best, _ = trainer.train()
    return trainer, best


def final_return(winner: Any, episodes: int = FINAL_EPISODES) -> float:
    """The winner's mean return over fresh episodes (deterministic actions)."""
    envs = make_vec_env(ENV, n_envs=10)
    envs.seed(FINAL_SEED)
    mean, _ = evaluate_policy(winner, envs, n_eval_episodes=episodes, deterministic=True)
    return float(mean)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds: population 4, 2 short epochs, 1 seed")
    parser.add_argument("--seeds", type=int, help="how many seeds (default 2; quick 1)")
    parser.add_argument("--population", type=int, help="members (default 8; quick 4)")
    parser.add_argument("--epochs", type=int, help="epochs per member (default 8; quick 2)")
    parser.add_argument("--steps", type=int, help="environment steps per epoch (default 1024; quick 256)")
    parser.add_argument("--ready", type=int, help="epochs between exploits (default 2; quick 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    quick = args.quick
    seeds = args.seeds or (1 if quick else 2)
    population, epochs = args.population or (4 if quick else 8), args.epochs or (2 if quick else 8)
    steps, ready = args.steps or (256 if quick else 1024), args.ready or (1 if quick else 2)
    # --quick scores on fewer episodes: its numbers say that it runs, not which side is better.
    episodes, final_episodes = (3, 10) if quick else (10, FINAL_EPISODES)
    budget = population * epochs * steps
    print(
        f"PPO on {ENV}: population {population}, {epochs} epochs of {steps} environment steps, "
        f"ReadyAfter({ready}), {seeds} seed(s); {budget:,} environment steps per run, PBT or not"
    )
    print(f"{'seed':>4}  {'PBT':>7}  {'no PBT':>7}  {'exploits':>8}  {'PBT time':>8}  {'no-PBT time':>11}")
    pbt_returns, baseline_returns, pbt_runs = [], [], []
    for seed in range(seeds):
        timings = []
        for pbt in (True, False):
            started = time.perf_counter()
            trainer, winner = train(seed, pbt, population, epochs, steps, ready, episodes)
            timings.append(time.perf_counter() - started)
            (pbt_returns if pbt else baseline_returns).append(final_return(winner, final_episodes))
            if pbt:
                pbt_runs.append(trainer)
        print(
            f"{seed:>4}  {pbt_returns[-1]:>7.1f}  {baseline_returns[-1]:>7.1f}  "
            f"{len(pbt_runs[-1].exploits):>8}  {timings[0]:>7.1f}s  {timings[1]:>10.1f}s",
            flush=True,
        )
    pbt_mean, baseline_mean = statistics.mean(pbt_returns), statistics.mean(baseline_returns)
    print(f"{'mean':>4}  {pbt_mean:>7.1f}  {baseline_mean:>7.1f}")
    print(f"(each run's winner over {final_episodes} fresh episodes; 500 is the most)")
    print("\nThe PBT winner's schedule (seed 0):")
    print(schedule_table(pbt_runs[0].run_history))
    verdict = "higher" if pbt_mean > baseline_mean else "not higher"
    print(
        f"\nPBT is {verdict}: mean return {pbt_mean:.1f} against {baseline_mean:.1f} "
        "at equal environment steps"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
