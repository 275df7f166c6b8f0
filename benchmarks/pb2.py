"""PB2 (Population-Based Bandits) against PBT and random search at small populations, and
against Ray Tune's PB2.

Every side of a comparison trains the same population for the same epochs (equal compute):

- PB2: ``Truncation()`` + ``PB2()``;
- PBT: ``Truncation()`` + ``Perturb()`` (PyBT's defaults);
- random: ``exploit_strategy=None, explore_strategy=None`` (each member keeps its sampled
  hyperparameters: random search with the same members and epochs).

Workloads:

a. CartPole-v1, the REINFORCE agent of ``examples/cartpole.py`` (learning rate and entropy
   cost), population 4, 30 updates of 8 episodes, ``ReadyAfter(4)``; score: the winner's mean
   return over 100 fresh episodes (500 at most).
b. Digits: a NumPy MLP 64-32-10 (ReLU, batch 64) trained by SGD with momentum on
   scikit-learn's digits; learning rate LogUniform(1e-3, 1) and momentum Uniform(0, 0.99)
   explored; population 4, 16 epochs, ``ReadyAfter(2)``; score: the best member's
   validation accuracy (what ``train()`` returns).
c. The PBT paper's toy problem (``benchmarks/toy.py``) at population 2.
d. Ray Tune's ``PB2`` scheduler on workload (b): the same MLP code in a function trainable
   that checkpoints every epoch, ``perturbation_interval=2``, ``quantile_fraction=0.25``,
   ``hyperparam_bounds`` the same box (Ray's PB2 has no log scale), the same starting
   hyperparameters per seed, ``ray.init(num_cpus=2)`` (not timed); PyBT runs in process.
e. The cost of one PB2 decision with 1,000 steps in the run's history.

Targets: PB2's median and worst-quintile (mean of the worst fifth of seeds) scores >= PBT's on
(a) and (b) over >= 10 seeds; median Q >= 1.19 on (c) over >= 20 seeds; PyBT-PB2's median
score >= Ray Tune PB2's and its median wall time <= 0.5x on (d); a decision <= 50 ms on (e).

Needs gymnasium and SciPy; (d) needs Ray Tune (``pip install -e ".[bench]"``; skipped with a
note when it is missing, or with ``--no-tune``). Run: ``python benchmarks/pb2.py`` (about ten
minutes on a quiet 2-core machine; ``--help``). Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (before NumPy: thread limits, import path)
import numpy as np
from _common import Verdicts, busy, digits_split, load_note, median, pbt_policies, section, tune_missing

sys.path.append(str(Path(__file__).resolve().parent.parent / "examples"))  # after benchmarks/: its toy.py
import cartpole
import toy

from pybt import LogUniform, Trainer, Uniform
from pybt.history import HistoryView
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.exploit import Truncation
from pybt.policy.explore import ExploreContext, Perturb
from pybt.policy.pb2 import PB2
from pybt.policy.ready import ReadyAfter
from pybt.policy.snapshot import MemberSnapshot

SIDES: dict[str, Callable[[], dict[str, Any]]] = {
    "PB2": lambda: {"exploit_strategy": Truncation(), "explore_strategy": PB2()},
    "PBT": lambda: {"exploit_strategy": Truncation(), "explore_strategy": Perturb()},
    "random": lambda: pbt_policies(False),
}
DIGITS_SPACE = {"lr": LogUniform(1e-3, 1.0), "momentum": Uniform(0.0, 0.99)}
HIDDEN, BATCH = 32, 64


# ---- (b) the digits MLP ---------------------------------------------------------------------------
def mlp_init(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    weights = {
        "w1": rng.normal(0.0, 1 / 8, (64, HIDDEN)),
        "b1": np.zeros(HIDDEN),
        "w2": rng.normal(0.0, 1 / math.sqrt(HIDDEN), (HIDDEN, 10)),
        "b2": np.zeros(10),
    }
    velocity = {f"v_{name}": np.zeros_like(value) for name, value in weights.items()}
    return {**weights, **velocity, "seed": int(seed), "epoch": 0}


def mlp_step(state: Mapping[str, Any], hp: Mapping[str, float], x: np.ndarray, y: np.ndarray) -> Any:
    """One epoch of SGD with momentum; returns the new state and the mean training loss."""
    state = dict(state)
    rng = np.random.default_rng([state["seed"], state["epoch"]])
    order, eye, losses = rng.permutation(len(y)), np.eye(10), []
    for start in range(0, len(y), BATCH):
        rows = order[start : start + BATCH]
        xb, yb = x[rows], eye[y[rows]]
        hidden = np.maximum(xb @ state["w1"] + state["b1"], 0.0)
        logits = hidden @ state["w2"] + state["b2"]
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        losses.append(-np.log(p[yb > 0] + 1e-12).mean())
        d_logits = (p - yb) / len(rows)
        d_hidden = (d_logits @ state["w2"].T) * (hidden > 0)
        grads = {
            "w2": hidden.T @ d_logits,
            "b2": d_logits.sum(0),
            "w1": xb.T @ d_hidden,
            "b1": d_hidden.sum(0),
        }
        for name, grad in grads.items():
            state[f"v_{name}"] = hp["momentum"] * state[f"v_{name}"] - hp["lr"] * grad
            state[name] = state[name] + state[f"v_{name}"]
    state["epoch"] += 1
    return state, {"loss": float(np.mean(losses))}


def mlp_accuracy(state: Mapping[str, Any], x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    hidden = np.maximum(x @ state["w1"] + state["b1"], 0.0)
    return {"accuracy": float(((hidden @ state["w2"] + state["b2"]).argmax(1) == y).mean())}


# ---- runs ------------------------------------------------------------------------------------------
def cartpole_run(seed: int, side: str) -> dict[str, Any]:
    started = time.perf_counter()
    trainer = Trainer(
        model=FunctionModel(cartpole.init, cartpole.step, cartpole.evaluate),
        population_size=4,
        hyperparameters=cartpole.SPACE,
        stopping_criteria=StopAfter(30),
        ready_strategy=ReadyAfter(4),
        step_args={"epochs_per_step": 1, "fit_args": {"episodes": 8}},
        seed=seed,
        verbose=0,
        **SIDES[side](),
    )
    best, _ = trainer.train()
    seconds = time.perf_counter() - started
    return {"score": cartpole.fresh_return(best), "seconds": seconds, "trainer": trainer}


def digits_trainer(seed: int, side: str, data: tuple[np.ndarray, ...], starting: list[dict[str, float]]):
    x, y, x_val, y_val = data
    return Trainer(
        model=FunctionModel(mlp_init, mlp_step, mlp_accuracy),
        population_size=len(starting),
        hyperparameters=DIGITS_SPACE,
        initial_hyperparameters=starting,
        stopping_criteria=StopAfter(16),
        ready_strategy=ReadyAfter(2),
        step_args={"epochs_per_step": 1, "fit_args": {"x": x, "y": y}},
        eval_args={"x": x_val, "y": y_val},
        seed=seed,
        verbose=0,
        **SIDES[side](),
    )


def digits_starting(seed: int, population: int = 4) -> list[dict[str, float]]:
    rng = np.random.default_rng(10_000 + seed)
    return [{name: domain.sample(rng) for name, domain in DIGITS_SPACE.items()} for _ in range(population)]


def digits_run(seed: int, side: str, data: tuple[np.ndarray, ...]) -> dict[str, Any]:
    started = time.perf_counter()
    trainer = digits_trainer(seed, side, data, digits_starting(seed))
    _, score = trainer.train()
    return {"score": float(score), "seconds": time.perf_counter() - started, "trainer": trainer}


def toy_run(seed: int, side: str) -> dict[str, Any]:
    started = time.perf_counter()
    trainer = toy.make_trainer(seed, **SIDES[side]())
    _, score = trainer.train()
    return {"score": float(score), "seconds": time.perf_counter() - started, "trainer": trainer}


# ---- comparisons -----------------------------------------------------------------------------------
def worst_quintile(scores: list[float]) -> float:
    """The mean of the worst fifth of the seeds (at least one)."""
    ordered = sorted(scores)
    return float(np.mean(ordered[: max(1, len(ordered) // 5)]))


def compare(title: str, run: Callable[[int, str], dict[str, Any]], seeds: int, sides: list[str]) -> dict:
    """Each seed's score per side, printed as they come, then the median, worst fifth and min."""
    section(title)
    exploited = [side for side in sides if side != "random"]
    print(
        f"{'seed':>9}"
        + "".join(f"{s:>9}" for s in sides)
        + "".join(f"{s + ' x':>8}" for s in exploited)
        + "   seconds ("
        + "/".join(sides)
        + ")"
    )
    scores: dict[str, list[float]] = {side: [] for side in sides}
    steps: dict[str, set[int]] = {side: set() for side in sides}
    for seed in range(seeds):
        rows = {side: run(seed, side) for side in sides}
        for side in sides:
            scores[side].append(rows[side]["score"])
            steps[side].add(len(rows[side]["trainer"].history))
        exploits = "".join(f"{len(rows[s]['trainer'].exploits):>8}" for s in exploited)
        seconds = "/".join(f"{rows[s]['seconds']:.1f}" for s in sides)
        line = "".join(f"{rows[s]['score']:>9.4g}" for s in sides)
        print(f"{seed:>9}{line}{exploits}   {seconds}", flush=True)
    for label, figure in (("median", median), ("worst 1/5", worst_quintile), ("min", min)):
        print(f"{label:>9}" + "".join(f"{figure(scores[s]):>9.4g}" for s in sides))
    counts = ", ".join(f"{side} {'/'.join(str(n) for n in sorted(steps[side]))}" for side in sides)
    print(
        f"(x: exploits per run; worst 1/5: mean of the worst fifth of seeds; member-steps per run: {counts})"
    )
    return scores


