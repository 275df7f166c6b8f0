"""The population: its members' bookkeeping, and the decisions PBT takes for them.

:class:`Population` owns the members (where each stands, its hyperparameters, whether it is
done or failed) and the policies' random stream. After steps complete, :meth:`Population.decide`
asks the policies what each member does next and returns *decisions* — it touches no model
and no executor. The trainer applies them: copies states through the executor for
:class:`Exploit` decisions, records them, then hands each back to :meth:`Population.apply`.

Decisions, one per member that finished a step (or waits for a donor):

- :class:`Stop`: the member is done;
- :class:`Exploit`: copy ``donor``'s state and hyperparameters, then train with the explored
  ``hyperparameters`` (``reason="failure"`` replaces a failed member);
- :class:`Explore`: keep the weights, train on with new ``hyperparameters`` (explore
  without exploit, the paper's ablation);
- :class:`Continue`: train on as is (``ready`` says whether that was a ready point);
- :class:`Wait`: a failed member with no healthy member to copy decides again after the
  next steps complete (the trainer gives up when none is running).

Randomness flows from one generator, used in a fixed order, so a seeded in-process run
repeats exactly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from pybt.errors import PyBTError, invalid_argument
from pybt.history import HistoryView, RunHistory
from pybt.policy.done import DoneStrategy
from pybt.policy.exploit import ExploitStrategy
from pybt.policy.explore import ExploreContext, ExploreStrategy
from pybt.policy.ready import ReadyStrategy
from pybt.policy.snapshot import MemberSnapshot
from pybt.policy.snapshot import Population as Ranking
from pybt.space import Domain


@dataclass
class Member:
    """Where one member of the population stands (the trainer's bookkeeping, never a policy's)."""

    id: int
    seed: int
    hyperparameters: dict[str, Any]
    epoch: int = 0
    score: float | None = None
    fitness: float = -math.inf
    metrics: dict[str, float] = field(default_factory=dict)
    last_ready_epoch: int = 0
    steps: int = 0
    parent: int | None = None
    failed: bool = False
    done: bool = False
    seconds_since_ready: float = 0.0
    reached_ready_epoch: int = 0  # its newest ready point, acted on or not (when cuts are due)

    def snapshot(self) -> MemberSnapshot:
        """A frozen copy for policies."""
        return MemberSnapshot(
            id=self.id,
            epoch=self.epoch,
            hyperparameters=MappingProxyType(dict(self.hyperparameters)),
            score=self.score,
            fitness=-math.inf if self.failed else self.fitness,
            last_ready_epoch=self.last_ready_epoch,
            steps=self.steps,
            parent=self.parent,
            failed=self.failed,
            seconds_since_ready=self.seconds_since_ready,
        )

    @property
    def healthy(self) -> bool:
        """Evaluated, and its latest step did not fail: it can be compared and copied."""
        return not self.failed and math.isfinite(self.fitness)


@dataclass(frozen=True)
class Policies:
    """The four decisions of PBT (exploit and explore may be None: see the trainer)."""

    stop: DoneStrategy
    ready: ReadyStrategy
    exploit: ExploitStrategy | None
    explore: ExploreStrategy | None

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.stop, self.ready, self.exploit, self.explore)


# ---- decisions ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stop:
    member: int


@dataclass(frozen=True)
class Continue:
    member: int
    ready: bool = False  # a ready point passed: readiness counts again from here
    reached: bool = False  # ready, but it decides again after its next step (a donor was busy)


@dataclass(frozen=True)
class Explore:
    member: int
    hyperparameters: Mapping[str, Any]


@dataclass(frozen=True)
class Exploit:
    member: int
    donor: MemberSnapshot  # the donor as it stood when the decision was taken
    hyperparameters: Mapping[str, Any]
    reason: str = "exploit"  # or "failure": a failed member replaced
    done: bool = False  # the copy has trained as far as the member may (it stops there)


@dataclass(frozen=True)
class Wait:
    member: int


Decision = Stop | Continue | Explore | Exploit | Wait


class Population:
    """The members of one run and the decisions over them."""

    def __init__(
        self,
        members: Mapping[int, Member],
        policies: Policies,
        space: Mapping[str, Domain],
        rng: np.random.Generator,
        history: HistoryView | None = None,
    ) -> None:
        self.members: dict[int, Member] = dict(members)
        self.policies = policies
        self.space = dict(space)
        self.rng = rng
        self.history = history if history is not None else HistoryView(RunHistory())

    @classmethod
    def create(
        cls,
        size: int,
        seeds: Sequence[int],
        starting: Sequence[Mapping[str, Any]],
        policies: Policies,
        space: Mapping[str, Domain],
        rng: np.random.Generator,
        history: HistoryView | None = None,
    ) -> Population:
        members = {i: Member(id=i, seed=seeds[i], hyperparameters=dict(starting[i])) for i in range(size)}
        return cls(members, policies, space, rng, history)

    @classmethod
    def seeded(
        cls,
        seed: int | None,
        size: int,
        space: Mapping[str, Domain],
        given: Mapping[str, Any],
        initial: Sequence[Mapping[str, Any]] | None,
        policies: Policies,
        history: HistoryView | None = None,
    ) -> tuple[Population, int]:
        """A new population from one ``seed`` (None: drawn), and the seed's entropy (which
        repeats the run): the policies' stream and every member's seed are spawned from it."""
        sequence = np.random.SeedSequence(seed)
        policy_seed, *member_seeds = sequence.spawn(size + 1)
        rng = np.random.default_rng(policy_seed)
        starting = starting_hyperparameters(space, size, given, initial, rng)
        seeds = [int(member_seed.generate_state(1)[0]) for member_seed in member_seeds]
        return cls.create(size, seeds, starting, policies, space, rng, history), int(sequence.entropy)  # type: ignore[arg-type]

    # ---- where members stand -------------------------------------------------------------------
    def live(self) -> list[Member]:
        return [member for member in self.members.values() if not member.done]

    def ready_mark(self) -> int | None:
        """The ready point every live member has passed (None when all are done)."""
        live = [m for m in self.members.values() if not m.done]
        return min((max(m.last_ready_epoch, m.reached_ready_epoch) for m in live), default=None)

    def due(self, busy: Collection[int], max_lead: int) -> list[Member]:
        """Live members free to start a step: not running or waiting (``busy``), and not more
        than ``max_lead`` epochs ahead of the slowest live member."""
        live = self.live()
        slowest = min((member.epoch for member in live), default=0)
        # On an asynchronous executor a fast member would otherwise race ahead and be compared
        # with members many epochs behind; it waits for the slowest instead.
        return [m for m in live if m.id not in busy and m.epoch - slowest < max_lead]

    def stepped(
        self,
        member_id: int,
        epochs: int,
        score: float,
        fitness: float,
        metrics: Mapping[str, float],
        seconds: float = 0.0,
    ) -> None:
        """A member trained ``epochs`` more in ``seconds`` and scored ``score`` (``fitness``:
        higher is better)."""
        member = self.members[member_id]
        member.failed = False
        member.epoch += epochs
        member.steps += 1
        member.seconds_since_ready += seconds
        member.score, member.fitness = score, fitness
        member.metrics = dict(metrics)

    def failed(self, member_id: int) -> None:
        self.members[member_id].failed = True

    def stop_all(self) -> None:
        """The whole run stops (a target reached, a budget spent): every live member is done."""
        for member in self.live():
            member.done = True

    # ---- deciding ------------------------------------------------------------------------------
    def decide(self, member_ids: Sequence[int], running: Collection[int]) -> list[Decision]:
        """What each of ``member_ids`` (their steps just ended, or they wait) does next.

        ``running`` are the members still training (an asynchronous executor): a donor among
        them that is behind would step its copier back, so the copier trains on instead. Exploit
        decisions come last, worst member first, which is the order to record them in: a
        member's copy of a donor is recorded before the donor's own exploit (a donor ranks
        above the member copying it), and every copy reads its donor from before the decision.
        """
        healthy = [member for member in self.members.values() if member.healthy]
        failed = [self.members[i] for i in member_ids if self.members[i].failed]
        ranking = Ranking([m.snapshot() for m in healthy + failed], self.rng)
        decisions: list[Decision] = []
        copies: list[tuple[int, int, str]] = []
        for member_id in dict.fromkeys(member_ids):
            member = self.members[member_id]
            snapshot = ranking.get(member_id)
            if member.done:  # the whole run was stopped (a target score, a time budget)
                decisions.append(Stop(member_id))
            elif member.failed:
                donor = self._replacement(snapshot, ranking)
                if donor is None:
                    decisions.append(Wait(member_id))
                else:
                    copies.append((donor, member_id, "failure"))
            elif self.policies.stop.is_done(snapshot):
                decisions.append(Stop(member_id))
            elif self.policies.ready.is_ready(snapshot):
                decision = self._ready(member, snapshot, ranking, running)
                if isinstance(decision, tuple):
                    copies.append(decision)
                else:
                    decisions.append(decision)
            else:
                decisions.append(Continue(member_id))
        chosen: list[Mapping[str, Any]] = [d.hyperparameters for d in decisions if isinstance(d, Explore)]
        for donor_id, member_id, reason in sorted(copies, key=lambda copy: ranking.rank(copy[1])):
            donor = ranking.get(donor_id)
            new = self.explored(donor.hyperparameters, ranking.get(member_id), donor, chosen)
            chosen.append(new)
            decisions.append(
                Exploit(member_id, donor, new, reason, self._done_after_copy(member_id, donor, new))
            )
        return decisions

    def _done_after_copy(self, member_id: int, donor: MemberSnapshot, new: Mapping[str, Any]) -> bool:
        """Whether the member is done once it holds the donor's weights (asked now, so that
        applying the decision later runs none of the user's code)."""
        copy = dataclasses.replace(
            self.members[member_id].snapshot(),
            epoch=donor.epoch,
            hyperparameters=MappingProxyType(dict(new)),
            score=donor.score,
            fitness=donor.fitness,
            last_ready_epoch=donor.epoch,
            parent=donor.id,
            failed=False,
            seconds_since_ready=0.0,
        )
        return self.policies.stop.is_done(copy)

    def _ready(
        self, member: Member, snapshot: MemberSnapshot, ranking: Ranking, running: Collection[int]
    ) -> Decision | tuple[int, int, str]:
        """A ready member's decision, or ``(donor, member, "exploit")`` when it copies a donor
        (explored once every donor of the decision is chosen)."""
        if self.policies.exploit is None:
            # Explore without exploit: a ready member perturbs its own hyperparameters; with
            # explore off too, this is random search with the same compute.
            return Explore(member.id, self.explored(member.hyperparameters, snapshot, None, ()))
        donor = self.policies.exploit.donor(snapshot, ranking, self.rng)
        if donor is None or donor == member.id:
            return Continue(member.id, ready=True)
        self._check_donor(donor, ranking)
        if ranking.get(donor).epoch < member.epoch and donor in running:
            # Asynchronous runs only: the donor's score is from fewer epochs and it is still
            # training. Copying it now would step this member back (and redo epochs); it stays
            # ready and decides again after its next step (it has reached this ready point).
            return Continue(member.id, reached=True)
        return (donor, member.id, "exploit")

    def _replacement(self, failed: MemberSnapshot, ranking: Ranking) -> int | None:
        """A healthy donor for a failed member: the exploit strategy's pick, else the best."""
        healthy_ids = [m.id for m in ranking.ranked if not m.failed]
        if not healthy_ids:
            return None
        if self.policies.exploit is not None:
            donor = self.policies.exploit.donor(failed, ranking, self.rng)
            if donor in healthy_ids:
                return donor
        return healthy_ids[-1]

    def _check_donor(self, donor: Any, ranking: Ranking) -> None:
        if donor not in ranking or ranking.get(donor).failed:
            raise PyBTError(
                f"exploit_strategy {self.policies.exploit!r} returned donor {donor!r}, which is not a "
                f"healthy member of the population; return one of "
                f"{[m.id for m in ranking.ranked if not m.failed]} or None."
            )

    def explored(
        self,
        hyperparameters: Mapping[str, Any],
        member: MemberSnapshot,
        donor: MemberSnapshot | None,
        pending: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        """The explore strategy's new hyperparameters for ``member`` (which copied ``donor``, or
        explores its own), checked to lie in the space. ``pending`` are the hyperparameters
        already chosen in this decision, so a strategy can spread a batch out."""
        explore = self.policies.explore
        if explore is None:
            return dict(hyperparameters)
        context = ExploreContext(
            MappingProxyType(dict(hyperparameters)),
            self.space,
            self.rng,
            member,
            donor,
            self.history,
            tuple(pending),
        )
        explored = explore.explore_in(context)
        for name, domain in self.space.items():
            if name not in explored or not domain.contains(explored[name]):
                raise PyBTError(
                    f"explore_strategy {explore!r} returned {name}={explored.get(name)!r}, outside its "
                    f"domain {domain!r}; an explore strategy must return a value in the domain "
                    f"(Domain.perturb and Domain.sample do) for every hyperparameter."
                )
        return explored

    # ---- applying ------------------------------------------------------------------------------
    def apply(self, decision: Decision) -> None:
        """Update the bookkeeping for a decision the trainer carried out."""
        member = self.members[decision.member]
        if isinstance(decision, Stop):
            member.done = True
        elif isinstance(decision, Continue):
            if decision.ready:
                member.last_ready_epoch, member.seconds_since_ready = member.epoch, 0.0
            if decision.ready or decision.reached:
                member.reached_ready_epoch = member.epoch
        elif isinstance(decision, Explore):
            member.last_ready_epoch, member.seconds_since_ready = member.epoch, 0.0
            member.reached_ready_epoch = member.epoch
            member.hyperparameters = dict(decision.hyperparameters)
        elif isinstance(decision, Exploit):
            donor = decision.donor
            member.hyperparameters = dict(decision.hyperparameters)
            member.seconds_since_ready = 0.0
            member.epoch = member.last_ready_epoch = member.reached_ready_epoch = donor.epoch
            member.score, member.fitness, member.failed = donor.score, donor.fitness, False
            member.parent = donor.id
            member.done = member.done or decision.done

    # ---- checkpoints ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The members and the random state, as JSON-able values (for a checkpoint cut)."""
        return {
            "rng": self.rng.bit_generator.state,
            "members": [dataclasses.asdict(member) for member in self.members.values()],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back :meth:`state`; a state that does not fit this population is refused."""
        try:
            members = {int(m["id"]): Member(**m) for m in state["members"]}
            self.rng.bit_generator.state = state["rng"]
        except (KeyError, TypeError, ValueError) as error:
            raise invalid_argument(
                "run_dir", "a checkpoint of another shape", "a checkpoint written by this version of PyBT"
            ) from error
        self.members = members


# ---- set-up -------------------------------------------------------------------------------------
def starting_hyperparameters(
    space: Mapping[str, Domain],
    size: int,
    given: Mapping[str, Any],
    initial: Sequence[Mapping[str, Any]] | None,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Each member's first hyperparameters: sampled from the space; member 0 keeps what the
    user ``given`` (where it lies in the space); ``initial`` (one dict per member) wins."""
    if initial is not None:
        if isinstance(initial, (str, bytes, Mapping)) or not isinstance(initial, Sequence):
            raise invalid_argument("initial_hyperparameters", initial, "a list of dicts, one per member")
        if len(initial) != size:
            raise invalid_argument(
                "initial_hyperparameters",
                f"a list of {len(initial)}",
                f"one dict per member ({size})",
                "Give one dict per member, or None to sample them.",
            )
    kept = {name: value for name, value in given.items() if name in space and space[name].contains(value)}
    starting = []
    for i in range(size):
        values = {name: domain.sample(rng) for name, domain in space.items()}
        if i == 0:
            values.update(kept)
        if initial is not None:
            values.update(_checked_initial(space, i, initial[i]))
        starting.append(values)
    return starting


def _checked_initial(space: Mapping[str, Domain], index: int, values: Any) -> dict[str, Any]:
    argument = f"initial_hyperparameters[{index}]"
    if not isinstance(values, Mapping):
        raise invalid_argument(argument, values, "a dict {name: value}")
    unknown = sorted(set(values) - set(space))
    if unknown:
        raise invalid_argument(argument, unknown, f"names from the space {sorted(space)}")
    return {name: space[name].check(f"{argument}[{name!r}]", value) for name, value in values.items()}
