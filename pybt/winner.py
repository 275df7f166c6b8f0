"""The winner of a run: which member's weights ``train()`` returns, and keeping them.

``Trainer(result="final")`` (the default) returns the member that stands best when the run
ends — what the population converged to. ``result="best_ever"`` returns the best score seen
at the end of any turn, with the weights it had then: :class:`BestKeeper` keeps a copy of that
member's state whenever the best improves (and, with a run folder, writes it at each cut so a
resumed run keeps it too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pybt.errors import TrainingError, invalid_argument
from pybt.executor.base import Executor
from pybt.history import RunHistory, Standing
from pybt.model.base import ModelWrapper, member_with_state

RESULTS = ("final", "best_ever")


def check_result(result: Any) -> str:
    if result not in RESULTS:
        raise invalid_argument(
            "result", result, "'final' (the best member at the end) or 'best_ever' (the best state seen)"
        )
    return str(result)


@dataclass
class Kept:
    """A member's standing and its state at that moment (``sequence``: the newest record then)."""

    standing: Standing
    state: dict[str, np.ndarray]
    sequence: int


class BestKeeper:
    """Keeps a copy of the best state seen at the end of a turn."""

    def __init__(self, history: RunHistory, executor: Executor) -> None:
        self.history = history
        self.executor = executor
        self.kept: Kept | None = None
        self.changed = False  # kept since the last cut

    def note(self) -> None:
        """After a turn: if the best member now beats what is kept, keep its state."""
        best = self.history.best()
        if best is None:
            return
        if self.kept is None or self.history.fitness(best.score) > self.history.fitness(
            self.kept.standing.score
        ):
            self.kept = Kept(best, self.executor.get_state(best.member), self.history.last_sequence)
            self.changed = True

    def restore(self, entry: Mapping[str, Any], state: dict[str, np.ndarray]) -> None:
        """Take back a kept state written with a cut (``entry``: its standing and sequence)."""
        standing = Standing(int(entry["member"]), int(entry["epoch"]), float(entry["score"]))
        self.kept = Kept(standing, state, int(entry.get("sequence", self.history.last_sequence)))
        self.changed = False


@dataclass
class Winner:
    """What ``train()`` returns: where the winner stands and the user's model of it."""

    standing: Standing
    model: Any
    sequence: float = float("inf")  # where in the records it stood (a kept state: back then)
    state: dict[str, np.ndarray] | None = None  # its weights, when they were taken out already
    member: ModelWrapper | None = None  # a wrapper holding them, when one was built

    def weights(
        self, executor: Executor, template: ModelWrapper, seeds: Mapping[int, int]
    ) -> tuple[dict[str, np.ndarray], ModelWrapper]:
        """Its state, and a member of ``template`` holding it (to write and export it)."""
        state = self.state if self.state is not None else executor.get_state(self.standing.member)
        member = self.member or member_with_state(template, seeds[self.standing.member], state)
        return state, member


def choose_winner(
    history: RunHistory,
    keeper: BestKeeper | None,
    executor: Executor,
    template: ModelWrapper,
    seeds: Mapping[int, int],
) -> Winner:
    """The best member now, or (``result="best_ever"``) the kept state when it scored better."""
    best = history.best()
    if best is None:
        raise TrainingError("No member has a score: no step has completed.")
    kept = keeper.kept if keeper is not None else None
    if kept is not None and history.fitness(kept.standing.score) > history.fitness(best.score):
        member = member_with_state(template, seeds[kept.standing.member], kept.state)
        return Winner(kept.standing, member.unwrap(), kept.sequence + 0.5, kept.state, member)
    return Winner(best, executor.model(best.member))


def winner_point(history: RunHistory, keeper: BestKeeper | None) -> tuple[int, float] | None:
    """``(member, before)``: whose weights ``train()`` returns and where in the records they
    stood (``before`` a sequence bound), without building the model; None before any step."""
    best = history.best()
    if best is None:
        return None
    kept = keeper.kept if keeper is not None else None
    if kept is not None and history.fitness(kept.standing.score) > history.fitness(best.score):
        return kept.standing.member, kept.sequence + 0.5
    return best.member, float("inf")