def check_pair(verdicts: Verdicts, name: str, scores: dict[str, list[float]], seeds: int) -> None:
    pb2, pbt = scores["PB2"], scores["PBT"]
    enough = seeds >= 10
    verdicts.check(
        f"{name}: PB2 median >= PBT's (>= 10 seeds)",
        enough and median(pb2) >= median(pbt),
        f"{median(pb2):.4g} vs {median(pbt):.4g} (random {median(scores['random']):.4g})",
    )
    verdicts.check(
        f"{name}: PB2 worst quintile >= PBT's",
        enough and worst_quintile(pb2) >= worst_quintile(pbt),
        f"{worst_quintile(pb2):.4g} vs {worst_quintile(pbt):.4g}",
    )


# ---- (d) Ray Tune's PB2 ------------------------------------------------------------------------------
def tune_trainable(config: dict[str, Any], data: Any = None, epochs: int = 16) -> None:
    from ray import tune

    x, y, x_val, y_val = data
    state, start = mlp_init(config["seed"]), 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory, open(os.path.join(directory, "state.pkl"), "rb") as f:
            state = pickle.load(f)
        start = state["epoch"]
    for _ in range(start, epochs):
        state, _ = mlp_step(state, config, x, y)
        accuracy = mlp_accuracy(state, x_val, y_val)["accuracy"]
        with tempfile.TemporaryDirectory() as directory:
            with open(os.path.join(directory, "state.pkl"), "wb") as f:
                pickle.dump(state, f)
            tune.report({"accuracy": accuracy}, checkpoint=tune.Checkpoint.from_directory(directory))


