"""Tests for pybt.policy: done, ready, exploit and explore strategies, alone and in a run.

Policies are pure functions of frozen snapshots, so most tests build snapshots by hand;
random choices are checked statistically over many generator seeds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pybt
from pybt import Trainer
from pybt.model import FunctionModel
from pybt.policy.done import DoneStrategy, StopAfter
from pybt.policy.exploit import BinaryTournament, ExploitStrategy, Truncation
from pybt.policy.explore import ExploreStrategy, Perturb, Resample
from pybt.policy.ready import ReadyAfter, ReadyStrategy
from pybt.policy.snapshot import MemberSnapshot, Population
from pybt.space import Choice, Domain, Fixed, IntUniform, LogUniform, Uniform

PROPERTY = settings(max_examples=120, deadline=None)
SEEDS = range(300)


def snap(member_id: int, fitness: float = 0.0, epoch: int = 0, last_ready_epoch: int = 0) -> MemberSnapshot:
    return MemberSnapshot(
        id=member_id,
        epoch=epoch,
        hyperparameters={"lr": 0.1},
        score=fitness,
        fitness=fitness,
        last_ready_epoch=last_ready_epoch,
    )


def population(fitnesses: list[float], seed: int = 0) -> Population:
    return Population([snap(i, f) for i, f in enumerate(fitnesses)], np.random.default_rng(seed))


# ---- done / ready ----------------------------------------------------------------------------
def test_stop_after_counts_the_members_epochs() -> None:
    stop = StopAfter(3)
    assert stop.max_epochs == 3
    assert not stop.is_done(snap(0, epoch=2))
    assert stop.is_done(snap(0, epoch=3))
    assert stop.is_done(snap(0, epoch=5))


def test_ready_after_counts_per_member_since_its_own_last_ready_epoch() -> None:
    ready = ReadyAfter(4)
    assert ready.is_ready(snap(0, epoch=4, last_ready_epoch=0))
    assert not ready.is_ready(snap(0, epoch=3, last_ready_epoch=0))
    # Two members at the same epoch, each on its own schedule.
    assert not ready.is_ready(snap(0, epoch=7, last_ready_epoch=4))
    assert ready.is_ready(snap(1, epoch=7, last_ready_epoch=3))
    assert ready.is_ready(snap(0, epoch=8, last_ready_epoch=4))


# ---- population ranking -----------------------------------------------------------------------
def test_population_ranks_worst_first() -> None:
    ranked = population([0.5, -1.0, 2.0, -math.inf])
    assert [member.id for member in ranked.ranked] == [3, 1, 0, 2]
    assert ranked.rank(2) == 3 and ranked.rank(3) == 0
    assert len(ranked) == 4 and 1 in ranked and 7 not in ranked
    assert ranked.get(0).fitness == 0.5


def test_population_breaks_ties_at_random() -> None:
    orders = Counter(tuple(m.id for m in population([1.0, 1.0, 1.0], seed).ranked) for seed in SEEDS)
    assert len(orders) == 6, "every order of three equal members should occur"


# ---- truncation -------------------------------------------------------------------------------
def test_truncation_with_two_members_copies_the_better() -> None:
    for seed in range(20):
        ranked, rng = population([0.1, 0.9], seed), np.random.default_rng(seed)
        assert Truncation().donor(ranked.get(0), ranked, rng) == 1
        assert Truncation().donor(ranked.get(1), ranked, rng) is None


def test_truncation_bottom_copies_uniformly_from_top() -> None:
    fitnesses = [float(i) for i in range(10)]  # member i has rank i
    truncation = Truncation(upper=0.2, lower=0.2)
    donors: Counter[int | None] = Counter()
    for seed in range(2000):
        ranked, rng = population(fitnesses, seed), np.random.default_rng(seed)
        donors[truncation.donor(ranked.get(seed % 2), ranked, rng)] += 1
        for middle_or_top in range(2, 10):
            assert truncation.donor(ranked.get(middle_or_top), ranked, rng) is None
    assert set(donors) == {8, 9}
    assert 900 < donors[8] < 1100, donors


@PROPERTY
@given(
    fitnesses=st.lists(st.sampled_from([0.0, 1.0, 2.0, -math.inf]), min_size=2, max_size=20),
    upper=st.floats(0.01, 0.5),
    lower=st.floats(0.01, 0.5),
    seed=st.integers(0, 2**32 - 1),
)
def test_truncation_never_copies_itself_and_only_copies_the_top(
    fitnesses: list[float], upper: float, lower: float, seed: int
) -> None:
    ranked, rng = population(fitnesses, seed), np.random.default_rng(seed)
    size, truncation = len(fitnesses), Truncation(upper=upper, lower=lower)
    for member in ranked.ranked:
        donor = truncation.donor(member, ranked, rng)
        position = ranked.rank(member.id)
        if position == 0:
            assert donor is not None, "the worst member always copies"
        if position == size - 1:
            assert donor is None, "the best member never copies"
        if donor is not None:
            assert donor != member.id
            assert ranked.rank(donor) > position
            assert ranked.rank(donor) >= size - max(1, round(upper * size))
            assert position < max(1, round(lower * size))


def test_truncation_mixes_equal_members() -> None:
    pairs = Counter()
    for seed in SEEDS:
        ranked, rng = population([1.0, 1.0], seed), np.random.default_rng(seed)
        decisions = {member: Truncation().donor(ranked.get(member), ranked, rng) for member in (0, 1)}
        # One decision ranks the two one way, so exactly one of them copies the other.
        copying = [(member, donor) for member, donor in decisions.items() if donor is not None]
        assert len(copying) == 1
        pairs[copying[0]] += 1
    assert set(pairs) == {(0, 1), (1, 0)}
    assert min(pairs.values()) > 100, pairs


# ---- binary tournament ------------------------------------------------------------------------
def test_binary_tournament_copies_only_a_better_member() -> None:
    tournament = BinaryTournament()
    middle: Counter[int | None] = Counter()
    for seed in SEEDS:
        ranked, rng = population([0.0, 1.0, 2.0], seed), np.random.default_rng(seed)
        assert tournament.donor(ranked.get(0), ranked, rng) in (1, 2)
        assert tournament.donor(ranked.get(2), ranked, rng) is None
        middle[tournament.donor(ranked.get(1), ranked, rng)] += 1
    assert set(middle) == {None, 2}
    assert 100 < middle[2] < 200, middle


def test_binary_tournament_mixes_equal_members() -> None:
    copied = Counter()
    for seed in SEEDS:
        ranked, rng = population([1.0, 1.0], seed), np.random.default_rng(seed)
        donor = BinaryTournament().donor(ranked.get(0), ranked, rng)
        assert donor in (None, 1)
        copied[donor] += 1
    assert min(copied[None], copied[1]) > 100, copied


# ---- explore ----------------------------------------------------------------------------------
@st.composite
def space_and_values(draw: st.DrawFn) -> tuple[dict[str, Domain], dict[str, Any]]:
    space: dict[str, Domain] = {}
    values: dict[str, Any] = {}
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["uniform", "log", "int", "ordered", "choice", "fixed"]))
        low = draw(st.floats(-1e3, 1e3))
        if kind == "uniform":
            domain: Domain = Uniform(low, low + draw(st.floats(1e-3, 1e3)))
        elif kind == "log":
            domain = LogUniform(abs(low) + 1e-6, (abs(low) + 1e-6) * draw(st.floats(1.01, 1e3)))
        elif kind == "int":
            domain = IntUniform(int(low), int(low) + draw(st.integers(1, 100)))
        elif kind in ("ordered", "choice"):
            domain = Choice(list(range(draw(st.integers(1, 5)))), ordered=kind == "ordered")
        else:
            domain = Fixed(draw(st.integers()))
        name = f"{kind}{i}"
        space[name] = domain
        values[name] = domain.sample(np.random.default_rng(draw(st.integers(0, 2**32 - 1))))
    return space, values


@PROPERTY
@given(
    drawn=space_and_values(),
    factors=st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=4),
    probability=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_explore_results_stay_in_the_domain(
    drawn: tuple[dict[str, Domain], dict[str, Any]], factors: list[float], probability: float, seed: int
) -> None:
    space, values = drawn
    before = dict(values)
    for strategy in (Perturb(factors, resample_probability=probability), Resample(probability)):
        explored = strategy.explore(values, space, np.random.default_rng(seed))
        assert set(explored) == set(space)
        for name, domain in space.items():
            assert domain.contains(explored[name]), (name, domain, explored[name])
            if isinstance(domain, Fixed):
                assert explored[name] == domain.value
    assert values == before, "explore must not change its input"


class SpyDomain(Uniform):
    """A Uniform that counts how it was explored."""

    def __init__(self) -> None:
        super().__init__(0.0, 1.0)
        self.calls: Counter[str] = Counter()

    def perturb(self, value: Any, factor: float, rng: np.random.Generator) -> float:
        self.calls["perturb"] += 1
        return super().perturb(value, factor, rng)

    def resample(self, rng: np.random.Generator) -> float:
        self.calls["resample"] += 1
        return super().resample(rng)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (Perturb(resample_probability=1.0), "resample"),
        (Perturb(resample_probability=0.0), "perturb"),
        (Resample(1.0), "resample"),
    ],
)
def test_resample_probability_extremes(strategy: ExploreStrategy, expected: str) -> None:
    spy = SpyDomain()
    rng = np.random.default_rng(0)
    for _ in range(200):
        strategy.explore({"x": 0.5}, {"x": spy}, rng)
    assert spy.calls == Counter({expected: 200})


def test_resample_with_probability_zero_keeps_values() -> None:
    spy = SpyDomain()
    assert Resample(0.0).explore({"x": 0.3}, {"x": spy}, np.random.default_rng(0)) == {"x": 0.3}
    assert spy.calls == Counter()


def test_perturb_multiplies_by_one_of_the_factors() -> None:
    rng = np.random.default_rng(0)
    results = {
        round(
            Perturb((0.5, 2.0), resample_probability=0.0).explore({"x": 1.0}, {"x": Uniform(0, 10)}, rng)[
                "x"
            ],
            9,
        )
        for _ in range(100)
    }
    assert results == {0.5, 2.0}


@pytest.mark.parametrize(
    "build",
    [
        lambda: Perturb(factors=[]),
        lambda: Perturb(factors=[1.2, -0.8]),
        lambda: Perturb(resample_probability=1.5),
        lambda: Resample(-0.1),
        lambda: Truncation(upper=0.7),
        lambda: Truncation(lower=0),
    ],
)
def test_invalid_policy_arguments_raise(build: Any) -> None:
    with pytest.raises(pybt.PyBTError, match="received"):
        build()


# ---- custom strategies in a run ---------------------------------------------------------------
class StopAtScore(DoneStrategy):
    """Done after 3 epochs (a custom rule that does not know max_epochs)."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def is_done(self, member: MemberSnapshot) -> bool:
        self.seen.append(member.epoch)
        return member.epoch >= 3


