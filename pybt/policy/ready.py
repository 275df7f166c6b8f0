"""When a member may exploit the population.

Counted per member: a member is ready once it has trained ``epochs`` epochs since its own
last ready point (the original PyBT kept one counter for all members, so members took
turns instead of each being ready on its own schedule).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from pybt.errors import invalid_argument
from pybt.policy.snapshot import MemberSnapshot


class ReadyStrategy(ABC):
    """Decides when one member is ready to exploit and explore."""

    @abstractmethod
    def is_ready(self, member: MemberSnapshot) -> bool:
        """True when ``member`` should be compared against the population now."""


class ReadyAfter(ReadyStrategy):
    """Ready every ``epochs`` epochs of the member's own training."""

    def __init__(self, epochs: int) -> None:
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise invalid_argument("ReadyAfter(epochs)", epochs, "an integer >= 1", "e.g. ReadyAfter(4).")
        self.epochs = epochs

    def is_ready(self, member: MemberSnapshot) -> bool:
        return member.epoch - member.last_ready_epoch >= self.epochs

    def __repr__(self) -> str:
        return f"ReadyAfter({self.epochs})"
