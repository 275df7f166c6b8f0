"""The numbers behind a report: pure functions over a run's step, exploit and failure rows.

Nothing here imports matplotlib or pandas, so the tables, the CSV and the figures agree on
one reading of the rows (described in :mod:`pybt.member`). Ancestry and schedules come from
:mod:`pybt.lineage`; this module only orders, groups and merges.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, TypedDict

from pybt.errors import invalid_argument
from pybt.lineage import ScheduleEntry, lineage_segments, schedule

Row = Mapping[str, Any]
Rows = Sequence[Row]


class Standing(NamedTuple):
    """Where a member's weights stand: the epochs they have trained and their score."""

    member: int
    epoch: int
    score: float


class Stretch(TypedDict):
    """A member's own training between two exploits: where it started and the steps it took."""

    member: int
    start_epoch: int
    exploit: Row | None  # the exploit row that started the stretch; None for the first one
    steps: list[Row]


class Summary(TypedDict):
    """The headline numbers of a run (``None`` where the rows cannot tell)."""

    best_member: int | None
    best_epoch: int | None
    best_score: float | None
    metric: str | None
    mode: str
    members: int
    epochs: int
    steps: int
    exploits: int
    replacements: int
    failures: int
    seconds: float


def check_mode(mode: Any) -> str:
    """``mode`` if it is ``"max"`` or ``"min"``; ``None`` means ``"max"``."""
    if mode is None:
        return "max"
    if mode not in ("max", "min"):
        raise invalid_argument("mode", mode, "'max' (higher scores are better) or 'min'")
    return str(mode)


def by_sequence(rows: Rows) -> list[Row]:
    """The rows in the order they were recorded."""
    return sorted(rows, key=lambda row: row["sequence"])


def member_ids(steps: Rows, exploits: Rows = (), failures: Rows = ()) -> list[int]:
    """Every member the rows mention, in id order."""
    ids = {row["member"] for row in [*steps, *failures, *exploits]}
    ids.update(row["donor"] for row in exploits)
    return sorted(ids)


class Timeline:
    """Each member's rows in recorded order, to look up quickly where it stood at any time."""

    def __init__(self, steps: Rows, exploits: Rows = (), failures: Rows = ()) -> None:
        events: dict[int, list[tuple[int, str, Row]]] = {}
        for kind, rows in (("step", steps), ("exploit", exploits), ("failure", failures)):
            for row in rows:
                events.setdefault(row["member"], []).append((row["sequence"], kind, row))
        for member_events in events.values():
            member_events.sort(key=lambda event: event[0])
        self._events = events
        self._sequences = {member: [event[0] for event in evs] for member, evs in events.items()}

    def standing(self, member: int, before: float = math.inf) -> Standing | None:
        """Where ``member``'s weights stood just before row ``before`` (a sequence number).

        A member that last copied a donor stands where the donor stood then; one whose last
        step failed, or that has not stepped yet, has no standing (``None``), as in the trainer.
        """
        current, bound = member, before
        while True:
            earlier = bisect.bisect_left(self._sequences.get(current, []), bound)
            if earlier == 0:
                return None
            _, kind, row = self._events[current][earlier - 1]
            if kind == "failure":
                return None
            if kind == "step":
                return Standing(member, int(row["epoch"]), float(row["score"]))
            current, bound = row["donor"], row["sequence"]

    def stretches(self, member: int) -> list[Stretch]:
        """``member``'s training cut at each exploit: a stretch starts at 0 or at a donor's epoch."""
        result = [Stretch(member=member, start_epoch=0, exploit=None, steps=[])]
        for _, kind, row in self._events.get(member, []):
            if kind == "exploit":
                result.append(Stretch(member=member, start_epoch=int(row["epoch"]), exploit=row, steps=[]))
            elif kind == "step":
                result[-1]["steps"].append(row)
        return result


def standing(
    member: int, steps: Rows, exploits: Rows, failures: Rows = (), before: float = math.inf
) -> Standing | None:
    """Where ``member``'s weights stood just before row ``before`` (see :meth:`Timeline.standing`)."""
    return Timeline(steps, exploits, failures).standing(member, before)


def stretches(member: int, steps: Rows, exploits: Rows) -> list[Stretch]:
    """``member``'s training cut at each exploit (see :meth:`Timeline.stretches`)."""
    return Timeline(steps, exploits).stretches(member)


def best_member(
    steps: Rows, exploits: Rows = (), mode: str | None = "max", failures: Rows = ()
) -> Standing | None:
    """The member with the best score where it stands now (ties: the lowest id), or None."""
    sign = 1.0 if check_mode(mode) == "max" else -1.0
    timeline = Timeline(steps, exploits, failures)
    standings = [timeline.standing(m) for m in member_ids(steps, exploits, failures)]
    ranked = [s for s in standings if s is not None]
    if not ranked:
        return None
    return max(ranked, key=lambda s: (sign * s.score, -s.member))


def resolve_member(
    member: int | None, steps: Rows, exploits: Rows, mode: str | None = "max", failures: Rows = ()
) -> Standing | None:
    """``member``'s standing, or the best member's when ``member`` is None."""
    if member is None:
        return best_member(steps, exploits, mode, failures)
    known = member_ids(steps, exploits, failures)
    if member not in known:
        raise invalid_argument("member", member, f"one of the members in the rows {known}")
    return standing(member, steps, exploits)