def tune_run(seed: int, data: Any, storage: str) -> dict[str, Any]:
    from ray import tune
    from ray.tune.schedulers.pb2 import PB2 as TunePB2

    starting = digits_starting(seed)
    scheduler = TunePB2(
        time_attr="training_iteration",
        perturbation_interval=2,
        hyperparam_bounds={"lr": [1e-3, 1.0], "momentum": [0.0, 0.99]},
        quantile_fraction=0.25,
    )
    space = {
        "member": tune.grid_search(list(range(len(starting)))),
        "seed": tune.sample_from(lambda config: 1000 * seed + config["member"]),
        "lr": tune.sample_from(lambda config: starting[config["member"]]["lr"]),
        "momentum": tune.sample_from(lambda config: starting[config["member"]]["momentum"]),
    }
    tuner = tune.Tuner(
        tune.with_parameters(tune_trainable, data=data),
        param_space=space,
        tune_config=tune.TuneConfig(scheduler=scheduler, metric="accuracy", mode="max", reuse_actors=True),
        run_config=tune.RunConfig(storage_path=storage, verbose=0, stop={"training_iteration": 16}),
    )
    started = time.perf_counter()
    results = tuner.fit()
    seconds = time.perf_counter() - started
    best = results.get_best_result(metric="accuracy", mode="max", scope="last")
    return {"score": float(best.metrics["accuracy"]), "seconds": seconds, "errors": len(results.errors)}


