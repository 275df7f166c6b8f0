"""Frozen views of members, the only thing policies see.

The trainer builds a :class:`Population` once per decision, so every policy call in that
decision ranks members the same way, ties included.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MemberSnapshot:
    """A read-only picture of one member at one moment.

    ``fitness`` is the score turned so that higher is always better (``-score`` when the
    trainer minimizes) and ``-inf`` for a member with no usable score (it failed, or has not
    been evaluated). ``score`` is the evaluated metric as the user sees it.
    ``seconds_since_ready`` is the wall time its steps took since its last ready point.
    """

    id: int
    epoch: int
    hyperparameters: Mapping[str, Any]
    score: float | None = None
    fitness: float = -math.inf
    last_ready_epoch: int = 0
    steps: int = 0
    parent: int | None = None
    failed: bool = False
    seconds_since_ready: float = 0.0  # training time since its last ready point (or copy)


class Population:
    """The members a decision compares, with ties broken by one random draw.

    ``ranked`` lists them worst first. Members with equal fitness are ordered by a random
    permutation fixed when the population is built, so equal members still mix, and two
    calls in the same decision never disagree on who is better.
    """

    __slots__ = ("_position", "ranked")

    def __init__(self, members: Iterable[MemberSnapshot], rng: np.random.Generator) -> None:
        members = tuple(members)
        tiebreak = rng.permutation(len(members))
        order = sorted(range(len(members)), key=lambda i: (members[i].fitness, tiebreak[i]))
        self.ranked: tuple[MemberSnapshot, ...] = tuple(members[i] for i in order)
        self._position = {member.id: position for position, member in enumerate(self.ranked)}

    def __len__(self) -> int:
        return len(self.ranked)

    def __contains__(self, member_id: object) -> bool:
        return member_id in self._position

    def rank(self, member_id: int) -> int:
        """The position of a member in ``ranked`` (0 = worst)."""
        return self._position[member_id]

    def get(self, member_id: int) -> MemberSnapshot:
        return self.ranked[self._position[member_id]]
