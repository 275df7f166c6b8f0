"""When a member has finished training.

Write your own by subclassing :class:`DoneStrategy` and implementing ``is_done``; it sees a
frozen :class:`~pybt.policy.snapshot.MemberSnapshot`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from pybt.errors import invalid_argument
from pybt.policy.snapshot import MemberSnapshot


class DoneStrategy(ABC):
    """Decides when one member stops training."""

    #: The most epochs a member can train, when the strategy knows it (for progress bars).
    max_epochs: int | None = None

    @abstractmethod
    def is_done(self, member: MemberSnapshot) -> bool:
        """True when ``member`` should train no further."""


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
