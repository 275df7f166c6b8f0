"""Tests for PB2: the box it models, the observations it reads from a run, its Gaussian
process, and its choices, alone and in a run.

PB2 needs SciPy and threadpoolctl (``pybt[pb2]``); importing it must not.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pybt
from pybt import Trainer
from pybt.history import ExploitRecord, FailureRecord, HistoryView, RunHistory, StepRecord
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.explore import ExploreContext, Perturb
from pybt.policy.pb2 import PB2, gp
from pybt.policy.pb2.data import Box, observations
from pybt.policy.ready import ReadyAfter
from pybt.policy.snapshot import MemberSnapshot
from pybt.space import Choice, Domain, Fixed, IntUniform, LogUniform, Uniform
from pybt.store import describe

# A NumPy-only environment skips the file here (importing pybt.policy.pb2 above needs no SciPy).
pytest.importorskip("scipy")
pytest.importorskip("threadpoolctl")

PROPERTY = settings(max_examples=80, deadline=None)


def test_importing_pb2_needs_numpy_only() -> None:
    code = (
        "import sys, pybt.policy.pb2\n"
        "loaded = [m for m in ('scipy', 'sklearn', 'threadpoolctl') if m in sys.modules]\n"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- the box ----------------------------------------------------------------------------------
SPACE: dict[str, Domain] = {
    "lr": LogUniform(0.01, 3.0),
    "momentum": Uniform(0.0, 0.99),
    "batch": IntUniform(8, 512, log=True),
    "layers": IntUniform(1, 4),
    "width": Choice([32, 64, 128], ordered=True),
    "optimizer": Choice(["adam", "sgd"]),
    "seed": Fixed(3),
}


def test_the_box_holds_the_domains_pb2_can_order() -> None:
    box = Box(SPACE)
    assert box.names == ("lr", "momentum", "batch", "layers", "width")
    assert Box({"a": Choice([1]), "b": Choice([1, 2]), "c": Fixed(0)}).names == ()


@PROPERTY
@given(unit=st.lists(st.floats(-0.5, 1.5), min_size=5, max_size=5))
def test_every_point_decodes_to_values_of_the_domains(unit: list[float]) -> None:
    values = Box(SPACE).decode(unit)
    for name, value in values.items():
        assert SPACE[name].contains(value), (name, value)
    assert isinstance(values["batch"], int) and isinstance(values["layers"], int)


def test_the_corners_of_the_box_are_the_bounds() -> None:
    box = Box(SPACE)
    assert box.decode([0] * 5) == {"lr": 0.01, "momentum": 0.0, "batch": 8, "layers": 1, "width": 32}
    assert box.decode([1] * 5) == {"lr": 3.0, "momentum": 0.99, "batch": 512, "layers": 4, "width": 128}
    assert box.decode([0.5] * 5)["lr"] == pytest.approx(math.sqrt(0.01 * 3.0))  # log scale


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1))
def test_values_come_back_through_the_box(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = {name: domain.sample(rng) for name, domain in SPACE.items()}
    box = Box(SPACE)
    point = box.encode(values)
    assert point is not None and ((0 <= point) & (point <= 1)).all()
    back = box.decode(point)
    assert back["lr"] == pytest.approx(values["lr"], rel=1e-9)
    assert back["momentum"] == pytest.approx(values["momentum"], abs=1e-12)
    assert (back["batch"], back["layers"], back["width"]) == (
        values["batch"],
        values["layers"],
        values["width"],
    )


def test_a_value_outside_the_space_has_no_point() -> None:
    box = Box(SPACE)
    assert box.encode({"lr": 0.1, "momentum": 0.5, "batch": 8, "layers": 1, "width": 48}) is None
    assert box.encode({"lr": 0.1}) is None


# ---- observations -----------------------------------------------------------------------------------
def step(sequence: int, member: int, epoch: int, lr: float, score: float) -> StepRecord:
    return StepRecord(sequence, member, epoch, {"lr": lr}, {}, score, 0.1)


def test_observations_are_score_changes_per_epoch_from_where_the_weights_stood() -> None:
    history = RunHistory(
        [
            step(1, 0, 2, 0.1, 1.0),  # no standing before: no observation
            step(2, 1, 2, 1.0, 3.0),
            step(3, 0, 4, 0.1, 2.0),  # (2 - 1) / 2 at epoch 2
            step(4, 1, 4, 1.0, 7.0),  # (7 - 3) / 2
            ExploitRecord(5, 0, 1, 4, 4, {"lr": 0.1}, {"lr": 0.3}),
            step(6, 0, 5, 0.3, 7.5),  # from the donor's 7.0: 0.5 per epoch at epoch 4
            FailureRecord(7, 1, 4, {"lr": 1.0}, "boom"),
            step(8, 1, 5, 1.0, 1.0),  # after a failure: no standing
        ],
        mode="max",
    )
    box = Box({"lr": LogUniform(0.1, 1.0)})
    data = observations(HistoryView(history), box, newest=100)
    assert data.epochs.tolist() == [2, 2, 4]
    assert data.levels.tolist() == [1.0, 3.0, 7.0]
    assert data.gains.tolist() == [0.5, 2.0, 0.5]
    assert data.lengths.tolist() == [2, 2, 1]
    assert data.points[:, 0].tolist() == pytest.approx([0.0, 1.0, math.log(3) / math.log(10)])
    newest = observations(HistoryView(history), box, newest=2)
    assert newest.gains.tolist() == [2.0, 0.5]


def test_a_lower_score_is_a_gain_when_the_run_minimizes() -> None:
    history = RunHistory([step(1, 0, 1, 0.1, 5.0), step(2, 0, 2, 0.1, 3.0)], mode="min")
    data = observations(HistoryView(history), Box({"lr": Uniform(0.0, 1.0)}), newest=10)
    assert data.gains.tolist() == [2.0]


# ---- the Gaussian process ------------------------------------------------------------------------------
def test_the_kernel_is_the_papers_time_varying_squared_exponential() -> None:
    kernel = gp.Kernel(variance=2.0, lengthscale=0.5, context_lengthscale=3.0, epsilon=0.2, noise=0.1)
    a = gp.Inputs(np.array([1.0]), np.array([[0.7]]), np.array([[0.1, 0.2]]))
    b = gp.Inputs(np.array([4.0]), np.array([[0.1]]), np.array([[0.4, 0.6]]))
    expected = 2.0 * math.exp(-(0.3**2 + 0.4**2) / 0.5 - 0.6**2 / 3.0) * (1 - 0.2) ** (3 / 2)
    assert kernel(a, b)[0, 0] == pytest.approx(expected)


def test_the_likelihood_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    points, levels, times = rng.random((30, 2)), rng.random((30, 1)), rng.integers(0, 10, 30).astype(float)
    targets = np.sin(4 * points[:, 0]) + levels[:, 0] + 0.1 * rng.normal(size=30)
    arrays = (
        ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1),
        ((levels[:, None, :] - levels[None, :, :]) ** 2).sum(-1),
        0.5 * np.abs(times[:, None] - times[None, :]),
        targets,
    )
    theta = np.log([0.3, 0.8, 0.05, 0.2])
    _, gradient, _ = gp.profile_likelihood(theta, *arrays)
    for i in range(4):
        step_ = np.zeros(4)
        step_[i] = 1e-6
        slope = (
            gp.profile_likelihood(theta + step_, *arrays)[0]
            - gp.profile_likelihood(theta - step_, *arrays)[0]
        ) / 2e-6
        assert gradient[i] == pytest.approx(slope, rel=1e-4, abs=1e-6)


def posterior(pending: np.ndarray | None = None) -> gp.Posterior:
    rng = np.random.default_rng(1)
    points = rng.random((40, 2))
    observed = gp.Inputs(np.repeat(np.arange(10.0), 4), np.linspace(0, 1, 40)[:, None], points)
    targets = np.cos(3 * points[:, 0]) - points[:, 1] + observed.contexts[:, 0]
    kernel = gp.fit_kernel(observed, targets)
    empty = np.zeros((0, 2))
    return gp.Posterior(
        kernel, observed, targets, 10.0, np.array([0.9]), empty if pending is None else pending
    )


def test_the_ucb_gradient_matches_finite_differences() -> None:
    model = posterior(np.array([[0.3, 0.3]]))
    point = np.array([0.42, 0.61])
    _, gradient = model.ucb_with_gradient(point, 1.3)
    for i in range(2):
        step_ = np.zeros(2)
        step_[i] = 1e-6
        slope = (model.ucb((point + step_)[None], 1.3)[0] - model.ucb((point - step_)[None], 1.3)[0]) / 2e-6
        assert gradient[i] == pytest.approx(slope, rel=1e-4, abs=1e-6)
    assert model.ucb_with_gradient(point, 1.3)[0] == pytest.approx(model.ucb(point[None], 1.3)[0])


def test_a_pending_point_lowers_the_uncertainty_around_it() -> None:
    here = np.array([[0.9, 0.9]])
    mean, deviation = posterior().mean_and_deviation(here)
    mean_pending, deviation_pending = posterior(here).mean_and_deviation(here)
    assert mean_pending == pytest.approx(mean)  # the mean is the observations' alone
    assert deviation_pending[0] < 0.8 * deviation[0]


def test_beta_grows_like_log_t() -> None:
    assert gp.root_beta(1) == pytest.approx(math.sqrt(0.2))
    assert gp.root_beta(100) == pytest.approx(math.sqrt(0.2 + math.log(40)))


# ---- PB2's choices -------------------------------------------------------------------------------------
def peaked_history(
    space: Mapping[str, Domain], best: float, members: int = 8, epochs: int = 12
) -> RunHistory:
    """A run where the score grows fastest when lr (in the box) is near ``best``."""
    rng = np.random.default_rng(5)
    box, history, sequence = Box(space), RunHistory(mode="max"), 0
    for member in range(members):
        unit = (member + 0.5) / members
        values = box.decode([unit])
        score = 0.0
        for epoch in range(1, epochs + 1):
            score += 1.0 - 4 * (unit - best) ** 2 + 0.01 * rng.normal()
            sequence += 1
            history.add(StepRecord(sequence, member, epoch, dict(values), {}, score, 0.0))
    return history


def context(
    history: RunHistory, space: Mapping[str, Domain], seed: int = 0, pending: tuple = (), epoch: int = 12
) -> ExploreContext:
    values = {name: domain.sample(np.random.default_rng(99)) for name, domain in space.items()}
    member = MemberSnapshot(0, epoch, values)
    donor = MemberSnapshot(1, epoch, values)
    return ExploreContext(
        values, space, np.random.default_rng(seed), member, donor, HistoryView(history), pending
    )


def test_pb2_picks_what_improved_the_score_fastest() -> None:
    space = {"lr": LogUniform(1e-4, 1.0)}
    history = peaked_history(space, best=0.7)
    chosen = PB2().explore_in(context(history, space))
    assert Box(space).encode(chosen)[0] == pytest.approx(0.7, abs=0.12)


def test_a_batch_spreads_out_over_pending_choices() -> None:
    space = {"lr": LogUniform(1e-4, 1.0)}
    history = peaked_history(space, best=0.7, members=3, epochs=4)  # few points: wide uncertainty
    box = Box(space)
    first = PB2().explore_in(context(history, space))
    again = PB2().explore_in(context(history, space))
    assert again == first, "the same seed gives the same choice"
    second = PB2().explore_in(context(history, space, pending=(first,)))
    assert abs(box.encode(second)[0] - box.encode(first)[0]) > 0.05


def test_pb2_keeps_fixed_values_and_resamples_unordered_choices() -> None:
    history = RunHistory(mode="max")
    rng = np.random.default_rng(0)
    for sequence in range(1, 41):
        values = {name: domain.sample(rng) for name, domain in SPACE.items()}
        history.add(StepRecord(sequence, sequence % 4, sequence, values, {}, float(sequence), 0.0))
    chosen = [PB2().explore_in(context(history, SPACE, seed=seed, epoch=40)) for seed in range(6)]
    for values in chosen:
        assert set(values) == set(SPACE)
        assert all(SPACE[name].contains(value) for name, value in values.items())
        assert values["seed"] == 3
    assert {values["optimizer"] for values in chosen} == {"adam", "sgd"}


def test_with_too_few_observations_pb2_explores_like_perturb() -> None:
    space = {"lr": LogUniform(1e-4, 1.0)}
    history = RunHistory([step(1, 0, 1, 0.01, 1.0), step(2, 0, 2, 0.01, 2.0)], mode="max")
    values = {"lr": 0.01}
    assert PB2().explore_in(context(history, space, seed=4)) == Perturb().explore(
        context(history, space).hyperparameters, space, np.random.default_rng(4)
    )
    assert PB2().explore(values, space, np.random.default_rng(4)) == Perturb().explore(
        values, space, np.random.default_rng(4)
    )


def test_a_model_that_cannot_be_fitted_falls_back_to_perturb(monkeypatch: pytest.MonkeyPatch) -> None:
    import pybt.policy.pb2 as module

    def singular(*args: Any) -> None:
        raise np.linalg.LinAlgError("singular")

    monkeypatch.setattr(module, "fit_kernel", singular)
    space = {"lr": LogUniform(1e-4, 1.0)}
    decision = context(peaked_history(space, best=0.5), space, seed=7)
    rng = np.random.default_rng(7)
    rng.random((256, 1))  # the starts PB2 drew before fitting
    expected = Perturb().explore(decision.hyperparameters, space, rng)
    assert PB2().explore_in(decision) == expected


def test_a_decision_with_a_thousand_steps_is_quick() -> None:
    space = {"lr": LogUniform(1e-4, 1.0), "momentum": Uniform(0.0, 0.99)}
    rng = np.random.default_rng(0)
    history, scores = RunHistory(mode="max"), [0.0] * 10
    for sequence in range(1, 1001):
        member = sequence % 10
        values = {name: domain.sample(rng) for name, domain in space.items()}
        scores[member] += values["momentum"] - (math.log10(values["lr"]) + 2) ** 2 + rng.normal()
        history.add(StepRecord(sequence, member, sequence // 10 + 1, values, {}, scores[member], 0.0))
    pb2, decision = PB2(), context(history, space, epoch=101)
    pb2.explore_in(decision)  # SciPy imported
    started = time.perf_counter()
    for _ in range(5):
        pb2.explore_in(decision)
    # benchmarks/pb2.py measures it (tens of ms); this guards against a cost that grows with the run.
    assert (time.perf_counter() - started) / 5 < 0.5


def test_pb2_arguments_are_checked_and_described() -> None:
    for bad in ({"max_points": 1}, {"min_points": 1}, {"restarts": 0}, {"max_points": 10, "min_points": 11}):
        with pytest.raises(pybt.PyBTError, match="expected"):
            PB2(**bad)
    assert repr(PB2()) == "PB2(max_points=100, min_points=4, restarts=4)"
    assert describe(PB2(max_points=50)) == {
        "type": "pybt.policy.pb2.PB2",
        "max_points": 50,
        "min_points": 4,
        "restarts": 4,
    }


# ---- in a run --------------------------------------------------------------------------------------
def toy_run(seed: int, space: Mapping[str, Domain] | None = None) -> Trainer:
    """The PBT paper's toy at population 2 (benchmarks/toy.py), with PB2 exploring."""

    def toy_step(theta: np.ndarray, h: Mapping[str, Any]) -> np.ndarray:
        return theta - 0.05 * 2.0 * np.array([h["h0"], h["h1"]]) * theta

    trainer = Trainer(
        model=FunctionModel(
            lambda s: np.array([0.9, 0.9]), toy_step, lambda theta: 1.2 - float(theta @ theta)
        ),
        population_size=2,
        hyperparameters=space or {"h0": Uniform(0, 1), "h1": Uniform(0, 1)},
        initial_hyperparameters=[{"h0": 1.0, "h1": 0.0}, {"h0": 0.0, "h1": 1.0}],
        stopping_criteria=StopAfter(40),
        ready_strategy=ReadyAfter(4),
        explore_strategy=PB2(),
        seed=seed,
        verbose=0,
    )
    trainer.train()
    return trainer


