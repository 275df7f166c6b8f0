"""What a run tells, answered from its :class:`~pybt.history.RunHistory`: the part of the
:class:`~pybt.trainer.Trainer` a user reads after (or while) it trains."""

from __future__ import annotations

import math
from typing import Any

from pybt.errors import TrainingError, invalid_argument
from pybt.history import ExploitRecord, FailureRecord, RunHistory, StepRecord
from pybt.lineage import ScheduleEntry, Segment
from pybt.winner import BestKeeper, winner_point

_PLOTS = ("scores", "metrics", "hyperparameters", "lineage", "schedule")


class RunResults:
    """Results of a run, for a class that has ``run_history`` and ``population_size``."""

    run_history: RunHistory
    population_size: int
    space: dict[str, Any]
    _keeper: BestKeeper | None

    @property
    def metric(self) -> str | None:
        """The scored metric (known once the first step is evaluated, unless named)."""
        return self.run_history.metric

    @property
    def mode(self) -> str | None:
        """``"max"`` or ``"min"``: which way the score is better."""
        return self.run_history.mode

    @property
    def history(self) -> list[StepRecord]:
        """One record per completed member-step, in the order they were made."""
        return list(self.run_history.steps)

    @property
    def exploits(self) -> list[ExploitRecord]:
        """One record per exploit (and per failed member replaced), in order."""
        return list(self.run_history.exploits)

    @property
    def failures(self) -> list[FailureRecord]:
        """One record per failed step, with the error."""
        return list(self.run_history.failures)

    @property
    def best_member(self) -> int:
        """The id of the member whose weights ``train()`` returns (the best now, or with
        ``result="best_ever"`` the one whose best state was kept)."""
        return self._winner_point()[0]

    def lineage(self, member_id: int | None = None) -> list[Segment]:
        """The members whose training made ``member_id``'s weights (default: the winner's, as
        ``train()`` returns them), oldest first."""
        return self.run_history.lineage(*self._point(member_id))

    def schedule(self, member_id: int | None = None) -> list[ScheduleEntry]:
        """The hyperparameters, epoch by epoch, that trained ``member_id``'s weights (default:
        the winner's, as ``train()`` returns them)."""
        return self.run_history.schedule(*self._point(member_id))

    def _winner_point(self) -> tuple[int, float]:
        point = winner_point(self.run_history, self._keeper)
        if point is None:
            raise TrainingError("No member has a score: train() has not completed a step yet.")
        return point

    def _point(self, member_id: int | None) -> tuple[int | None, float]:
        if member_id is not None:
            return self._member_id(member_id), math.inf
        return self._winner_point() if self.run_history.best() is not None else (None, math.inf)

    def history_frame(self) -> Any:
        """``history`` as a pandas DataFrame (hyperparameters as ``hp_*``, metrics as ``metric_*``)."""
        return self.run_history.frame()

    def plot(self, what: str = "scores", member: int | None = None) -> Any:
        """A matplotlib Figure of the run so far: ``"scores"`` of every member over epochs,
        every metric (``"metrics"``, losses included), ``"hyperparameters"`` over epochs, the
        ``"lineage"`` or the ``"schedule"`` of ``member`` (default: the best). Needs
        ``pip install 'pybt[plot]'``."""
        if what not in _PLOTS:
            raise invalid_argument("what", what, f"one of {list(_PLOTS)}")
        from pybt import report

        draw = getattr(report, f"plot_{what}")
        if what == "lineage":
            return draw(self.run_history, self._member_id(member))
        if what == "schedule":
            return draw(self.run_history, self._member_id(member), space=self.space)
        if what == "hyperparameters":
            return draw(self.run_history, space=self.space)
        return draw(self.run_history)

    def _member_id(self, member_id: int | None) -> int | None:
        if member_id is not None and member_id not in self._population.members:
            raise invalid_argument("member_id", member_id, f"a member id in 0..{self.population_size - 1}")
        return member_id
