"""When a member may exploit the population.

Counted per member: a member is ready once it has trained ``epochs`` epochs since its own
last ready point (the original PyBT kept one counter for all members, so members took
turns instead of each being ready on its own schedule).

- :class:`ReadyAfter` counts epochs, optionally after a ``burn_in`` (no member is compared
  before its weights have trained that long: early scores say little);
- :class:`ReadyAfterSeconds` counts the wall time the member's own steps took, for steps
  whose cost varies with the hyperparameters (batch sizes, episode lengths);
- ``a | b`` (:class:`AnyOf`) is ready when either is.

Write your own by subclassing :class:`ReadyStrategy` and implementing ``is_ready``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from pybt import _validate
from pybt.errors import invalid_argument
from pybt.policy.snapshot import MemberSnapshot


class ReadyStrategy(ABC):
    """Decides when one member is ready to exploit and explore."""

    @abstractmethod
    def is_ready(self, member: MemberSnapshot) -> bool:
        """True when ``member`` should be compared against the population now."""

    def __or__(self, other: ReadyStrategy) -> AnyOf:
        return AnyOf(self, other)


class ReadyAfter(ReadyStrategy):
    """Ready every ``epochs`` epochs of the member's own training, and never before its weights
    have trained ``burn_in`` epochs."""

    # A class default, so that ReadyAfter(4) keeps its public attributes (what a run folder
    # compares) as they were before burn_in existed; a burn-in is set on the instance.
    burn_in: int = 0

    def __init__(self, epochs: int, burn_in: int = 0) -> None:
        if not _validate.is_integer(epochs) or epochs < 1:
            raise invalid_argument("ReadyAfter(epochs)", epochs, "an integer >= 1", "e.g. ReadyAfter(4).")
        self.epochs = int(epochs)
        burn_in = _validate.check_integer("ReadyAfter(burn_in=...)", burn_in, 0, "e.g. burn_in=10.")
        if burn_in:
            self.burn_in = burn_in

    def is_ready(self, member: MemberSnapshot) -> bool:
        return member.epoch >= self.burn_in and member.epoch - member.last_ready_epoch >= self.epochs

    def __repr__(self) -> str:
        burn_in = f", burn_in={self.burn_in}" if self.burn_in else ""
        return f"ReadyAfter({self.epochs}{burn_in})"


class ReadyAfterSeconds(ReadyStrategy):
    """Ready once the member's steps since its last ready point (or its last copy) took
    ``seconds`` of wall time (``MemberSnapshot.seconds_since_ready``).

    Counting time instead of epochs gives members whose steps cost more (a larger batch, longer
    episodes) as much training time between comparisons as the others, not as many epochs.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = _validate.check_real(
            "ReadyAfterSeconds(seconds)", seconds, 0, low_open=True, fix="e.g. ReadyAfterSeconds(60)."
        )

    def is_ready(self, member: MemberSnapshot) -> bool:
        return member.seconds_since_ready >= self.seconds

    def __repr__(self) -> str:
        return f"ReadyAfterSeconds({self.seconds:g})"


class AnyOf(ReadyStrategy):
    """Ready when any of ``strategies`` is (``ReadyAfter(4) | ReadyAfterSeconds(60)``)."""

    def __init__(self, *strategies: ReadyStrategy) -> None:
        flat: list[ReadyStrategy] = []
        for index, strategy in enumerate(strategies):
            _validate.check_instance(f"AnyOf(strategies[{index}])", strategy, ReadyStrategy, "ReadyAfter(4)")
            # (a | b) | c is one AnyOf of three, so its description and repr stay flat.
            flat.extend(strategy.strategies if isinstance(strategy, AnyOf) else (strategy,))
        if not flat:
            raise invalid_argument("AnyOf(*strategies)", (), "at least one ready strategy")
        self.strategies = tuple(flat)

    def is_ready(self, member: MemberSnapshot) -> bool:
        return any(strategy.is_ready(member) for strategy in self.strategies)

    def __repr__(self) -> str:
        return " | ".join(repr(strategy) for strategy in self.strategies)
