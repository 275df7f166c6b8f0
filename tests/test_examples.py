"""Tests for examples/: each runnable example runs here, in its --quick mode, as a user runs it.

The scripts run in subprocesses (``python examples/NAME.py --quick``), with one math thread
and Keras on torch; their printed tables are parsed and checked for sense. examples/imdb.py
downloads its data, so it runs on a small made-up stand-in for the IMDB set instead. The
CartPole agent's pieces (its gradient, learning, determinism, the verdict) are also checked
in process.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TESTED = {
    "toy.py",
    "cartpole.py",
    "digits_keras.py",
    "digits_torch.py",
    "digits_ray.py",
    "imdb.py",
    "sb3_cartpole.py",
    "sb3_pendulum.py",
}


def run_example(script: str | Path, *args: str, cwd: Path | None = None, timeout: float = 240) -> str:
    """Run an example (or a driver script) like a user would; its stdout, after checking it exited 0."""
    env = {
        **os.environ,
        "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "torch"),
        "MPLBACKEND": "Agg",
        # Tiny networks on a shared machine: extra math threads only wait on each other.
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd or EXAMPLES.parent,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-4000:]}"
    return result.stdout


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cartpole() -> ModuleType:
    pytest.importorskip("gymnasium")
    return load_example("cartpole")


def test_every_example_is_run_by_these_tests() -> None:
    assert {path.name for path in EXAMPLES.glob("*.py")} == TESTED


# ---- the toy problem ----------------------------------------------------------------------------
def test_toy_prints_where_grid_search_and_pbt_end() -> None:
    out = run_example(EXAMPLES / "toy.py", "--quick")
    rows = re.findall(
        r"^\s+0\s+\(([-+.\d]+), ([-+.\d]+)\)\s+([.\d]+)\s+\(([-+.\d]+), ([-+.\d]+)\)\s+([.\d]+)", out, re.M
    )
    assert len(rows) == 1, out
    grid_theta, grid_q = np.array(rows[0][:2], float), float(rows[0][2])
    pbt_theta, pbt_q = np.array(rows[0][3:5], float), float(rows[0][5])
    # Grid search: each member shrinks one coordinate only, so the best ends at Q = 1.2 - 0.9².
    assert sorted(np.abs(grid_theta).round(4)) == [0.0, 0.9]
    assert grid_q == pytest.approx(1.2 - 0.81, abs=1e-4)
    # PBT combines both: Q close to its maximum 1.2, and the printed Q is Q of the printed θ.
    assert pbt_q > 1.19
    assert pbt_q == pytest.approx(1.2 - float(pbt_theta @ pbt_theta), abs=2e-4)
    assert f"Grid search ends at Q = {grid_q:.4f}" in out
    stretches = re.findall(r"epochs\s+(\d+)-(\d+)\s+member (\d)", out)
    assert stretches and stretches[0][0] == "0" and stretches[-1][1] == "100", out
    assert all(a[1] == b[0] for a, b in itertools.pairwise(stretches)), "stretches chain up"


# ---- digits, Keras and PyTorch ------------------------------------------------------------------
def check_digits_output(out: str, population: int) -> dict[int, float]:
    """The per-member table, the best line, schedule and lineage agree with each other."""
    members = {int(m): float(s) for m, s in re.findall(r"member (\d+): ([.\d]+)\s", out)}
    assert sorted(members) == list(range(population)), out
    assert all(0.0 <= score <= 1.0 for score in members.values())
    best = re.search(r"Best: member (\d+), validation accuracy ([.\d]+), after (\d+) exploits", out)
    assert best is not None, out
    assert float(best.group(2)) == max(members.values()) == members[int(best.group(1))]
    assert float(best.group(2)) > 0.85, "a population of MLPs learns the digits"
    assert int(best.group(3)) >= 1, "the bottom member exploited at epoch 4"
    lineage = re.search(r"Its lineage, newest first: member (\d+) \(epochs \d+-(\d+)\)", out)
    assert lineage is not None and lineage.group(1) == best.group(1) and lineage.group(2) == "8", out
    test_accuracy = re.search(r"on the test digits: accuracy ([.\d]+)", out)
    assert test_accuracy is not None and float(test_accuracy.group(1)) > 0.8, out
    return members


def test_digits_keras_trains_a_population_and_keeps_a_run_folder(tmp_path: Path) -> None:
    pytest.importorskip("keras")
    pytest.importorskip("sklearn")
    run_dir = tmp_path / "run"
    out = run_example(EXAMPLES / "digits_keras.py", "--quick", "--run-dir", str(run_dir))
    assert "population 4, 8 epochs each" in out
    check_digits_output(out, population=4)
    assert (run_dir / "journal.sqlite").is_file(), "the run folder pybt report reads"
    assert f"pybt report {run_dir}" in out


def test_digits_torch_trains_a_population_and_replays_the_schedule() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    out = run_example(EXAMPLES / "digits_torch.py", "--quick")
    assert "population 4, 8 epochs each" in out
    check_digits_output(out, population=4)
    replayed = re.search(
        r"replayed on a fresh network: validation accuracy ([.\d]+), test accuracy ([.\d]+)", out
    )
    assert replayed is not None, out
    assert float(replayed.group(1)) > 0.85 and float(replayed.group(2)) > 0.8


def test_digits_ray_trains_a_population_on_ray_actors() -> None:
    pytest.importorskip("ray")
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    out = run_example(EXAMPLES / "digits_ray.py", "--quick")
    members = {int(m): float(s) for m, s in re.findall(r"member (\d+): ([.\d]+) at epoch 6", out)}
    assert sorted(members) == [0, 1, 2, 3], out
    best = re.search(r"Best: member (\d+), validation accuracy ([.\d]+); (\d+) exploits", out)
    assert best is not None and float(best.group(2)) == max(members.values()) > 0.85, out
    assert re.search(r"Its lineage, newest first: member \d+ \(epochs \d+-6\)", out), out
    assert "actors replaced after faults: 0" in out


# ---- IMDB, on made-up reviews -------------------------------------------------------------------
def test_imdb_example_runs_on_a_stand_in_for_the_downloaded_data(tmp_path: Path) -> None:
    pytest.importorskip("keras")
    # Reviews whose words say their label: words 1-499 for negative, 500-999 for positive.
    driver = tmp_path / "run_imdb.py"
    driver.write_text(
        textwrap.dedent(
            f"""
            import runpy, sys
            import keras
            import numpy as np

            def load_data(num_words):
                rng = np.random.default_rng(0)
                def reviews(n):
                    labels = rng.integers(0, 2, n)
                    lengths = rng.integers(5, 40, n)
                    low = 1 + 499 * labels
                    words = [list(rng.integers(a, a + 499, k)) for a, k in zip(low, lengths)]
                    assert max(max(w) for w in words) < num_words
                    return np.array(words, dtype=object), labels
                return reviews(400), reviews(200)

            keras.datasets.imdb.load_data = load_data
            sys.argv = ["imdb.py", "--quick"]
            runpy.run_path({str(EXAMPLES / "imdb.py")!r}, run_name="__main__")
            """
        )
    )
    out = run_example(driver)
    assert "200 training, 200 validation and 200 test reviews; population 4, 4 epochs" in out
    best = re.search(r"Best: member (\d), validation accuracy ([.\d]+)", out)
    test = re.search(r"Test accuracy of the returned keras.Model: ([.\d]+)", out)
    assert best is not None and test is not None, out
    assert 0.0 <= float(best.group(2)) <= 1.0 and 0.0 <= float(test.group(1)) <= 1.0


# ---- CartPole -----------------------------------------------------------------------------------
def test_cartpole_quick_prints_the_comparison_table() -> None:
    pytest.importorskip("gymnasium")
    out = run_example(EXAMPLES / "cartpole.py", "--quick")
    rows = re.findall(r"^\s+0\s+([.\d]+)\s+([.\d]+)\s+(\d+)\s+[.\d]+s\s+[.\d]+s$", out, re.M)
    assert len(rows) == 1, out
    pbt, baseline, exploits = float(rows[0][0]), float(rows[0][1]), int(rows[0][2])
    assert 8 <= pbt <= 500 and 8 <= baseline <= 500, "CartPole lasts 8 to 500 steps"
    assert exploits >= 1, out
    assert re.search(r"PBT is (NOT )?higher: mean return [.\d]+ against [.\d]+", out)
    header = next(line.split() for line in out.splitlines() if line.startswith("epochs"))
    assert header == ["epochs", "member", "learning_rate", "entropy_cost"]


def test_cartpole_gradient_matches_a_numerical_one(cartpole: ModuleType) -> None:
    rng = np.random.default_rng(0)
    weights = rng.normal(0, 0.5, (5, 2))
    features, actions, alive = cartpole.rollout(weights, 6, rng)
    assert features.shape[:2] == actions.shape == alive.shape and features.shape[2] == 5
    assert alive[0].all() and alive[-1].any(), "every episode starts; the last step recorded has a player"
    assert (np.diff(alive.astype(int), axis=0) <= 0).all(), "an episode that ended stays ended"
    x, a, advantage = features[alive], actions[alive], cartpole.advantages(alive)
    entropy_cost = 0.05

    def loss(w: np.ndarray) -> float:
        logits = x @ w
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        entropy = -(np.exp(log_p) * log_p).sum(axis=1)
        return float(np.mean(-advantage * log_p[np.arange(len(a)), a] - entropy_cost * entropy))

    numerical = np.zeros_like(weights)
    for index in np.ndindex(weights.shape):
        delta = np.zeros_like(weights)
        delta[index] = 1e-6
        numerical[index] = (loss(weights + delta) - loss(weights - delta)) / 2e-6
    analytic = cartpole.policy_gradient(weights, features, actions, alive, entropy_cost)
    np.testing.assert_allclose(analytic, numerical, rtol=1e-4, atol=1e-7)


def test_cartpole_agent_learns(cartpole: ModuleType) -> None:
    state = cartpole.init(0)
    before = cartpole.fresh_return(state, episodes=50)
    for _ in range(25):
        state, metrics = cartpole.step(state, {"learning_rate": 0.3, "entropy_cost": 0.01})
        assert metrics["return"] == state["last_return"] == cartpole.evaluate(state)["mean_return"]
    after = cartpole.fresh_return(state, episodes=50)
    assert state["updates"] == 25
    assert after > 2 * before, (before, after)


def test_cartpole_runs_repeat_exactly_for_a_seed(cartpole: ModuleType) -> None:
    def run(seed: int) -> tuple[list[Any], list[Any], dict[str, Any]]:
        trainer, best = cartpole.train(seed, True, population=3, epochs=4, ready=2, episodes=4)
        history = [{k: v for k, v in row.items() if k != "seconds"} for row in trainer.history]
        return history, trainer.exploits, best

    first, again, other = run(1), run(1), run(2)
    assert first[0] == again[0] and first[1] == again[1] and first[1], "same seed, same run (with exploits)"
    np.testing.assert_array_equal(first[2]["weights"], again[2]["weights"])
    assert first[0] != other[0], "another seed, another run"


def test_cartpole_verdict(cartpole: ModuleType) -> None:
    ok, text = cartpole.verdict([300.0, 200.0, 500.0], [100.0, 250.0, 400.0])
    assert ok and "mean return 333.3 against 250.0" in text and "2 of 3 seeds" in text
    ok, text = cartpole.verdict([100.0, 200.0], [150.0, 150.0])
    assert not ok and text.startswith("PBT is NOT higher")


# ---- Stable-Baselines3: PPO on CartPole, SAC on Pendulum ------------------------------------------
def check_sb3_output(out: str, budget: int, low: float, high: float, header: list[str]) -> None:
    """One row per seed: both winners' returns in range, an exploit; the same steps on both sides."""
    assert f"{budget:,} environment steps per run, PBT or not" in out, out
    rows = re.findall(r"^\s+0\s+(-?[.\d]+)\s+(-?[.\d]+)\s+(\d+)\s+[.\d]+s\s+[.\d]+s$", out, re.M)
    assert len(rows) == 1, out
    pbt, baseline, exploits = float(rows[0][0]), float(rows[0][1]), int(rows[0][2])
    assert low <= pbt <= high and low <= baseline <= high, out
    assert exploits >= 1, out
    assert re.search(
        r"PBT is (not )?higher: mean return -?[.\d]+ against -?[.\d]+ at equal environment steps", out
    )
    assert next(line.split() for line in out.splitlines() if line.startswith("epochs")) == header


def test_sb3_cartpole_quick_compares_ppo_with_and_without_pbt() -> None:
    pytest.importorskip("stable_baselines3")
    out = run_example(EXAMPLES / "sb3_cartpole.py", "--quick")
    check_sb3_output(
        out, 4 * 2 * 256, 8, 500, ["epochs", "member", "learning_rate", "clip_range", "ent_coef"]
    )


def test_sb3_pendulum_quick_compares_sac_with_and_without_pbt() -> None:
    pytest.importorskip("stable_baselines3")
    out = run_example(EXAMPLES / "sb3_pendulum.py", "--quick")
    # A Pendulum episode (200 steps) returns between about -16.3 * 200 and 0.
    check_sb3_output(out, 2 * 2 * 64, -3300, 0, ["epochs", "member", "learning_rate", "tau"])
