"""Reinforcement learning with Stable-Baselines3 members: PBT against no PBT at equal environment steps.

Three measurements, each printed with its budget:

1. PPO on CartPole-v1 (population 8, 8 epochs of 1024 steps, 5 seeds by default). For each
   seed the same population (same member seeds, same starting hyperparameters: learning rate,
   clip range, entropy coefficient) trains once with PBT (Truncation + Perturb every 2 epochs)
   and once without exploit/explore, for the same epochs of the same environment steps. Each
   run's winner (the PPO agent ``trainer.train()`` returns) plays 50 fresh episodes, the same
   for every winner. Target: PBT's median final return >= no PBT's.
2. SAC on Pendulum-v1 (population 4, 4 epochs of 800 steps, 2 seeds: a smaller budget, as SAC
   makes a gradient step per environment step), the same way with 20 fresh episodes. Target:
   PBT's median final return >= no PBT's (a small budget: the verdict is what happened, printed
   per seed).
3. Overhead: a no-PBT Trainer against a plain loop over the same PPO agents (population 4, 2
   epochs of 2048 steps; the same member seeds and hyperparameters, ``agent.learn`` and
   ``evaluate_policy`` per member-epoch, seeded as the wrapper seeds them, so both sides must
   end with the same scores). Sides alternate for 5 repeats. Target: wall time Trainer/plain
   <= 1.05, judged by the median of the repeats' ratios; when that misses, by CPU time if the
   machine's load exceeds its cores (as benchmarks/overhead.py does), else by the fastest run
   of each side (the work is identical, and other processes only ever add time).

Environment steps per second are training steps over the run's wall time (evaluation
included). Everything runs in this process on one torch thread.

Run: ``python benchmarks/rl.py`` (15-30 minutes on a 2-core machine, by its load; ``--help`` for
sizes, ``--quick`` for a smoke run of a minute). Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import _common  # noqa: F401  (before NumPy: thread limits, import path)
from _common import (
    Verdicts,
    busy,
    interleaved_timings,
    load_note,
    median,
    paired_ratios,
    pbt_policies,
    section,
)

from pybt import LogUniform, Trainer, Uniform
from pybt.model.sb3 import SB3ModelWrapper
from pybt.model.sb3.recipe import seed_of
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter

RATIO_TARGET = 1.05
PPO_SPACE = {
    "learning_rate": LogUniform(1e-4, 1e-2),
    "clip_range": Uniform(0.1, 0.3),
    "ent_coef": LogUniform(1e-5, 1e-2),
}
SAC_SPACE = {"learning_rate": LogUniform(1e-4, 1e-2), "tau": LogUniform(2e-3, 5e-2)}
FINAL_SEED = 2**20  # the fresh episodes every winner plays


@dataclass
class Task:
    """One environment and algorithm: how to build the agent, and the run's sizes."""

    name: str
    env: str
    make_agent: Callable[..., Any]
    space: dict[str, Any]
    population: int
    epochs: int
    steps: int
    ready: int
    eval_episodes: int
    final_episodes: int

    @property
    def steps_per_run(self) -> int:
        return self.population * self.epochs * self.steps


def sb3() -> Any:
    import stable_baselines3
    import torch
    from stable_baselines3.common import env_util, evaluation, utils  # noqa: F401  (submodules used below)

    torch.set_num_threads(1)
    return stable_baselines3


def ppo_agent(seed: int | None = None, **hyperparameters: Any) -> Any:
    """PPO after rl-baselines3-zoo's CartPole: 8 environments, short rollouts, gamma 0.98."""
    lib = sb3()
    envs = lib.common.env_util.make_vec_env("CartPole-v1", n_envs=8)
    settings = {"n_steps": 64, "batch_size": 256, "n_epochs": 10, "gamma": 0.98, "gae_lambda": 0.8}
    return lib.PPO("MlpPolicy", envs, device="cpu", seed=seed, **{**settings, **hyperparameters})


def sac_agent(learning_starts: int) -> Any:
    """SAC with two hidden layers of 64 (SB3's default is 256): Pendulum needs no more."""
    policy_kwargs = {"net_arch": [64, 64]}
    return sb3().SAC(
        "MlpPolicy",
        "Pendulum-v1",
        learning_starts=learning_starts,
        buffer_size=50_000,
        policy_kwargs=policy_kwargs,
        device="cpu",
    )


