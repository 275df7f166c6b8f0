"""Ancestry and schedules, worked out from a run's step and exploit records.

Pure functions over the records of :mod:`pybt.history`, so the live trainer and a run
folder's journal answer the same way. A member's weights at an epoch were made by a chain of
*segments*: its own training since its last copy, the donor's training before that copy, the
donor's donor's, and so on back to a fresh initialization.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from pybt.records import ExploitRecord, StepRecord


class Segment(TypedDict):
    """A stretch of training a member's weights went through, on one member."""

    member: int
    from_epoch: int
    to_epoch: int


class ScheduleEntry(TypedDict):
    """The hyperparameters used from ``from_epoch`` to ``to_epoch``, on ``member``."""

    member: int
    from_epoch: int
    to_epoch: int
    hyperparameters: dict[str, Any]


def _last_exploit(exploits: Sequence[ExploitRecord], member: int, before: float) -> ExploitRecord | None:
    latest = None
    for event in exploits:
        if event.member == member and event.sequence < before:
            if latest is None or event.sequence > latest.sequence:
                latest = event
    return latest


def lineage_segments(
    member: int, epoch: int, exploits: Sequence[ExploitRecord], before: float = float("inf")
) -> list[tuple[Segment, float, float]]:
    """The chain of members whose training made ``member``'s weights at ``epoch``.

    Returns ``(segment, after_sequence, before_sequence)`` triples, oldest first; the two
    sequence bounds say which of that member's records belong to the segment.
    """
    chain: list[tuple[Segment, float, float]] = []
    current, end = member, epoch
    while True:
        event = _last_exploit(exploits, current, before)
        if event is None:
            chain.append((Segment(member=current, from_epoch=0, to_epoch=end), -1, before))
            break
        chain.append((Segment(member=current, from_epoch=event.epoch, to_epoch=end), event.sequence, before))
        current, end, before = event.donor, event.epoch, event.sequence
    chain.reverse()
    return chain


def lineage(
    member: int, epoch: int, exploits: Sequence[ExploitRecord], before: float = float("inf")
) -> list[Segment]:
    """The segments of training behind ``member`` at ``epoch`` (as of record ``before``), oldest first."""
    return [segment for segment, _, _ in lineage_segments(member, epoch, exploits, before)]


def lineage_steps(
    member: int,
    epoch: int,
    steps: Sequence[StepRecord],
    exploits: Sequence[ExploitRecord],
    until: float = float("inf"),
) -> list[StepRecord]:
    """The step records that trained ``member``'s weights up to ``epoch`` (as of record
    ``until``), oldest first."""
    chosen: list[StepRecord] = []
    ordered = sorted(steps, key=lambda row: row.sequence)
    for segment, after, before in lineage_segments(member, epoch, exploits, until):
        previous = segment["from_epoch"]
        for row in ordered:
            if (
                row.member == segment["member"]
                and after < row.sequence < before
                and previous < row.epoch <= segment["to_epoch"]
            ):
                chosen.append(row)
                previous = row.epoch
    return chosen


def schedule(
    member: int,
    epoch: int,
    steps: Sequence[StepRecord],
    exploits: Sequence[ExploitRecord],
    until: float = float("inf"),
) -> list[ScheduleEntry]:
    """The hyperparameters that trained ``member``'s weights up to ``epoch`` (as of record
    ``until``), step by step."""
    rows = lineage_steps(member, epoch, steps, exploits, until)
    # Each step starts where the one before it on the lineage ended: a copy takes over the
    # donor's epoch, which is the epoch of the donor's last step.
    starts = [0, *(row.epoch for row in rows[:-1])]
    return [
        ScheduleEntry(
            member=row.member, from_epoch=start, to_epoch=row.epoch, hyperparameters=dict(row.hyperparameters)
        )
        for start, row in zip(starts, rows, strict=True)
    ]


def merged_schedule(entries: Sequence[ScheduleEntry]) -> list[ScheduleEntry]:
    """Schedule entries merged into stretches trained by one member with unchanged hyperparameters."""
    merged: list[ScheduleEntry] = []
    for entry in entries:
        last = merged[-1] if merged else None
        if (
            last is not None
            and last["member"] == entry["member"]
            and last["hyperparameters"] == entry["hyperparameters"]
            and last["to_epoch"] == entry["from_epoch"]
        ):
            last["to_epoch"] = entry["to_epoch"]
        else:
            merged.append(ScheduleEntry(**{**entry, "hyperparameters": dict(entry["hyperparameters"])}))
    return merged