def compare_with_tune(verdicts: Verdicts, seeds: int, data: Any) -> None:
    import logging

    import ray

    section(f"(d) digits, population 4: PyBT PB2 (in process) against Ray Tune PB2, {seeds} seeds")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's older console output obeys verbose=0
    warnings.filterwarnings("ignore", module="sklearn")  # Tune's GP fits warn at their bounds
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    logging.getLogger("ray").setLevel(logging.ERROR)  # not a line per checkpoint or exploit
    print(f"ray.init(num_cpus=2): {time.perf_counter() - started:.1f} s (not counted); {load_note()}")
    print(f"{'seed':>4}  {'PyBT acc':>9}{'Tune acc':>9}{'PyBT s':>8}{'Tune s':>8}{'errors':>7}")
    pybt_rows, tune_rows = [], []
    try:
        with tempfile.TemporaryDirectory() as storage:
            for seed in range(seeds):
                order = ["pybt", "tune"] if seed % 2 == 0 else ["tune", "pybt"]
                for side in order:  # alternating who goes first: load drifts fall on both alike
                    if side == "pybt":
                        pybt_rows.append(digits_run(seed, "PB2", data))
                    else:
                        tune_rows.append(tune_run(seed, data, storage))
                p, t = pybt_rows[-1], tune_rows[-1]
                print(
                    f"{seed:>4}  {p['score']:>9.4f}{t['score']:>9.4f}{p['seconds']:>8.2f}{t['seconds']:>8.1f}"
                    f"{t['errors']:>7}",
                    flush=True,
                )
    finally:
        ray.shutdown()
    pybt_score, tune_score = median([r["score"] for r in pybt_rows]), median([r["score"] for r in tune_rows])
    ratio = median([r["seconds"] for r in pybt_rows]) / median([r["seconds"] for r in tune_rows])
    print(
        f"median accuracy PyBT {pybt_score:.4f}, Ray Tune {tune_score:.4f}; wall time PyBT/Tune {ratio:.3f}"
    )
    enough = seeds >= 3
    verdicts.check(
        "(d) PyBT PB2 median accuracy >= Ray Tune PB2's",
        enough and pybt_score >= tune_score,
        f"{pybt_score:.4f} vs {tune_score:.4f} over {seeds} seeds",
    )
    verdicts.check(
        "(d) PyBT PB2 median wall time <= 0.5x Ray Tune PB2's",
        enough and ratio <= 0.5,
        f"{ratio:.3f}x ({load_note()})",
    )