# ---- PBT against no PBT ----------------------------------------------------------------------------
def task_trainer(task: Task, wrapper: SB3ModelWrapper, seed: int, **policies: Any) -> Trainer:
    """The task's run over ``wrapper``'s agents (``policies``: PBT's by default)."""
    return Trainer(
        model=wrapper,
        population_size=task.population,
        hyperparameters=task.space,
        stopping_criteria=StopAfter(task.epochs),
        ready_strategy=ReadyAfter(task.ready),
        seed=seed,
        verbose=0,
        **policies,
    )


def train(task: Task, seed: int, pbt: bool) -> tuple[Trainer, Any, float]:
    """One run; returns the trainer, the winning agent and the run's wall time."""
    started = time.perf_counter()
    wrapper = SB3ModelWrapper(task.make_agent(), steps_per_epoch=task.steps, eval_episodes=task.eval_episodes)
    trainer = task_trainer(task, wrapper, seed, **pbt_policies(pbt))
    winner, _ = trainer.train()
    return trainer, winner, time.perf_counter() - started


def final_return(task: Task, agent: Any) -> float:
    """The agent's mean return over fresh episodes (deterministic actions), the same for every agent."""
    lib = sb3()
    envs = lib.common.env_util.make_vec_env(task.env, n_envs=min(task.final_episodes, 10))
    envs.seed(FINAL_SEED)
    mean, _ = lib.common.evaluation.evaluate_policy(
        agent, envs, n_eval_episodes=task.final_episodes, deterministic=True
    )
    return float(mean)


def trained_steps(trainer: Trainer, task: Task) -> int:
    """Environment steps the run trained: one ``steps`` chunk per recorded member-epoch.

    Checked against the members' own step counters: every member ends at ``epochs * steps``."""
    counters = {row["metrics"]["train_timesteps"] for row in trainer.history if row["epoch"] == task.epochs}
    assert counters == {float(task.epochs * task.steps)}, counters
    return len(trainer.history) * task.steps


def compare(task: Task, seeds: int, verdicts: Verdicts) -> None:
    section(f"{task.name}: PBT against no PBT at equal environment steps")
    print(
        f"population {task.population}, {task.epochs} epochs of {task.steps} environment steps, "
        f"ReadyAfter({task.ready}) (Truncation + Perturb), score: {task.eval_episodes} evaluation episodes; "
        f"{task.steps_per_run:,} steps per run, {seeds} seed(s) x 2 runs = {2 * seeds * task.steps_per_run:,}"
    )
    print(
        f"{'seed':>4}  {'PBT':>8}  {'no PBT':>8}  {'exploits':>8}  {'PBT steps':>9}  {'no-PBT steps':>12}  "
        f"{'PBT steps/s':>11}  {'no-PBT steps/s':>14}"
    )
    results: dict[bool, list[float]] = {True: [], False: []}
    rates: dict[bool, list[float]] = {True: [], False: []}
    for seed in range(seeds):
        row: dict[bool, tuple[float, int, float, int]] = {}
        for pbt in (True, False):
            trainer, winner, seconds = train(task, seed, pbt)
            steps = trained_steps(trainer, task)
            row[pbt] = (final_return(task, winner), steps, steps / seconds, len(trainer.exploits))
            results[pbt].append(row[pbt][0])
            rates[pbt].append(row[pbt][2])
        print(
            f"{seed:>4}  {row[True][0]:>8.1f}  {row[False][0]:>8.1f}  {row[True][3]:>8}  {row[True][1]:>9,}  "
            f"{row[False][1]:>12,}  {row[True][2]:>11.0f}  {row[False][2]:>14.0f}",
            flush=True,
        )
    pbt, baseline = median(results[True]), median(results[False])
    wins = sum(p > b for p, b in zip(results[True], results[False], strict=True))
    ties = sum(p == b for p, b in zip(results[True], results[False], strict=True))
    print(f"{'median':>6}{pbt:>8.1f}  {baseline:>8.1f}")
    print(
        f"(each run's winner over {task.final_episodes} fresh episodes; PBT higher on {wins}, equal on "
        f"{ties} of {seeds} seeds; mean {statistics.mean(results[True]):.1f} against "
        f"{statistics.mean(results[False]):.1f}; {median(rates[True] + rates[False]):.0f} environment "
        f"steps/s, evaluation included)"
    )
    verdicts.check(
        f"{task.name}: PBT median >= no PBT",
        pbt >= baseline,
        f"median final return {pbt:.1f} against {baseline:.1f} over {seeds} seeds",
    )