def lineage_exploits(member: int, epoch: int, exploits: Rows) -> list[Row]:
    """The exploit rows on ``member``'s ancestry at ``epoch``, oldest first."""
    sequences = {after for _, after, _ in lineage_segments(member, epoch, exploits)}
    return [row for row in by_sequence(exploits) if row["sequence"] in sequences]


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


def winning_schedule(
    steps: Rows, exploits: Rows, member: int | None = None, mode: str | None = "max", failures: Rows = ()
) -> list[ScheduleEntry]:
    """The (unmerged) schedule of ``member``, by default the best member; empty without steps."""
    where = resolve_member(member, steps, exploits, mode, failures)
    if where is None:
        return []
    return schedule(where.member, where.epoch, steps, exploits)


def hyperparameter_names(steps: Rows, exploits: Rows = ()) -> list[str]:
    """Every hyperparameter name in the rows, in first-seen order."""
    names: dict[str, None] = {}
    for row in steps:
        names.update(dict.fromkeys(row["hyperparameters"]))
    for row in exploits:
        names.update(dict.fromkeys(row["old_hyperparameters"]))
        names.update(dict.fromkeys(row["new_hyperparameters"]))
    return list(names)


def is_number(value: Any) -> bool:
    """A real number that can sit on a numeric axis (booleans are categories)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or _is_numpy_number(value)


def _is_numpy_number(value: Any) -> bool:
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    return kind in ("i", "u", "f") and getattr(value, "ndim", 1) == 0


def axis_scale(values: Sequence[Any]) -> tuple[str, list[Any]]:
    """How to draw a hyperparameter's values: ``("log" | "linear", [])`` or ``("category", order)``.

    Numbers spanning more than two decades (all positive) go on a log axis; anything not a
    number (a :class:`~pybt.space.Choice` of strings, booleans, None) makes a category axis.
    """
    present = [value for value in values if not (isinstance(value, float) and math.isnan(value))]
    if all(is_number(value) for value in present):
        numbers = [float(value) for value in present]
        if numbers and min(numbers) > 0 and max(numbers) / min(numbers) > 100:
            return "log", []
        return "linear", []
    order: dict[Any, None] = {}
    # Numbers in numeric order first (an IntUniform mixed with "auto"), then the rest by name.
    for value in sorted(present, key=lambda v: (0, float(v), "") if is_number(v) else (1, 0.0, str(v))):
        order.setdefault(_category_key(value), None)
    return "category", list(order)


def _category_key(value: Any) -> Any:
    """A hashable stand-in for a category value (lists and dicts become their text)."""
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def category_index(value: Any, order: Sequence[Any]) -> int | None:
    """Where ``value`` sits on a category axis built by :func:`axis_scale` (None: not on it)."""
    key = _category_key(value)
    return next((i for i, option in enumerate(order) if option == key), None)


def run_summary(
    steps: Rows, exploits: Rows = (), failures: Rows = (), config: Mapping[str, Any] | None = None
) -> Summary:
    """The headline numbers: the best member and score, how many steps, exploits, failures."""
    config = dict(config or {})
    mode = check_mode(config.get("mode"))
    best = best_member(steps, exploits, mode, failures)
    members = member_ids(steps, exploits, failures)
    return Summary(
        best_member=None if best is None else best.member,
        best_epoch=None if best is None else best.epoch,
        best_score=None if best is None else best.score,
        metric=config.get("metric"),
        mode=mode,
        members=int(config.get("population_size") or len(members)),
        epochs=max((int(row["epoch"]) for row in steps), default=0),
        steps=len(steps),
        exploits=sum(1 for row in exploits if row.get("reason", "exploit") == "exploit"),
        replacements=sum(1 for row in exploits if row.get("reason") == "failure"),
        failures=len(failures),
        seconds=float(sum(float(row.get("seconds") or 0.0) for row in steps)),
    )


_FIRST_COLUMNS = ("member", "epoch", "score", "seconds", "sequence")


def history_records(steps: Rows) -> tuple[list[str], list[dict[str, Any]]]:
    """The steps as flat records (columns, rows): hyperparameters as ``hp_<name>``, metrics
    as ``metric_<name>``, in recorded order; a value a row lacks is None."""
    ordered = by_sequence(steps)
    hp_names: dict[str, None] = {}
    metric_names: dict[str, None] = {}
    for row in ordered:
        hp_names.update(dict.fromkeys(row.get("hyperparameters", {})))
        metric_names.update(dict.fromkeys(row.get("metrics", {})))
    columns = [
        *_FIRST_COLUMNS,
        *(f"hp_{name}" for name in hp_names),
        *(f"metric_{name}" for name in metric_names),
    ]
    records = []
    for row in ordered:
        record: dict[str, Any] = {name: row.get(name) for name in _FIRST_COLUMNS}
        hyperparameters, metrics = row.get("hyperparameters", {}), row.get("metrics", {})
        record.update({f"hp_{name}": hyperparameters.get(name) for name in hp_names})
        record.update({f"metric_{name}": metrics.get(name) for name in metric_names})
        records.append(record)
    return columns, records
