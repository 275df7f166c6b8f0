"""The records a run leaves behind: frozen, numbered, and readable like dicts.

Three kinds of frozen record, each numbered by a run-wide ``sequence`` (the order they were
made; a member can go back in epochs when it copies a donor that trained less):

- :class:`StepRecord`, one per member-step: ``member``, ``epoch`` (epochs its weights have
  trained), ``hyperparameters``, ``metrics`` (evaluated ones, and training ones as
  ``train_*``), ``score``, ``seconds``;
- :class:`ExploitRecord`, each time a member copies another: ``member``, ``donor``, ``epoch``
  (the donor's, which the member takes over), ``member_epoch`` (its own before),
  ``old_hyperparameters``, ``new_hyperparameters``, ``reason`` (``"exploit"``, or
  ``"failure"`` for a failed member replaced);
- :class:`FailureRecord`, per failed step: ``member``, ``epoch``, ``hyperparameters``, ``error``.

Records read like the dicts earlier versions of PyBT returned (``record["score"]``,
``record.get("reason")``, ``dict(record)``) as well as by attribute (``record.score``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar, overload


@functools.cache
def record_fields(kind: type) -> tuple[str, ...]:
    """The field names of a record class, in order."""
    return tuple(field.name for field in dataclasses.fields(kind))


class _Record(Mapping[str, Any]):
    """Dict-style reading of a frozen record (the keys are its fields)."""

    kind: ClassVar[str]
    sequence: int
    member: int

    def __getitem__(self, key: str) -> Any:
        if key in record_fields(type(self)):
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(record_fields(type(self)))

    def __len__(self) -> int:
        return len(record_fields(type(self)))

    def as_dict(self) -> dict[str, Any]:
        """A plain dict of the record (nested dicts copied)."""
        return {name: _copied(getattr(self, name)) for name in record_fields(type(self))}


def _copied(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


@dataclasses.dataclass(frozen=True, repr=True)
class StepRecord(_Record):
    """A member trained a step and was scored."""

    kind: ClassVar[str] = "steps"
    sequence: int
    member: int
    epoch: int
    hyperparameters: dict[str, Any]
    metrics: dict[str, float]
    score: float
    seconds: float


@dataclasses.dataclass(frozen=True, repr=True)
class ExploitRecord(_Record):
    """A member copied a donor's weights and hyperparameters (then explored)."""

    kind: ClassVar[str] = "exploits"
    sequence: int
    member: int
    donor: int
    epoch: int
    member_epoch: int
    old_hyperparameters: dict[str, Any]
    new_hyperparameters: dict[str, Any]
    reason: str = "exploit"


@dataclasses.dataclass(frozen=True, repr=True)
class FailureRecord(_Record):
    """A member's step failed (an exception, or a non-finite loss or score)."""

    kind: ClassVar[str] = "failures"
    sequence: int
    member: int
    epoch: int
    hyperparameters: dict[str, Any]
    error: str


Record = StepRecord | ExploitRecord | FailureRecord
RecordT = TypeVar("RecordT", StepRecord, ExploitRecord, FailureRecord)
RECORD_KINDS: dict[str, type[_Record]] = {
    kind.kind: kind for kind in (StepRecord, ExploitRecord, FailureRecord)
}


def as_record(kind: str, row: Mapping[str, Any]) -> Record:
    """A record of ``kind`` (``"steps"``, ``"exploits"``, ``"failures"``) from a dict-like row."""
    record_class = RECORD_KINDS[kind]
    if isinstance(row, record_class):
        return row  # type: ignore[return-value]
    names = record_fields(record_class)
    return record_class(**{name: _copied(row[name]) for name in names if name in row})  # type: ignore[return-value]


class RecordsView(Sequence[RecordT]):
    """A read-only, live view of a list of records (no copy per access)."""

    __slots__ = ("_items",)

    def __init__(self, items: list[RecordT]) -> None:
        self._items = items

    @overload
    def __getitem__(self, index: int) -> RecordT: ...
    @overload
    def __getitem__(self, index: slice) -> list[RecordT]: ...
    def __getitem__(self, index: int | slice) -> RecordT | list[RecordT]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (RecordsView, list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RecordsView({self._items!r})"