# ---- overhead ------------------------------------------------------------------------------------------
class Recording(SB3ModelWrapper):
    """Keeps the seeds it spawns members with, so the plain loop can build the same agents."""

    seeds: list[int]

    def spawn(self, seed: int) -> SB3ModelWrapper:
        self.seeds.append(seed)
        return super().spawn(seed)


def overhead(task: Task, repeats: int, verdicts: Verdicts) -> None:
    section(f"Overhead: a no-PBT Trainer against a plain loop over the same {task.name} agents")
    print(
        f"population {task.population}, {task.epochs} epochs of {task.steps} steps, {task.eval_episodes} "
        f"evaluation episodes per member-epoch, {repeats} repeats per side ({load_note()})"
    )
    lib = sb3()
    evaluate_policy = lib.common.evaluation.evaluate_policy

    def trainer_side(record: list[int] | None = None) -> tuple[Trainer, list[float]]:
        wrapper = Recording(task.make_agent(), steps_per_epoch=task.steps, eval_episodes=task.eval_episodes)
        wrapper.seeds = record if record is not None else []
        trainer = task_trainer(task, wrapper, 0, **pbt_policies(False))
        trainer.train()
        final = sorted(
            (row["member"], row["score"]) for row in trainer.history if row["epoch"] == task.epochs
        )
        return trainer, [score for _, score in final]

    # The members the Trainer builds: their seeds (the last spawned, one per member, in order)
    # and hyperparameters (constant without explore).
    seeds: list[int] = []
    probe, probe_scores = trainer_side(seeds)
    hyperparameters = {row["member"]: row["hyperparameters"] for row in probe.history}
    members = list(
        zip(seeds[-task.population :], [hyperparameters[i] for i in range(task.population)], strict=True)
    )

    def plain() -> list[float]:
        # What a user writes without PyBT, seeded as the wrapper seeds each epoch and evaluation.
        agents = [(seed, task.make_agent(seed=seed, **values)) for seed, values in members]
        for _, agent in agents:  # as the wrapper does: no logger folder made at every learn()
            agent.set_logger(lib.common.logger.Logger(folder=None, output_formats=[]))
        count = min(task.eval_episodes, 8)
        eval_envs = [lib.common.env_util.make_vec_env(task.env, n_envs=count) for _ in agents]
        scores = [0.0] * len(agents)
        for epoch in range(task.epochs):
            for i, (seed, agent) in enumerate(agents):
                lib.common.utils.set_random_seed(seed_of(seed, epoch))
                agent.action_space.seed(seed_of(seed, epoch, 1))
                agent.learn(task.steps, reset_num_timesteps=False)
                eval_envs[i].seed(seed_of(0, epoch + 1))
                lib.common.utils.set_random_seed(seed_of(0, epoch + 1))
                returns, _ = evaluate_policy(
                    agent, eval_envs[i], task.eval_episodes, deterministic=True, return_episode_rewards=True
                )
                scores[i] = float(statistics.mean(returns))
        return scores

    plain_scores = plain()
    same = plain_scores == probe_scores
    print(f"same final scores on both sides: {'yes' if same else 'NO'} ({probe_scores} / {plain_scores})")
    timings = interleaved_timings({"trainer": lambda: trainer_side(), "plain": plain}, repeats)
    wall = paired_ratios(timings.wall["trainer"], timings.wall["plain"])
    cpu = paired_ratios(timings.cpu["trainer"], timings.cpu["plain"])
    for side in ("plain", "trainer"):
        wall_s, cpu_s = timings.wall[side], timings.cpu[side]
        print(
            f"  {side:<8} wall: median {median(wall_s):5.2f}s, fastest {min(wall_s):5.2f}s;  CPU: median "
            f"{median(cpu_s):5.2f}s  ({task.steps_per_run / median(wall_s):.0f} environment steps/s)"
        )
    fastest = min(timings.wall["trainer"]) / min(timings.wall["plain"])
    print(f"  Trainer/plain per repeat, wall: {' '.join(f'{r:.3f}' for r in wall)}")
    print(
        f"  Trainer/plain: wall {median(wall):.3f}, CPU {median(cpu):.3f} (medians of the repeats' ratios); "
        f"fastest runs {fastest:.3f}"
    )
    # Identical work on both sides (checked above), so a ratio far from 1 is noise from other
    # processes, which only ever adds time: the fastest run of each side is then the fairest.
    ratio, clock = median(wall), "the median wall-clock ratio"
    if ratio > RATIO_TARGET and busy():
        ratio, clock = median(cpu), "the median CPU-time ratio (the machine is busy)"
    if ratio > RATIO_TARGET:
        ratio, clock = fastest, "the fastest runs (the repeats' ratios are noisy)"
    verdicts.check("overhead: Trainer/plain <= 1.05", ratio <= RATIO_TARGET, f"{ratio:.3f} by {clock}")
    verdicts.check(
        "overhead: both sides do the same work", same, "identical final scores" if same else "differ"
    )


