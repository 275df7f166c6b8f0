"""One reading of a run's records: :class:`RunHistory`, and the read-only :class:`HistoryView`.

A :class:`RunHistory` holds a run's records (see :mod:`pybt.records`), live (the trainer adds
them as they are made) or loaded from a run folder's journal, and answers every question about
the run the same way for both: where each member stands, the best member now, the best score
ever seen, lineage, schedule, and a pandas frame. "Who is best" is decided here and nowhere
else.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from pybt._imports import require
from pybt.errors import invalid_argument
from pybt.lineage import ScheduleEntry, Segment, lineage, lineage_segments, lineage_steps, schedule
from pybt.objective import check_mode, fitness
from pybt.records import (
    RECORD_KINDS,
    ExploitRecord,
    FailureRecord,
    Record,
    RecordsView,
    StepRecord,
    as_record,
    record_fields,
)

__all__ = [
    "RECORD_KINDS",
    "ExploitRecord",
    "FailureRecord",
    "HistoryView",
    "Record",
    "RecordsView",
    "RunHistory",
    "Standing",
    "StepRecord",
    "Stretch",
    "as_record",
    "record_fields",
]


class Standing(NamedTuple):
    """Where a member's weights stand: the epochs they have trained and their score."""

    member: int
    epoch: int
    score: float


