"""When a member has finished training, and when the whole run has.

- :class:`StopAfter` stops each member once its weights have trained ``epochs`` epochs;
- :class:`StopWhen` stops the whole run once any step scores ``score`` or better;
- :class:`Budget` stops the whole run once ``train()`` has spent ``seconds`` of wall time;
- ``a | b`` (:class:`AnyOf`) stops at whichever comes first:
  ``StopAfter(100) | StopWhen(score=0.99) | Budget(seconds=3600)``.

When the whole run stops, every member stops where it is (members finish the steps they are
running), and ``train()`` returns the best member as usual.

Write your own by subclassing :class:`DoneStrategy` and implementing ``is_done``; it sees a
frozen :class:`~pybt.policy.snapshot.MemberSnapshot`. A strategy that can end the whole run
(a target score reached, a time budget spent) also overrides ``run_is_done``, which sees a
:class:`RunStatus` after every turn.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from pybt import _validate
from pybt.errors import invalid_argument
from pybt.history import HistoryView
from pybt.policy.snapshot import MemberSnapshot


@dataclass(frozen=True)
class RunStatus:
    """The run as a whole, for ``run_is_done``: its records, and the wall time ``train()`` has
    spent so far in this process (every call of it on the trainer together)."""

    history: HistoryView
    seconds: float


class DoneStrategy(ABC):
    """Decides when one member stops training (and, optionally, when the whole run does)."""

    #: The most epochs a member can train, when the strategy knows it (for progress bars).
    max_epochs: int | None = None

    @abstractmethod
    def is_done(self, member: MemberSnapshot) -> bool:
        """True when ``member`` should train no further."""

    def run_is_done(self, run: RunStatus) -> bool:
        """True when the whole run should stop now (default: never; members stop on their own)."""
        return False

    def __or__(self, other: DoneStrategy) -> AnyOf:
        return AnyOf(self, other)


class StopAfter(DoneStrategy):
    """A member is done once its weights have trained ``epochs`` epochs."""

    def __init__(self, epochs: int) -> None:
        if not _validate.is_integer(epochs) or epochs < 1:
            raise invalid_argument("StopAfter(epochs)", epochs, "an integer >= 1", "e.g. StopAfter(20).")
        self.epochs = int(epochs)
        self.max_epochs = self.epochs

    def is_done(self, member: MemberSnapshot) -> bool:
        return member.epoch >= self.epochs

    def __repr__(self) -> str:
        return f"StopAfter({self.epochs})"


class StopWhen(DoneStrategy):
    """The whole run stops once any step has scored ``score`` or better (higher when the run
    maximizes its metric, lower when it minimizes).

    No member stops on its own, so combine it with a bound: ``StopAfter(100) | StopWhen(score=0.99)``.
    """

    def __init__(self, *, score: float) -> None:
        self.score = _validate.check_real("StopWhen(score=...)", score, fix="e.g. StopWhen(score=0.99).")

    def is_done(self, member: MemberSnapshot) -> bool:
        return False

    def run_is_done(self, run: RunStatus) -> bool:
        best = run.history.best_ever()
        # fitness() turns scores so that higher is better, by the run's mode.
        return best is not None and run.history.fitness(best.score) >= run.history.fitness(self.score)

    def __repr__(self) -> str:
        return f"StopWhen(score={self.score:g})"


class Budget(DoneStrategy):
    """The whole run stops once ``train()`` has spent ``seconds`` of wall time in this process
    (every call of it on the trainer together; a run resumed in a new process starts again
    from zero). The steps running then are finished, so a run overshoots by up to one step."""

    def __init__(self, *, seconds: float) -> None:
        self.seconds = _validate.check_real(
            "Budget(seconds=...)", seconds, 0, low_open=True, fix="e.g. Budget(seconds=3600)."
        )

    def is_done(self, member: MemberSnapshot) -> bool:
        return False

    def run_is_done(self, run: RunStatus) -> bool:
        return run.seconds >= self.seconds

    def __repr__(self) -> str:
        return f"Budget(seconds={self.seconds:g})"


class AnyOf(DoneStrategy):
    """Done when any of ``criteria`` is: a member when one of them stops it, the whole run when
    one of them ends it. ``a | b`` builds one."""

    def __init__(self, *criteria: DoneStrategy) -> None:
        flat: list[DoneStrategy] = []
        for index, criterion in enumerate(criteria):
            _validate.check_instance(f"AnyOf(criteria[{index}])", criterion, DoneStrategy, "StopAfter(20)")
            # (a | b) | c is one AnyOf of three, so its description and repr stay flat.
            flat.extend(criterion.criteria if isinstance(criterion, AnyOf) else (criterion,))
        if not flat:
            raise invalid_argument("AnyOf(*criteria)", (), "at least one stopping criterion")
        self.criteria = tuple(flat)

    @property  # type: ignore[override]
    def max_epochs(self) -> int | None:
        """The tightest bound among the criteria that have one: the first to stop a member wins."""
        bounds = [c.max_epochs for c in self.criteria if c.max_epochs is not None]
        return min(bounds) if bounds else None

    def is_done(self, member: MemberSnapshot) -> bool:
        return any(criterion.is_done(member) for criterion in self.criteria)

    def run_is_done(self, run: RunStatus) -> bool:
        return any(criterion.run_is_done(run) for criterion in self.criteria)

    def __repr__(self) -> str:
        return " | ".join(repr(criterion) for criterion in self.criteria)
