"""VectorizedExecutor against the in-process executor: member-epochs per second, side by side.

Scikit-learn's digits (bundled), one torch thread. Each comparison places the same members
(same seeds, same hyperparameters) in both executors and times whole rounds: every member
trains one epoch and is evaluated, as in a PBT step. The sides alternate repeat after repeat
(``_common.interleaved_timings``) and each figure is the median of the per-repeat ratios.

1. The digits MLP 64-128-64-10, Adam, batch 32, population 16 and 64, eager and with
   ``compile=True`` (its compilation timed apart, in two warm-up rounds). Targets: >= 5x at 16,
   >= 8x at 64, by the faster of the two.
2. A seeded PBT run (population 16, 8 epochs, ready every 2) on each executor. Target: the same
   best validation accuracy within 0.01.
3. Mixed batch sizes (16, 32, 64, 128: four groups of four members): the vectorized executor
   trains one stack per batch size (*group*). Padding every member to the widest batch and
   masking (*pad*) would run as many steps as the smallest batch needs, each as wide as the
   widest: its cost is at least a uniform round of that many steps at that width, which is
   timed as its lower bound.
4. A small CNN (two 3x3 convolutions on the 8x8 images), on the generic vmap path.

Run: ``python benchmarks/vectorized.py`` (a few minutes on a quiet 2-core machine); ``--help``
lists the sizes. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
import numpy as np

HIDDEN = (128, 64)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per side (default 5)")
    parser.add_argument("--pbt-epochs", type=int, default=8, help="epochs of the PBT runs (default 8)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compile=True measurement")
    parser.add_argument("--strict-wall", action="store_true", help="judge by the wall clock even when busy")
    return parser.parse_args()


def import_torch() -> Any:
    import torch

    torch.set_num_threads(1)
    return torch


def mlp(torch: Any) -> Any:
    nn = torch.nn
    return nn.Sequential(
        nn.Linear(64, HIDDEN[0]), nn.ReLU(), nn.Linear(*HIDDEN), nn.ReLU(), nn.Linear(HIDDEN[1], 10)
    )


def cnn(torch: Any) -> Any:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 4 * 4, 10)
    )  # fmt: skip


def wrapper(torch: Any, module: Any) -> Any:
    from pybt.model import TorchModelWrapper

    return TorchModelWrapper(
        module, torch.optim.Adam, torch.nn.CrossEntropyLoss(), optimizer_kwargs={"lr": 1e-3}
    )


def prepared(executor: Any, template: Any, fit: dict, evaluation: dict, members: int) -> Any:
    executor.start(template, fit, evaluation)
    for member in range(members):
        executor.place(member, seed=1000 + member)
    return executor


def side(executor: Any, module: Any, fit: dict, evaluation: dict, hyperparameters: Sequence[dict]) -> Any:
    """A round of ``executor`` with one member per hyperparameter set, placed from ``module``."""
    torch = import_torch()
    prepared(executor, wrapper(torch, module), fit, evaluation, len(hyperparameters))
    return round_of(executor, hyperparameters)


def round_of(executor: Any, hyperparameters: Sequence[dict]) -> Callable[[], None]:
    """One round: every member trains one epoch and is evaluated."""

    def run() -> None:
        for member, hp in enumerate(hyperparameters):
            executor.submit(member, hp, 1)
        for result in executor.completed():
            if result.error:
                raise RuntimeError(f"member {result.member} failed: {result.error}")

    return run


def rates(members: int, batch_sizes: Sequence[int]) -> list[dict]:
    lrs = np.geomspace(3e-4, 3e-3, members)
    return [{"lr": float(lr), "batch_size": batch_sizes[m % len(batch_sizes)]} for m, lr in enumerate(lrs)]


def compare(
    name: str, sides: dict[str, Callable[[], None]], member_epochs: int, repeats: int, strict_wall: bool
) -> dict[str, tuple[float, float, str]]:
    """Time the sides interleaved; print member-epochs/s and each side's median ratio to "serial"."""
    timings = _common.interleaved_timings(sides, repeats)
    clock = "cpu" if _common.busy() and not strict_wall else "wall"
    chosen = timings.cpu if clock == "cpu" else timings.wall
    print(f"{name}: {member_epochs} member-epochs per round, {repeats} rounds per side")
    results = {}
    for side in sides:
        wall, cpu = _common.median(timings.wall[side]), _common.median(timings.cpu[side])
        line = (
            f"  {side:<22} {member_epochs / wall:8.1f} member-epochs/s (wall {wall:6.2f} s, cpu {cpu:6.2f} s)"
        )
        if side != "serial":
            ratios = _common.paired_ratios(chosen["serial"], chosen[side])
            ratio = _common.median(ratios)
            spread = f"{min(ratios):.1f}-{max(ratios):.1f}"
            results[side] = (ratio, wall, clock)
            line += f"  {ratio:5.1f}x serial by {clock} time (rounds: {spread})"
        print(line, flush=True)
    return results


def best_accuracy(torch: Any, executor: Any, fit: dict, evaluation: dict, epochs: int) -> tuple[float, float]:
    from pybt import LogUniform, Trainer
    from pybt.policy.done import StopAfter
    from pybt.policy.ready import ReadyAfter

    started = time.perf_counter()
    trainer = Trainer(
        wrapper(torch, mlp(torch)),
        population_size=16,
        hyperparameters={"lr": LogUniform(1e-4, 1e-1)},
        stopping_criteria=StopAfter(epochs),
        ready_strategy=ReadyAfter(2),
        step_args={"fit_args": {**fit, "batch_size": 32}},
        eval_args=evaluation,
        executor=executor,
        seed=0,
        verbose=0,
    )
    _, score = trainer.train()
    executor.close()
    return float(score), time.perf_counter() - started