class EveryStep(ReadyStrategy):
    def is_ready(self, member: MemberSnapshot) -> bool:
        return True


class CopyTheBest(ExploitStrategy):
    """Every member but the best copies the best."""

    def __init__(self) -> None:
        self.calls = 0

    def donor(self, member: MemberSnapshot, population: Population, rng: np.random.Generator) -> int | None:
        self.calls += 1
        best = population.ranked[-1].id
        return None if best == member.id else best


class SetToQuarter(ExploreStrategy):
    def explore(
        self, hyperparameters: Mapping[str, Any], space: Mapping[str, Domain], rng: np.random.Generator
    ) -> dict[str, Any]:
        return {**hyperparameters, "lr": 0.25}


def test_custom_strategies_drive_a_run() -> None:
    model = FunctionModel(
        init=lambda seed: {"x": 0.0},
        step=lambda state, hp: {"x": state["x"] + hp["lr"]},
        evaluate=lambda state: state["x"],
    )
    done, exploit = StopAtScore(), CopyTheBest()
    trainer = Trainer(
        model,
        population_size=3,
        hyperparameters={"lr": Uniform(0.0, 1.0)},
        initial_hyperparameters=[{"lr": 0.1}, {"lr": 0.9}, {"lr": 0.5}],
        stopping_criteria=done,
        ready_strategy=EveryStep(),
        exploit_strategy=exploit,
        explore_strategy=SetToQuarter(),
        seed=0,
        verbose=0,
    )
    _, score = trainer.train()
    assert max(row["epoch"] for row in trainer.history) == 3
    assert done.seen and exploit.calls > 0
    first_exploits = [event for event in trainer.exploits if event["epoch"] == 1]
    assert {(event["member"], event["donor"]) for event in first_exploits} == {(0, 1), (2, 1)}
    assert all(event["new_hyperparameters"] == {"lr": 0.25} for event in trainer.exploits)
    second_round = {
        row["member"]: row["hyperparameters"]["lr"] for row in trainer.history if row["epoch"] == 2
    }
    assert second_round == {0: 0.25, 1: 0.9, 2: 0.25}
    assert score == pytest.approx(0.9 * 3)
