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

from pybt.errors import invalid_argument
from pybt.executor.base import Executor
from pybt.history import RunHistory, Standing

RESULTS = ("final", "best_ever")


def check_result(result: Any) -> str:
    if result not in RESULTS:
        raise invalid_argument(
            "result", result, "'final' (the best member at the end) or 'best_ever' (the best state seen)"
        )
    return str(result)


@dataclass
class Kept:
    """A member's standing and its state at that moment."""

    standing: Standing
    state: dict[str, np.ndarray]


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
            self.kept = Kept(best, self.executor.get_state(best.member))
            self.changed = True

    def restore(self, standing: Mapping[str, Any], state: dict[str, np.ndarray]) -> None:
        self.kept = Kept(
            Standing(int(standing["member"]), int(standing["epoch"]), float(standing["score"])), state
        )
        self.changed = False