def main() -> int:
    args = parse_args()
    torch = import_torch()
    from pybt.executor.serial import SerialExecutor
    from pybt.executor.vectorized import VectorizedExecutor

    x, y, x_val, y_val = _common.digits_split(seed=0)
    fit, evaluation = {"x": x, "y": y}, {"x": x_val, "y": y_val}
    verdicts = _common.Verdicts()
    print(f"digits: {len(y)} training, {len(y_val)} validation samples; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread; {_common.load_note()}")  # fmt: skip

    # ---- 1. the MLP at population 16 and 64 ----------------------------------------------------------
    best_ratio: dict[int, float] = {}
    for members in (16, 64):
        _common.section(f"MLP 64-128-64-10, Adam, batch 32, population {members}")
        hps = rates(members, [32])
        sides = {
            "serial": side(SerialExecutor(), mlp(torch), fit, evaluation, hps),
            "vectorized": side(VectorizedExecutor(), mlp(torch), fit, evaluation, hps),
        }
        sides["vectorized"]()  # warm-up: the first round stacks the members
        if not args.no_compile:
            compiled = prepared(
                VectorizedExecutor(compile=True), wrapper(torch, mlp(torch)), fit, evaluation, members
            )
            sides["vectorized compile"] = round_of(compiled, hps)
            for warm_up in (1, 2):
                started = time.perf_counter()
                sides["vectorized compile"]()
                seconds = time.perf_counter() - started
                print(f"compile=True warm-up round {warm_up}: {seconds:.1f} s (compilation included)")
        results = compare(f"population {members}", sides, members, args.repeats, args.strict_wall)
        best_ratio[members] = max(ratio for ratio, _, _ in results.values())
        fastest = max(results, key=lambda name: results[name][0])
        target = 5.0 if members == 16 else 8.0
        verdicts.check(
            f"speed-up at population {members}",
            best_ratio[members] >= target,
            f"{best_ratio[members]:.1f}x ({fastest}, {results[fastest][2]} time) >= {target:.0f}x",
        )

    # ---- 2. the same best accuracy ---------------------------------------------------------------------
    _common.section(f"PBT, population 16, {args.pbt_epochs} epochs, seed 0: best validation accuracy")
    serial_score, serial_seconds = best_accuracy(torch, SerialExecutor(), fit, evaluation, args.pbt_epochs)
    vector_score, vector_seconds = best_accuracy(
        torch, VectorizedExecutor(), fit, evaluation, args.pbt_epochs
    )
    print(f"  serial      {serial_score:.4f}  ({serial_seconds:.1f} s)")
    print(f"  vectorized  {vector_score:.4f}  ({vector_seconds:.1f} s)")
    difference = abs(serial_score - vector_score)
    verdicts.check(
        "same best accuracy", difference <= 0.01, f"|{vector_score:.4f} - {serial_score:.4f}| <= 0.01"
    )

    # ---- 3. mixed batch sizes: group against pad ---------------------------------------------------------
    sizes = [16, 32, 64, 128]
    _common.section(f"mixed batch sizes {sizes}, population 16 (four groups)")
    hps = rates(16, sizes)
    steps = -(-len(y) // min(sizes))  # what padding would run: the smallest batch's step count...
    tiled = {
        key: np.concatenate([value] * (-(-steps * max(sizes) // len(y))))[: steps * max(sizes)]
        for key, value in fit.items()
    }
    sides = {
        "serial": side(SerialExecutor(), mlp(torch), fit, evaluation, hps),
        "vectorized (group)": side(VectorizedExecutor(), mlp(torch), fit, evaluation, hps),
        # ...each as wide as the widest batch: a uniform round over steps x widest samples.
        "pad, lower bound": side(
            VectorizedExecutor(), mlp(torch), tiled, evaluation, rates(16, [max(sizes)])
        ),
    }
    for warm_up in ("vectorized (group)", "pad, lower bound"):
        sides[warm_up]()
    results = compare("mixed batch sizes", sides, 16, args.repeats, args.strict_wall)
    group, pad = results["vectorized (group)"][1], results["pad, lower bound"][1]
    rows = steps * max(sizes)
    print(f"  pad needs {steps} steps x {max(sizes)} samples per member ({rows} rows, vs {len(y)} grouped);")
    print(f"  its lower bound takes {pad / group:.1f}x the grouped round's wall time")

    # ---- 4. a small CNN ----------------------------------------------------------------------------------
    _common.section("CNN (conv 8, conv 16, linear), Adam, batch 32, population 16: the generic vmap path")
    images = {"x": x.reshape(-1, 1, 8, 8), "y": y}
    images_val = {"x": x_val.reshape(-1, 1, 8, 8), "y": y_val}
    hps = rates(16, [32])
    sides = {
        "serial": side(SerialExecutor(), cnn(torch), images, images_val, hps),
        "vectorized": side(VectorizedExecutor(), cnn(torch), images, images_val, hps),
    }
    sides["vectorized"]()
    compare("CNN", sides, 16, max(3, args.repeats - 2), args.strict_wall)

    return verdicts.report()


if __name__ == "__main__":
    sys.exit(main())