def test_pb2_solves_the_toy_problem_and_the_same_seed_repeats_the_run() -> None:
    first, again = toy_run(3), toy_run(3)
    assert first.run_history.best().score > 1.19  # without exploring h it stays at 0.39

    def without_times(trainer: Trainer) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in r.as_dict().items() if k != "seconds"} for r in trainer.run_history.records()
        ]

    assert without_times(first) == without_times(again)
    assert first.exploits, "PB2 chose the hyperparameters of every exploit"


def test_pb2_in_a_run_with_every_kind_of_domain() -> None:
    space = {"h0": Uniform(0, 1), "h1": Choice([0.0, 0.5, 1.0], ordered=True), "tag": Choice(["a", "b"])}

    def toy_step(theta: np.ndarray, h: Mapping[str, Any]) -> np.ndarray:
        return theta - 0.1 * np.array([h["h0"], h["h1"]]) * theta

    trainer = Trainer(
        model=FunctionModel(
            lambda s: np.array([0.9, 0.9]), toy_step, lambda theta: 1.2 - float(theta @ theta)
        ),
        population_size=3,
        hyperparameters=space,
        stopping_criteria=StopAfter(24),
        ready_strategy=ReadyAfter(3),
        explore_strategy=PB2(),
        seed=1,
        verbose=0,
    )
    trainer.train()
    assert trainer.exploits
    for exploit in trainer.exploits:  # the population checks every value lies in its domain
        assert exploit.new_hyperparameters["h1"] in (0.0, 0.5, 1.0)


def test_pb2_explores_a_members_own_hyperparameters_without_exploit() -> None:
    trainer = Trainer(
        model=FunctionModel(lambda s: np.zeros(1), lambda x, h: x + h["lr"], lambda x: float(x[0])),
        population_size=2,
        hyperparameters={"lr": LogUniform(1e-3, 1.0)},
        stopping_criteria=StopAfter(12),
        ready_strategy=ReadyAfter(3),
        exploit_strategy=None,
        explore_strategy=PB2(),
        seed=0,
        verbose=0,
    )
    trainer.train()
    rates = {step.hyperparameters["lr"] for step in trainer.history}
    assert len(rates) > 2, "members changed their own learning rates at their ready points"