# ---- (e) the cost of a decision ------------------------------------------------------------------------
def decision_cost(verdicts: Verdicts, repeats: int = 30) -> None:
    section("(e) one PB2 decision with 1,000 steps in the history (population 10, 100 epochs)")
    trainer = Trainer(
        model=FunctionModel(toy.init, toy.step, toy.true_q),
        population_size=10,
        hyperparameters={"h0": Uniform(0, 1), "h1": Uniform(0, 1)},
        stopping_criteria=StopAfter(100),
        exploit_strategy=None,
        explore_strategy=None,
        seed=0,
        verbose=0,
    )
    trainer.train()
    history = HistoryView(trainer.run_history)
    steps = list(history.steps)
    last = {step.member: step for step in steps}
    member = MemberSnapshot(0, 100, last[0].hyperparameters, last[0].score)
    donor = MemberSnapshot(1, 100, last[1].hyperparameters, last[1].score)
    rng, pb2, times, cpu_times = np.random.default_rng(0), PB2(), [], []
    for repeat in range(repeats + 1):
        pending = tuple(last[i].hyperparameters for i in range(repeat % 3))  # 0 to 2 pending points
        context = ExploreContext(donor.hyperparameters, trainer.space, rng, member, donor, history, pending)
        started, cpu = time.perf_counter(), time.process_time()
        pb2.explore_in(context)
        if repeat:  # the first call imports SciPy
            times.append(time.perf_counter() - started)
            cpu_times.append(time.process_time() - cpu)
    cost, cpu_cost = 1000 * median(times), 1000 * median(cpu_times)
    print(
        f"{len(steps)} steps, {pb2!r}, {repeats} decisions: median {cost:.1f} ms (max "
        f"{1000 * max(times):.1f}), CPU time {cpu_cost:.1f} ms; {load_note()}"
    )
    # As in overhead.py: on a machine busier than its cores, a missed wall-clock figure is judged
    # by CPU time (other processes' turns are not the decision's cost), and the verdict says so.
    judged, clock = (cpu_cost, "CPU time, busy machine") if cost > 50 and busy() else (cost, "wall")
    verdicts.check(
        "(e) one PB2 decision at 1,000 steps <= 50 ms (median)", judged <= 50, f"{judged:.1f} ms ({clock})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds for (a), (b) (>= 10 for the targets)")
    parser.add_argument("--toy-seeds", type=int, default=30, help="seeds for (c) (>= 20)")
    parser.add_argument("--tune-seeds", type=int, default=10, help="seeds for (d) (>= 3)")
    parser.add_argument("--no-tune", action="store_true", help="skip (d)")
    args = parser.parse_args(argv)
    verdicts = Verdicts()
    started = time.perf_counter()
    print(f"PB2 benchmark; {load_note()}")
    decision_cost(verdicts)

    toy_scores = compare(
        f"(c) toy, population 2, {args.toy_seeds} seeds (best Q)", toy_run, args.toy_seeds, ["PB2", "PBT"]
    )
    verdicts.check(
        "(c) toy: PB2 median Q >= 1.19 (>= 20 seeds)",
        args.toy_seeds >= 20 and median(toy_scores["PB2"]) >= 1.19,
        f"{median(toy_scores['PB2']):.4f}",
    )

    sides = ["PB2", "PBT", "random"]
    scores = compare(
        f"(a) CartPole, population 4, 30 updates, {args.seeds} seeds (return of the winner)",
        cartpole_run,
        args.seeds,
        sides,
    )
    check_pair(verdicts, "(a) CartPole", scores, args.seeds)

    data = digits_split(0)
    scores = compare(
        f"(b) digits MLP, population 4, 16 epochs, {args.seeds} seeds (validation accuracy)",
        lambda seed, side: digits_run(seed, side, data),
        args.seeds,
        sides,
    )
    check_pair(verdicts, "(b) digits", scores, args.seeds)

    missing = None if args.no_tune else tune_missing()
    if args.no_tune or missing:
        print(f"\n(d) skipped: {'--no-tune' if args.no_tune else missing}")
    else:
        compare_with_tune(verdicts, args.tune_seeds, data)
    print(f"\n({time.perf_counter() - started:.0f} s in all)")
    return verdicts.report()


if __name__ == "__main__":
    sys.exit(main())
