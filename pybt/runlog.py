"""The run log: where records are made, numbered once, kept, and announced.

Every record of a run goes through :class:`RunLog` in two moves. :meth:`RunLog.keep` gives it
the next ``sequence`` number, commits it to the run folder's journal (when there is one) and
adds it to the run's :class:`~pybt.history.RunHistory` — journal first, so a failed write
changes nothing and the same record can be kept again. :meth:`RunLog.announce` then calls the
callbacks; a callback that fails stops the run, and no record is lost. On resume the log is
reloaded from the journal and numbering continues after its last kept record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pybt.callbacks.base import CallbackList
from pybt.history import ExploitRecord, FailureRecord, Record, RunHistory, StepRecord
from pybt.store import RunStore


class RunLog:
    """Numbers records and hands each to the journal, the history and the callbacks."""

    def __init__(self, history: RunHistory, store: RunStore | None, callbacks: CallbackList) -> None:
        self.history = history
        self.store = store
        self.callbacks = callbacks
        self.sequence = history.last_sequence
        self._noted: tuple[str | None, str | None] | None = None  # the objective the journal holds

    def keep(self, record: Record) -> Record:
        """Commit ``record`` (numbered with :meth:`next_sequence`) to the journal, then the history."""
        if self.store is not None:
            objective = (self.history.metric, self.history.mode)
            if objective != self._noted:  # resolved at the first step: readers need it too
                self.store.note_objective(*objective)
                self._noted = objective
            self.store.record(record)
        self.history.add(record)
        self.sequence = record.sequence
        return record

    def next_sequence(self) -> int:
        return self.sequence + 1

    def step(
        self,
        member: int,
        epoch: int,
        hyperparameters: Mapping[str, Any],
        metrics: Mapping[str, float],
        score: float,
        seconds: float,
    ) -> StepRecord:
        record = StepRecord(
            sequence=self.next_sequence(),
            member=member,
            epoch=epoch,
            hyperparameters=dict(hyperparameters),
            metrics=dict(metrics),
            score=score,
            seconds=seconds,
        )
        self.keep(record)
        return record

    def exploit(
        self,
        member: int,
        donor: int,
        epoch: int,
        member_epoch: int,
        old_hyperparameters: Mapping[str, Any],
        new_hyperparameters: Mapping[str, Any],
        reason: str,
    ) -> ExploitRecord:
        record = ExploitRecord(
            sequence=self.next_sequence(),
            member=member,
            donor=donor,
            epoch=epoch,
            member_epoch=member_epoch,
            old_hyperparameters=dict(old_hyperparameters),
            new_hyperparameters=dict(new_hyperparameters),
            reason=reason,
        )
        self.keep(record)
        return record

    def failure(
        self, member: int, epoch: int, hyperparameters: Mapping[str, Any], error: str
    ) -> FailureRecord:
        record = FailureRecord(
            sequence=self.next_sequence(),
            member=member,
            epoch=epoch,
            hyperparameters=dict(hyperparameters),
            error=error,
        )
        self.keep(record)
        return record

    def announce(self, record: Record) -> None:
        """Hand a kept record to the callbacks."""
        if isinstance(record, StepRecord):
            self.callbacks.step(record)
        elif isinstance(record, ExploitRecord):
            self.callbacks.exploit(record)
        else:
            self.callbacks.failure(record)

    def checkpoint(self, sequence: int) -> None:
        self.callbacks.checkpoint(sequence)

    def reload(self, records: Iterable[Record], metric: str | None, mode: str | None) -> None:
        """Start again from records kept in the journal (a resume): numbering continues after them."""
        self.history.set_objective(metric, mode)
        self.history.reload(records)
        self.sequence = self.history.last_sequence