# ---- main ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute (no verdicts)")
    parser.add_argument("--ppo-seeds", type=int, default=5)
    parser.add_argument("--ppo-population", type=int, default=8)
    parser.add_argument("--ppo-epochs", type=int, default=8)
    parser.add_argument("--ppo-steps", type=int, default=1024, help="steps per epoch (a multiple of 512)")
    parser.add_argument("--sac-seeds", type=int, default=2)
    parser.add_argument("--sac-population", type=int, default=4)
    parser.add_argument("--sac-epochs", type=int, default=4)
    parser.add_argument("--sac-steps", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=5, help="overhead repeats per side")
    args = parser.parse_args(argv)
    if args.quick:
        args.ppo_seeds, args.ppo_epochs, args.ppo_population = 1, 2, 4
        args.sac_seeds, args.sac_epochs, args.sac_steps, args.sac_population, args.repeats = 1, 2, 100, 2, 1
    ppo = Task(
        "PPO on CartPole-v1", "CartPole-v1", ppo_agent, PPO_SPACE,
        args.ppo_population, args.ppo_epochs, args.ppo_steps, ready=2, eval_episodes=10, final_episodes=50,
    )  # fmt: skip
    sac = Task(
        "SAC on Pendulum-v1", "Pendulum-v1", lambda: sac_agent(learning_starts=min(200, args.sac_steps // 2)),
        SAC_SPACE, args.sac_population, args.sac_epochs, args.sac_steps, ready=1, eval_episodes=5,
        final_episodes=20,
    )  # fmt: skip
    cost = Task(
        "PPO on CartPole-v1", "CartPole-v1", ppo_agent, PPO_SPACE,
        4, 2, 2 * args.ppo_steps, ready=2, eval_episodes=10, final_episodes=0,
    )  # fmt: skip
    total = 2 * (args.ppo_seeds * ppo.steps_per_run + args.sac_seeds * sac.steps_per_run)
    total += (2 * args.repeats + 2) * cost.steps_per_run
    print(
        f"Budget: {2 * args.ppo_seeds * ppo.steps_per_run:,} PPO steps (CartPole), "
        f"{2 * args.sac_seeds * sac.steps_per_run:,} SAC steps (Pendulum), "
        f"{(2 * args.repeats + 2) * cost.steps_per_run:,} PPO steps for the overhead: {total:,} environment "
        f"steps, about 15-30 minutes on a 2-core machine, by its load ({load_note()})"
    )
    started = time.perf_counter()
    verdicts = Verdicts()
    compare(ppo, args.ppo_seeds, verdicts)
    compare(sac, args.sac_seeds, verdicts)
    overhead(cost, args.repeats, verdicts)
    print(f"\nTotal wall time {(time.perf_counter() - started) / 60:.1f} minutes ({load_note()})")
    code = verdicts.report()
    return 0 if args.quick else code


if __name__ == "__main__":
    sys.exit(main())
