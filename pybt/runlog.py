"""The run log: where records are made, numbered once, and handed on.

Every record of a run goes through :class:`RunLog`: it takes the next ``sequence`` number,
adds the record to the run's :class:`~pybt.history.RunHistory`, commits it to the run
folder's journal (when there is one) and then calls the callbacks. The journal comes first,
so a callback that fails never loses a record. On resume the log is reloaded from the
journal and numbering continues after its last kept record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pybt.callbacks.base import CallbackList
from pybt.history import ExploitRecord, FailureRecord, Record, RunHistory, StepRecord
from pybt.store import RunStore


class RunLog:
    """Numbers records and hands each to the history, the journal and the callbacks."""

    def __init__(self, history: RunHistory, store: RunStore | None, callbacks: CallbackList) -> None:
        self.history = history
        self.store = store
        self.callbacks = callbacks
        self.sequence = history.last_sequence

    def _next(self) -> int:
        self.sequence += 1
        return self.sequence

    def _keep(self, record: Record) -> None:
        self.history.add(record)
        if self.store is not None:
            self.store.record(record)

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
            sequence=self._next(),
            member=member,
            epoch=epoch,
            hyperparameters=dict(hyperparameters),
            metrics=dict(metrics),
            score=score,
            seconds=seconds,
        )
        self._keep(record)
        self.callbacks.step(record)
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
            sequence=self._next(),
            member=member,
            donor=donor,
            epoch=epoch,
            member_epoch=member_epoch,
            old_hyperparameters=dict(old_hyperparameters),
            new_hyperparameters=dict(new_hyperparameters),
            reason=reason,
        )
        self._keep(record)
        self.callbacks.exploit(record)
        return record

    def failure(
        self, member: int, epoch: int, hyperparameters: Mapping[str, Any], error: str
    ) -> FailureRecord:
        record = FailureRecord(
            sequence=self._next(),
            member=member,
            epoch=epoch,
            hyperparameters=dict(hyperparameters),
            error=error,
        )
        self._keep(record)
        self.callbacks.failure(record)
        return record

    def checkpoint(self, sequence: int) -> None:
        self.callbacks.checkpoint(sequence)

    def reload(self, records: Iterable[Record], metric: str | None, mode: str | None) -> None:
        """Start again from records kept in the journal (a resume): numbering continues after them."""
        self.history.set_objective(metric, mode)
        self.history.reload(records)
        self.sequence = self.history.last_sequence
