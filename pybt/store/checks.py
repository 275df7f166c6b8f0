"""Checks on what a journal holds: a run folder is untrusted input, read as data only.

Every value read back from ``journal.sqlite`` passes through here before PyBT uses it: JSON
must decode, integers must be integers (SQLite stores any type in any column), member ids must
be members of this run, a record's fields must have their types. A value that does not is a
:class:`DamagedRunFolderError` naming the file and what was wrong; nothing is guessed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from pybt._validate import is_integer, is_real
from pybt.errors import PyBTError
from pybt.store.values import loads


class DamagedRunFolderError(PyBTError, ValueError):
    """The run folder holds something PyBT did not write there (damage, or an edit)."""


def damaged(journal: Path, what: str) -> DamagedRunFolderError:
    return DamagedRunFolderError(
        f"run_dir: {journal} is damaged or was edited: {what}. PyBT reads a run folder as data and "
        f"will not guess; restore the folder from a copy, or start over with a new run_dir."
    )


class JournalChecks:
    """Decoding and type checks for one journal's values (``members`` known once read)."""

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.members: Collection[int] | None = None

    def fail(self, what: str) -> DamagedRunFolderError:
        return damaged(self.journal, what)

    def json(self, where: str, text: Any) -> Any:
        if not isinstance(text, str):
            raise self.fail(f"{where} is {type(text).__name__}, not JSON text")
        try:
            return loads(text)
        except (ValueError, TypeError, RecursionError) as error:
            raise self.fail(f"{where} is not valid JSON ({error})") from error

    def integer(self, where: str, value: Any, minimum: int | None = 0) -> int:
        if not is_integer(value) or (minimum is not None and value < minimum):
            raise self.fail(f"{where} is {value!r}, not an integer >= {minimum}")
        return int(value)

    def number(self, where: str, value: Any) -> float:
        if not is_real(value):
            raise self.fail(f"{where} is {value!r}, not a number")
        return float(value)

    def text(self, where: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail(f"{where} is {value!r}, not text")
        return value

    def mapping(self, where: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{where} is {type(value).__name__}, not a dict")
        return value

    def member(self, where: str, value: Any) -> int:
        member = self.integer(where, value)
        if self.members is not None and member not in self.members:
            raise self.fail(f"{where} is {member}, not a member of this run ({sorted(self.members)})")
        return member

    def metrics(self, where: str, value: Any) -> dict[str, float]:
        metrics = self.mapping(where, value)
        for name, number in metrics.items():
            self.text(f"{where} key", name)
            self.number(f"{where}[{name!r}]", number)
        return metrics

    def record_fields(self, kind: str, sequence: Any, row: Mapping[str, Any]) -> dict[str, Any]:
        """A record's fields, decoded and checked (``row`` straight from its table)."""
        where = f"a {kind} row (sequence {sequence!r})"
        checked: dict[str, Any] = {}
        for name, value in row.items():
            check = _FIELD_CHECKS[name]
            checked[name] = check(self, f"{where} field {name!r}", value)
        return checked


def _json_mapping(checks: JournalChecks, where: str, value: Any) -> dict[str, Any]:
    return checks.mapping(where, checks.json(where, value))


def _reason(checks: JournalChecks, where: str, value: Any) -> str:
    if value not in ("exploit", "failure"):
        raise checks.fail(f"{where} is {value!r}, not 'exploit' or 'failure'")
    return str(value)


def _score(checks: JournalChecks, where: str, value: Any) -> float:
    score = checks.number(where, value)
    if not math.isfinite(score):
        raise checks.fail(f"{where} is {score}, not a finite score")
    return score


_FIELD_CHECKS: dict[str, Callable[[JournalChecks, str, Any], Any]] = {
    "sequence": lambda c, w, v: c.integer(w, v, 1),
    "member": lambda c, w, v: c.member(w, v),
    "donor": lambda c, w, v: c.member(w, v),
    "epoch": lambda c, w, v: c.integer(w, v),
    "member_epoch": lambda c, w, v: c.integer(w, v),
    "hyperparameters": _json_mapping,
    "old_hyperparameters": _json_mapping,
    "new_hyperparameters": _json_mapping,
    "metrics": lambda c, w, v: c.metrics(w, c.json(w, v)),
    "score": _score,
    "seconds": lambda c, w, v: c.number(w, v),
    "reason": _reason,
    "error": lambda c, w, v: c.text(w, v),
}


# The population's bookkeeping at a cut (see pybt.population.Member): field -> check.
_MEMBER_FIELDS: dict[str, Callable[[JournalChecks, str, Any], Any]] = {
    "id": lambda c, w, v: c.member(w, v),
    "seed": lambda c, w, v: c.integer(w, v, None),
    "hyperparameters": lambda c, w, v: c.mapping(w, v),
    "epoch": lambda c, w, v: c.integer(w, v),
    "score": lambda c, w, v: None if v is None else c.number(w, v),
    "fitness": lambda c, w, v: c.number(w, v),
    "metrics": lambda c, w, v: c.metrics(w, v),
    "last_ready_epoch": lambda c, w, v: c.integer(w, v),
    "steps": lambda c, w, v: c.integer(w, v),
    "parent": lambda c, w, v: None if v is None else c.member(w, v),
    "failed": lambda c, w, v: _flag(c, w, v),
    "done": lambda c, w, v: _flag(c, w, v),
    "seconds_since_ready": lambda c, w, v: c.number(w, v),
    "reached_ready_epoch": lambda c, w, v: c.integer(w, v),
}
# Fields a cut written by an earlier PyBT lacks, and the value they then take.
MEMBER_FIELD_DEFAULTS = {"seconds_since_ready": 0.0, "reached_ready_epoch": 0}


def _flag(checks: JournalChecks, where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise checks.fail(f"{where} is {value!r}, not true or false")
    return value


def check_cut_state(checks: JournalChecks, cut: int, state: Mapping[str, Any]) -> dict[str, Any]:
    """A cut's trainer state (members, random state, metric, mode, cut mark), checked."""
    where = f"cut {cut}'s state"
    expected = {"rng", "members", "metric", "mode", "cut_mark"}
    if not expected <= set(state):
        raise checks.fail(f"{where} lacks {sorted(expected - set(state))}")
    checks.mapping(f"{where}: its random state", state["rng"])
    members = state["members"]
    if not isinstance(members, list) or (checks.members is not None and len(members) != len(checks.members)):
        raise checks.fail(f"{where}: its members are not a list of this run's members")
    for index, member in enumerate(members):
        member = checks.mapping(f"{where}: member entry {index}", member)
        for name, default in MEMBER_FIELD_DEFAULTS.items():
            member.setdefault(name, default)
        if set(member) != set(_MEMBER_FIELDS):
            raise checks.fail(f"{where}: member entry {index} has the fields {sorted(member)}")
        for name, check in _MEMBER_FIELDS.items():
            check(checks, f"{where}: member entry {index}'s {name}", member[name])
    if state["metric"] is not None:
        checks.text(f"{where}: its metric", state["metric"])
    if state["mode"] not in (None, "max", "min"):
        raise checks.fail(f"{where}: its mode is {state['mode']!r}")
    checks.integer(f"{where}: its cut mark", state["cut_mark"])
    return dict(state)