class RunHistory:
    """A run's records in the order they were made, and what they tell.

    ``metric`` and ``mode`` say what the score is and which way is better (a ``None`` mode
    reads as ``"max"``). Records are added in increasing ``sequence``.
    """

    def __init__(self, records: Iterable[Record] = (), *, metric: str | None = None, mode: str | None = None):
        self.metric = metric
        self.mode = check_mode(mode)
        self.reload(records)

    def reload(self, records: Iterable[Record]) -> None:
        """Hold exactly ``records`` (in any order) instead of what it held."""
        self._steps: list[StepRecord] = []
        self._exploits: list[ExploitRecord] = []
        self._failures: list[FailureRecord] = []
        # Each member's records, and their sequence numbers (for looking back in time).
        self._events: dict[int, list[Record]] = {}
        self._sequences: dict[int, list[int]] = {}
        self._now: dict[int, Standing | None] = {}
        self._best_ever: StepRecord | None = None
        self._best_ever_fitness = -math.inf
        self.last_sequence = 0
        for record in sorted(records, key=lambda r: r.sequence):
            self.add(record)

    @classmethod
    def from_rows(
        cls,
        steps: Iterable[Mapping[str, Any]] = (),
        exploits: Iterable[Mapping[str, Any]] = (),
        failures: Iterable[Mapping[str, Any]] = (),
        *,
        metric: str | None = None,
        mode: str | None = None,
    ) -> RunHistory:
        """A history from dict-like rows of each kind (records, or dicts with their fields)."""
        records = [
            *(as_record("steps", row) for row in steps),
            *(as_record("exploits", row) for row in exploits),
            *(as_record("failures", row) for row in failures),
        ]
        return cls(records, metric=metric, mode=mode)

    def set_objective(self, metric: str | None, mode: str | None) -> None:
        """Say what the score is once it is known (the trainer resolves it at the first step)."""
        self.metric, self.mode = metric, check_mode(mode)
        self._best_ever, self._best_ever_fitness = None, -math.inf
        for step in self._steps:
            self._note_best(step)

    # ---- adding ---------------------------------------------------------------------------
    def add(self, record: Record) -> None:
        if record.sequence <= self.last_sequence:
            raise ValueError(
                f"records are added in increasing sequence: {record.sequence} after {self.last_sequence}"
            )
        self.last_sequence = record.sequence
        member = record.member
        self._events.setdefault(member, []).append(record)
        self._sequences.setdefault(member, []).append(record.sequence)
        if isinstance(record, StepRecord):
            self._steps.append(record)
            self._now[member] = Standing(member, record.epoch, record.score)
            self._note_best(record)
        elif isinstance(record, ExploitRecord):
            self._exploits.append(record)
            # The donor's standing from before this decision: a member's copy is recorded
            # before its donor's own exploit in the same decision (the trainer sees to it).
            donor = self._now.get(record.donor)
            self._now[member] = None if donor is None else Standing(member, donor.epoch, donor.score)
        else:
            self._failures.append(record)
            self._now[member] = None

    def _note_best(self, step: StepRecord) -> None:
        fitness = self.fitness(step.score)
        if self._best_ever is None or fitness > self._best_ever_fitness:
            self._best_ever, self._best_ever_fitness = step, fitness

    # ---- the records ------------------------------------------------------------------------
    @property
    def steps(self) -> RecordsView[StepRecord]:
        return RecordsView(self._steps)

    @property
    def exploits(self) -> RecordsView[ExploitRecord]:
        return RecordsView(self._exploits)

    @property
    def failures(self) -> RecordsView[FailureRecord]:
        return RecordsView(self._failures)

    def records(self) -> list[Record]:
        """Every record, in the order they were made."""
        return sorted([*self._steps, *self._exploits, *self._failures], key=lambda record: record.sequence)

    def __len__(self) -> int:
        return len(self._steps) + len(self._exploits) + len(self._failures)

    @property
    def members(self) -> list[int]:
        """Every member the records mention (donors included), in id order."""
        return sorted({*self._events, *(record.donor for record in self._exploits)})

    def member_records(self, member: int) -> list[Record]:
        """``member``'s own records, in order."""
        return list(self._events.get(member, ()))

    # ---- standings --------------------------------------------------------------------------
    def fitness(self, score: float | None) -> float:
        """``score`` turned so that higher is better, by this run's mode."""
        return fitness(score, self.mode)

    def standing(self, member: int, before: float = math.inf) -> Standing | None:
        """Where ``member``'s weights stood just before record ``before`` (a sequence number).

        A member that last copied a donor stands where the donor stood then; one whose last
        step failed, or that has not stepped yet, has no standing (``None``).
        """
        if before > self.last_sequence:
            return self._now.get(member)
        current, bound = member, before
        while True:
            earlier = bisect.bisect_left(self._sequences.get(current, []), bound)
            if earlier == 0:
                return None
            record = self._events[current][earlier - 1]
            if isinstance(record, FailureRecord):
                return None
            if isinstance(record, StepRecord):
                return Standing(member, record.epoch, record.score)
            current, bound = record.donor, record.sequence

    def best(self) -> Standing | None:
        """The member with the best score where it stands now (ties: the lowest id), or None.

        This is what ``Trainer.train()`` returns at the end of a run.
        """
        ranked = [standing for standing in self._now.values() if standing is not None]
        if not ranked:
            return None
        return max(ranked, key=lambda s: (self.fitness(s.score), -s.member))

    def best_ever(self) -> StepRecord | None:
        """The step with the best score any member ever had (the first of equals), or None."""
        return self._best_ever

    def resolve(self, member: int | None = None, before: float = math.inf) -> Standing | None:
        """``member``'s standing (just before record ``before``), or the best member's now when
        ``member`` is None."""
        if member is None:
            return self.best()
        if member not in self.members:
            raise invalid_argument("member", member, f"one of the members in the run {self.members}")
        return self.standing(member, before)

    # ---- ancestry ---------------------------------------------------------------------------
    # Each takes a member (default: the best now) and optionally ``before``, a sequence bound:
    # the weights as they stood then (a state kept earlier, as result="best_ever" returns).
    def lineage(self, member: int | None = None, before: float = math.inf) -> list[Segment]:
        """The members whose training made ``member``'s weights, oldest first."""
        where = self.resolve(member, before)
        return [] if where is None else lineage(where.member, where.epoch, self._exploits, before)

    def lineage_steps(self, member: int | None = None, before: float = math.inf) -> list[StepRecord]:
        """The steps that trained ``member``'s weights, oldest first."""
        where = self.resolve(member, before)
        if where is None:
            return []
        return lineage_steps(where.member, where.epoch, self._steps, self._exploits, before)

    def lineage_exploits(self, member: int | None = None, before: float = math.inf) -> list[ExploitRecord]:
        """The exploits on ``member``'s ancestry, oldest first."""
        where = self.resolve(member, before)
        if where is None:
            return []
        segments = lineage_segments(where.member, where.epoch, self._exploits, before)
        sequences = {after for _, after, _ in segments}
        return [record for record in self._exploits if record.sequence in sequences]

    def schedule(self, member: int | None = None, before: float = math.inf) -> list[ScheduleEntry]:
        """The hyperparameters, step by step, that trained ``member``'s weights."""
        where = self.resolve(member, before)
        return (
            [] if where is None else schedule(where.member, where.epoch, self._steps, self._exploits, before)
        )

    def stretches(self, member: int) -> list[Stretch]:
        """``member``'s training cut at each exploit: a stretch starts at 0 or at a donor's epoch."""
        result = [Stretch(member, 0, None, [])]
        for record in self._events.get(member, ()):
            if isinstance(record, ExploitRecord):
                result.append(Stretch(member, record.epoch, record, []))
            elif isinstance(record, StepRecord):
                result[-1].steps.append(record)
        return result

    # ---- tables -----------------------------------------------------------------------------
    def hyperparameter_names(self) -> list[str]:
        """Every hyperparameter name in the records, in first-seen order."""
        names: dict[str, None] = {}
        for step in self._steps:
            names.update(dict.fromkeys(step.hyperparameters))
        for exploit in self._exploits:
            names.update(dict.fromkeys(exploit.old_hyperparameters))
            names.update(dict.fromkeys(exploit.new_hyperparameters))
        return list(names)

    def flat(self) -> tuple[list[str], list[dict[str, Any]]]:
        """The steps as flat rows (columns, rows): hyperparameters as ``hp_<name>``, metrics as
        ``metric_<name>``, in recorded order; a value a row lacks is None."""
        hp_names: dict[str, None] = {}
        metric_names: dict[str, None] = {}
        for step in self._steps:
            hp_names.update(dict.fromkeys(step.hyperparameters))
            metric_names.update(dict.fromkeys(step.metrics))
        columns = [
            *_FIRST_COLUMNS,
            *(f"hp_{name}" for name in hp_names),
            *(f"metric_{name}" for name in metric_names),
        ]
        rows = []
        for step in self._steps:
            row: dict[str, Any] = {name: getattr(step, name) for name in _FIRST_COLUMNS}
            row.update({f"hp_{name}": step.hyperparameters.get(name) for name in hp_names})
            row.update({f"metric_{name}": step.metrics.get(name) for name in metric_names})
            rows.append(row)
        return columns, rows

    def frame(self) -> Any:
        """The steps as a pandas DataFrame (columns as :meth:`flat`); needs pandas."""
        pandas = require("pandas", "pandas")
        columns, rows = self.flat()
        return pandas.DataFrame.from_records(rows, columns=columns)


