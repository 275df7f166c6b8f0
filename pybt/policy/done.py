"""When a member has finished training, and when the whole run has.

Write your own by subclassing :class:`DoneStrategy` and implementing ``is_done``; it sees a
frozen :class:`~pybt.policy.snapshot.MemberSnapshot`. A strategy that can end the whole run
(a target score reached, a time budget spent) also overrides ``run_is_done``, which sees a
:class:`RunStatus` after every turn; when it says so, every member stops where it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

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


class StopAfter(DoneStrategy):
    """A member is done once its weights have trained ``epochs`` epochs."""

    def __init__(self, epochs: int) -> None:
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise invalid_argument("StopAfter(epochs)", epochs, "an integer >= 1", "e.g. StopAfter(20).")
        self.epochs = epochs
        self.max_epochs = epochs

    def is_done(self, member: MemberSnapshot) -> bool:
        return member.epoch >= self.epochs

    def __repr__(self) -> str:
        return f"StopAfter({self.epochs})"
