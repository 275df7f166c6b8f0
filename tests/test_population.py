"""The population's decisions: pure and seeded over its members, applied only when told."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

import pybt
from pybt.policy.done import StopAfter
from pybt.policy.exploit import Truncation
from pybt.policy.explore import ExploreStrategy, Perturb
from pybt.policy.ready import ReadyAfter
from pybt.population import (
    Continue,
    Exploit,
    Explore,
    Member,
    Policies,
    Population,
    Stop,
    Wait,
    starting_hyperparameters,
)
from pybt.space import Uniform

SPACE = {"lr": Uniform(0.0, 1.0)}


def population(
    scores: list[float | None],
    epoch: int = 4,
    exploit: Any = "default",
    explore: Any = "default",
    seed: int = 0,
) -> Population:
    policies = Policies(
        StopAfter(8),
        ReadyAfter(4),
        Truncation() if exploit == "default" else exploit,
        Perturb() if explore == "default" else explore,
    )
    members = {}
    for i, score in enumerate(scores):
        member = Member(id=i, seed=i, hyperparameters={"lr": 0.1 * (i + 1)}, epoch=epoch, steps=epoch)
        if score is None:
            member.failed = True
        else:
            member.score, member.fitness = score, score
        members[i] = member
    return Population(members, policies, SPACE, np.random.default_rng(seed))


def test_decide_is_seeded_and_changes_no_member() -> None:
    first, second = population([0.1, 0.5, 0.9, 0.3]), population([0.1, 0.5, 0.9, 0.3])
    before = copy.deepcopy(first.members)
    assert first.decide([0, 1, 2, 3], running=()) == second.decide([0, 1, 2, 3], running=())
    assert first.members == before


def test_the_worst_copies_the_best_and_explores() -> None:
    decisions = population([0.1, 0.5, 0.9, 0.3]).decide([0, 1, 2, 3], running=())
    exploits = [d for d in decisions if isinstance(d, Exploit)]
    assert len(exploits) == 1 and exploits[0].member == 0 and exploits[0].donor.id == 2
    assert exploits[0].reason == "exploit" and SPACE["lr"].contains(exploits[0].hyperparameters["lr"])
    assert {d.member for d in decisions if isinstance(d, Continue) and d.ready} == {1, 2, 3}


def test_done_members_stop() -> None:
    assert population([0.1, 0.2], epoch=8).decide([0, 1], running=()) == [Stop(0), Stop(1)]


def test_not_ready_members_continue() -> None:
    assert population([0.1, 0.2], epoch=2).decide([0, 1], running=()) == [Continue(0), Continue(1)]


def test_a_failed_member_is_replaced_or_waits_for_a_donor() -> None:
    decisions = population([None, 0.5, 0.9]).decide([0], running=())
    assert len(decisions) == 1 and isinstance(decisions[0], Exploit)
    assert decisions[0].reason == "failure" and decisions[0].donor.id in (1, 2)
    assert population([None, None]).decide([0, 1], running={5}) == [Wait(0), Wait(1)]


def test_explore_without_exploit_keeps_the_weights() -> None:
    decisions = population([0.1, 0.9], exploit=None).decide([0, 1], running=())
    assert [type(d) for d in decisions] == [Explore, Explore]


def test_a_donor_behind_and_still_running_is_not_copied() -> None:
    pop = population([0.1, 0.5, 0.9, 0.3])
    pop.members[2].epoch = 2  # the best member is behind, and running
    decisions = pop.decide([0, 1, 3], running={2})
    assert not any(isinstance(d, Exploit) and d.donor.id == 2 for d in decisions)
    assert Continue(0, reached=True) in decisions, (
        "the member that would have copied it trains on, still ready"
    )


def test_apply_takes_over_the_donors_standing() -> None:
    pop = population([0.1, 0.5, 0.9, 0.3])
    pop.members[2].epoch = 6
    exploit = next(d for d in pop.decide([0, 1, 2, 3], running=()) if isinstance(d, Exploit))
    pop.apply(exploit)
    member = pop.members[0]
    assert (member.epoch, member.last_ready_epoch, member.score, member.parent) == (6, 6, 0.9, 2)
    assert member.hyperparameters == dict(exploit.hyperparameters)


def test_an_explore_strategy_leaving_the_space_is_named() -> None:
    class OutOfBounds(ExploreStrategy):
        def explore(self, hyperparameters: Any, space: Any, rng: Any) -> dict[str, Any]:
            return {"lr": 5.0}

    with pytest.raises(pybt.PyBTError, match="OutOfBounds"):
        population([0.1, 0.9], explore=OutOfBounds()).decide([0, 1], running=())


def test_state_round_trips_members_and_random_state() -> None:
    pop = population([0.1, 0.5, 0.9, 0.3])
    saved = pop.state()
    first = pop.decide([0, 1, 2, 3], running=())
    pop.restore(saved)
    assert pop.decide([0, 1, 2, 3], running=()) == first


def test_starting_hyperparameters_keep_the_given_and_check_the_initial() -> None:
    rng = np.random.default_rng(0)
    starting = starting_hyperparameters(SPACE, 3, {"lr": 0.25}, None, rng)
    assert starting[0] == {"lr": 0.25} and all(SPACE["lr"].contains(s["lr"]) for s in starting)
    with pytest.raises(pybt.PyBTError, match=r"initial_hyperparameters\[1\]"):
        starting_hyperparameters(SPACE, 2, {}, [{"lr": 0.5}, {"lr": 7.0}], rng)
    with pytest.raises(pybt.PyBTError, match="one dict per member"):
        starting_hyperparameters(SPACE, 3, {}, [{"lr": 0.5}], rng)
