"""PBT of Stable-Baselines3's SAC on gymnasium's Pendulum-v1, against the same population without it.

``SB3ModelWrapper`` makes each member a SAC agent with its own seed, environment and replay
buffer (an exploit copies networks, optimizers and counters; the member goes on learning from
its own experience). One epoch is ``agent.learn(steps)``; the score is the mean return of 5
evaluation episodes (deterministic actions; 1 with ``--quick``). PBT explores the learning rate
and the soft-update rate ``tau`` (SAC learns its entropy coefficient itself). The same population
(same seeds, same starting hyperparameters) then trains again without exploit and explore, for
the same environment steps. Each run's winner (the SAC agent ``trainer.train()`` returns) then
plays 20 fresh episodes (2 with ``--quick``), the same ones for every winner. Returns are
negative; about -150 is solved.

Run::

    python examples/sb3_pendulum.py            # population 4, 4 epochs of 800 steps, 2 seeds (~6 min)
    python examples/sb3_pendulum.py --quick    # population 2, 2 epochs of 64 steps, 1 seed (seconds)

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
    from stable_baselines3 import SAC
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
except ModuleNotFoundError:
    sys.exit("This example needs Stable-Baselines3: pip install 'pybt[sb3]'")

from pybt import LogUniform, Trainer  # noqa: E402
from pybt.model.sb3 import SB3ModelWrapper  # noqa: E402
from pybt.policy.done import StopAfter  # noqa: E402
from pybt.policy.ready import ReadyAfter  # noqa: E402
from pybt.report.tables import schedule_table  # noqa: E402

ENV = "Pendulum-v1"
SPACE = {"learning_rate": LogUniform(1e-4, 1e-2), "tau": LogUniform(2e-3, 5e-2)}
FINAL_EPISODES = 20
FINAL_SEED = 2**20  # fresh episodes for the final comparison, the same for every winner


def agent(learning_starts: int) -> Any:
    """SAC with two hidden layers of 64 (SB3's default is 256): Pendulum needs no more."""
    return SAC(
        "MlpPolicy",
        ENV,
        learning_starts=learning_starts,
        buffer_size=50_000,
        policy_kwargs={"net_arch": [64, 64]},
        device="cpu",
    )


def train(
    seed: int, pbt: bool, population: int, epochs: int, steps: int, ready: int, episodes: int = 5
) -> tuple[Trainer, Any]:
    """One run; returns the trainer and the winning SAC agent."""
    policies: dict[str, Any] = {} if pbt else {"exploit_strategy": None, "explore_strategy": None}
    wrapper = SB3ModelWrapper(
        agent(learning_starts=min(200, steps // 2)), steps_per_epoch=steps, eval_episodes=episodes
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
    envs = make_vec_env(ENV, n_envs=min(episodes, 10))
    envs.seed(FINAL_SEED)
    mean, _ = evaluate_policy(winner, envs, n_eval_episodes=episodes, deterministic=True)
    return float(mean)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds: population 2, 2 short epochs, 1 seed")
    parser.add_argument("--seeds", type=int, help="how many seeds (default 2; quick 1)")
    parser.add_argument("--population", type=int, help="members (default 4; quick 2)")
    parser.add_argument("--epochs", type=int, help="epochs per member (default 4; quick 2)")
    parser.add_argument("--steps", type=int, help="environment steps per epoch (default 800; quick 64)")
    parser.add_argument("--ready", type=int, default=1, help="epochs between exploits (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    quick = args.quick
    seeds = args.seeds or (1 if quick else 2)
    population, epochs = args.population or (2 if quick else 4), args.epochs or (2 if quick else 4)
    steps = args.steps or (64 if quick else 800)
    # --quick scores on fewer episodes: its numbers say that it runs, not which side is better.
    episodes, final_episodes = (1, 2) if quick else (5, FINAL_EPISODES)
    budget = population * epochs * steps
    print(
        f"SAC on {ENV}: population {population}, {epochs} epochs of {steps} environment steps, "
        f"ReadyAfter({args.ready}), {seeds} seed(s); {budget:,} environment steps per run, PBT or not"
    )
    print(f"{'seed':>4}  {'PBT':>8}  {'no PBT':>8}  {'exploits':>8}  {'PBT time':>8}  {'no-PBT time':>11}")
    pbt_returns, baseline_returns, pbt_runs = [], [], []
    for seed in range(seeds):
        timings = []
        for pbt in (True, False):
            started = time.perf_counter()
            trainer, winner = train(seed, pbt, population, epochs, steps, args.ready, episodes)
            timings.append(time.perf_counter() - started)
            (pbt_returns if pbt else baseline_returns).append(final_return(winner, final_episodes))
            if pbt:
                pbt_runs.append(trainer)
        print(
            f"{seed:>4}  {pbt_returns[-1]:>8.1f}  {baseline_returns[-1]:>8.1f}  "
            f"{len(pbt_runs[-1].exploits):>8}  {timings[0]:>7.1f}s  {timings[1]:>10.1f}s",
            flush=True,
        )
    pbt_mean, baseline_mean = statistics.mean(pbt_returns), statistics.mean(baseline_returns)
    print(f"{'mean':>4}  {pbt_mean:>8.1f}  {baseline_mean:>8.1f}")
    print(f"(each run's winner over {final_episodes} fresh episodes; 0 is the most, about -150 is solved)")
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