_FIRST_COLUMNS = ("member", "epoch", "score", "seconds", "sequence")


class Stretch(NamedTuple):
    """A member's own training between two exploits: where it started and the steps it took."""

    member: int
    start_epoch: int
    exploit: ExploitRecord | None  # the exploit that started the stretch; None for the first
    steps: list[StepRecord]


class HistoryView:
    """A read-only window on a :class:`RunHistory` (what policies are given): every question
    it answers, none of the ways to change it. It follows the history as records are added."""

    __slots__ = ("_history",)

    def __init__(self, history: RunHistory) -> None:
        self._history = history

    @property
    def metric(self) -> str | None:
        return self._history.metric

    @property
    def mode(self) -> str | None:
        return self._history.mode

    @property
    def steps(self) -> RecordsView[StepRecord]:
        return self._history.steps

    @property
    def exploits(self) -> RecordsView[ExploitRecord]:
        return self._history.exploits

    @property
    def failures(self) -> RecordsView[FailureRecord]:
        return self._history.failures

    @property
    def members(self) -> list[int]:
        return self._history.members

    def __len__(self) -> int:
        return len(self._history)

    def records(self) -> list[Record]:
        return self._history.records()

    def member_records(self, member: int) -> list[Record]:
        return self._history.member_records(member)

    def fitness(self, score: float | None) -> float:
        return self._history.fitness(score)

    def standing(self, member: int, before: float = math.inf) -> Standing | None:
        return self._history.standing(member, before)

    def best(self) -> Standing | None:
        return self._history.best()

    def best_ever(self) -> StepRecord | None:
        return self._history.best_ever()
