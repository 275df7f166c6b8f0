"""The trainer's record of one member, and the rows a run leaves behind.

A :class:`Member` is the trainer's mutable bookkeeping (never handed to policies: they get
its frozen :meth:`Member.snapshot`). The run's rows are plain dicts so they print, compare
and serialize without PyBT:

- a *step* row per member-step: ``member``, ``epoch`` (epochs completed), ``hyperparameters``,
  ``metrics``, ``score``, ``seconds``;
- an *exploit* row each time a member copies another: ``member``, ``donor``, ``epoch`` (the
  donor's epoch, which the member takes over), ``member_epoch`` (the member's own before),
  ``old_hyperparameters``, ``new_hyperparameters``, ``reason`` (``"exploit"`` or ``"failure"``);
- a *failure* row per failed step: ``member``, ``epoch``, ``hyperparameters``, ``error``.

Every row also carries ``sequence``, a run-wide counter that orders rows across members
(a member can go back in epochs when it copies a donor that has trained less).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pybt.policy.snapshot import MemberSnapshot


@dataclass
class Member:
    """Where one member of the population stands."""

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
        )

    @property
    def healthy(self) -> bool:
        """Evaluated, and its latest step did not fail: it can be compared and copied."""
        return not self.failed and math.isfinite(self.fitness)
