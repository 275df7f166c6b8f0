"""Ancestry and schedules, worked out from a run's step and exploit rows.

These are pure functions over the rows described in :mod:`pybt.member`, so the live
trainer and a run folder's journal answer the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict


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


def _last_exploit(exploits: Sequence[dict[str, Any]], member: int, before: float) -> dict[str, Any] | None:
    latest = None
    for event in exploits:
        if event["member"] == member and event["sequence"] < before:
            if latest is None or event["sequence"] > latest["sequence"]:
                latest = event
    return latest


def lineage_segments(
    member: int, epoch: int, exploits: Sequence[dict[str, Any]], before: float = float("inf")
) -> list[tuple[Segment, float, float]]:
    """The chain of members whose training made ``member``'s weights at ``epoch``.

    Returns ``(segment, after_sequence, before_sequence)`` triples, oldest first; the two
    sequence bounds say which of that member's rows belong to the segment.
    """
    chain: list[tuple[Segment, float, float]] = []
    current, end = member, epoch
    while True:
        event = _last_exploit(exploits, current, before)
        if event is None:
            chain.append((Segment(member=current, from_epoch=0, to_epoch=end), -1, before))
            break
        chain.append(
            (Segment(member=current, from_epoch=event["epoch"], to_epoch=end), event["sequence"], before)
        )
        current, end, before = event["donor"], event["epoch"], event["sequence"]
    chain.reverse()
    return chain


def lineage(member: int, epoch: int, exploits: Sequence[dict[str, Any]]) -> list[Segment]:
    """The segments of training behind ``member`` at ``epoch``, oldest first."""
    return [segment for segment, _, _ in lineage_segments(member, epoch, exploits)]


def lineage_steps(
    member: int, epoch: int, steps: Sequence[dict[str, Any]], exploits: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The step rows that trained ``member``'s weights up to ``epoch``, oldest first."""
    chosen: list[dict[str, Any]] = []
    ordered = sorted(steps, key=lambda row: row["sequence"])
    for segment, after, before in lineage_segments(member, epoch, exploits):
        previous = segment["from_epoch"]
        for row in ordered:
            if (
                row["member"] == segment["member"]
                and after < row["sequence"] < before
                and previous < row["epoch"] <= segment["to_epoch"]
            ):
                chosen.append(row)
                previous = row["epoch"]
    return chosen


def schedule(
    member: int, epoch: int, steps: Sequence[dict[str, Any]], exploits: Sequence[dict[str, Any]]
) -> list[ScheduleEntry]:
    """The hyperparameters that trained ``member``'s weights up to ``epoch``, step by step."""
    rows = lineage_steps(member, epoch, steps, exploits)
    # Each step starts where the one before it on the lineage ended: a copy takes over the
    # donor's epoch, which is the epoch of the donor's last step.
    starts = [0, *(row["epoch"] for row in rows[:-1])]
    return [
        ScheduleEntry(
            member=row["member"],
            from_epoch=start,
            to_epoch=row["epoch"],
            hyperparameters=dict(row["hyperparameters"]),
        )
        for start, row in zip(starts, rows, strict=True)
    ]
