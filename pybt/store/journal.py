"""The journal: ``journal.sqlite``, a run's records and checkpoint cuts in SQLite (WAL mode).

:class:`Journal` is the SQLite layer and nothing else: it opens the file read-only (readers,
``mode=ro``; ``immutable=1`` for a folder nobody may write to) or writable (the one writer),
reads every value back through :mod:`pybt.store.checks`, and turns SQLite's errors into
PyBTErrors that name the file. Each record is committed as it is made; after every cut the
writer copies the write-ahead log into the main file (a WAL checkpoint), so ``journal.sqlite``
alone holds the run up to its newest cut even if ``journal.sqlite-wal`` is lost.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pybt.records import RECORD_KINDS, Record, as_record, record_fields
from pybt.store.checks import JournalChecks, damaged
from pybt.store.files import StoreWriteError
from pybt.store.values import dumps

JOURNAL_NAME = "journal.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    id INTEGER PRIMARY KEY, seed INTEGER NOT NULL, initial_hyperparameters TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    sequence INTEGER PRIMARY KEY, member INTEGER NOT NULL, epoch INTEGER NOT NULL,
    hyperparameters TEXT NOT NULL, metrics TEXT NOT NULL, score REAL, seconds REAL NOT NULL,
    recorded_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS exploits (
    sequence INTEGER PRIMARY KEY, member INTEGER NOT NULL, donor INTEGER NOT NULL,
    epoch INTEGER NOT NULL, member_epoch INTEGER NOT NULL, old_hyperparameters TEXT NOT NULL,
    new_hyperparameters TEXT NOT NULL, reason TEXT NOT NULL, recorded_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS failures (
    sequence INTEGER PRIMARY KEY, member INTEGER NOT NULL, epoch INTEGER NOT NULL,
    hyperparameters TEXT NOT NULL, error TEXT NOT NULL, recorded_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS cuts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, sequence INTEGER NOT NULL, trainer_state TEXT NOT NULL,
    recorded_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    cut INTEGER NOT NULL, member INTEGER NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL, epoch INTEGER NOT NULL, PRIMARY KEY (cut, member));
"""
_TABLES = ("run", "members", "steps", "exploits", "failures", "cuts", "checkpoints")
# Each kind of record has a table whose columns are the record's fields; dict-valued ones
# are stored as JSON text.
ROW_COLUMNS = {kind: record_fields(record_class) for kind, record_class in RECORD_KINDS.items()}
_JSON_COLUMNS = {"hyperparameters", "metrics", "old_hyperparameters", "new_hyperparameters"}
#: What a finished run's end records in the run table (dropped when a run is resumed).
END_KEYS = ("finished", "best_member", "final_sequence", "winner")
_DISK_FULL = ("database or disk is full", "disk i/o error", "attempt to write a readonly database")


class Journal:
    """One connection to a run folder's ``journal.sqlite``."""

    def __init__(self, path: Path, *, writable: bool) -> None:
        self.path = path
        self.writable = writable
        self.checks = JournalChecks(path)
        self._db = self._connect()

    # ---- opening and closing ----------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self.writable:
            with self.errors():
                db = sqlite3.connect(self.path, isolation_level=None, timeout=10)
                db.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode: a commit survives a crash of the process (what resuming is for).
                db.execute("PRAGMA synchronous=NORMAL")
                self._check_integrity(db)
                db.executescript(_SCHEMA)
            return db
        uri = f"file:{urllib.parse.quote(str(self.path.resolve()))}"
        with self.errors():
            try:
                db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None)
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:
                # A folder this process may not write to: SQLite cannot make the WAL index it
                # wants beside the file, so read the main file as it is (a finished run's is whole).
                db = sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)
        self._check_integrity(db)
        return db

    def _check_integrity(self, db: sqlite3.Connection) -> None:
        try:
            result = db.execute("PRAGMA quick_check").fetchone()
        except sqlite3.DatabaseError as error:
            raise damaged(self.path, f"SQLite cannot read it ({error})") from error
        if result is None or result[0] != "ok":
            raise damaged(self.path, f"SQLite's quick_check found {result[0] if result else 'nothing'!r}")
        if not self.writable:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            missing = set(_TABLES) - tables
            if tables and missing:
                raise damaged(self.path, f"it lacks the tables {sorted(missing)}")

    def close(self) -> None:
        self._db.close()

    def checkpoint_wal(self) -> bool:
        """Copy the write-ahead log into ``journal.sqlite``; False when a reader held it back."""
        with self.errors():
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return busy == 0

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """SQLite's errors as PyBTErrors naming the journal."""
        try:
            yield
        except sqlite3.OperationalError as error:
            if any(text in str(error).lower() for text in _DISK_FULL):
                raise StoreWriteError(
                    f"run_dir: could not write {self.path} ({error}). The journal and checkpoints are "
                    f"intact up to the last committed record: free space or fix the permissions, then "
                    f"run again to resume."
                ) from error
            raise damaged(self.path, f"SQLite refused it ({error})") from error
        except sqlite3.DatabaseError as error:
            raise damaged(self.path, f"SQLite cannot read it ({error})") from error

    def is_empty(self) -> bool:
        """True when the journal holds no run (no tables, or no configuration)."""
        with self.errors():
            tables = {name for (name,) in self._db.execute("SELECT name FROM sqlite_master")}
            if "run" not in tables:
                return True
            return self._db.execute("SELECT 1 FROM run WHERE key = 'config'").fetchone() is None

    # ---- run keys -----------------------------------------------------------------------------
    def get(self, key: str) -> Any:
        with self.errors():
            row = self._db.execute("SELECT value FROM run WHERE key = ?", (key,)).fetchone()
        return None if row is None else self.checks.json(f"the run value {key!r}", row[0])

    def set_many(self, values: Mapping[str, Any]) -> None:
        with self.errors(), self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO run (key, value) VALUES (?, ?)",
                [(key, dumps(value)) for key, value in values.items()],
            )

    def delete_keys(self, keys: Iterable[str]) -> None:
        with self.errors():
            self._db.executemany("DELETE FROM run WHERE key = ?", [(key,) for key in keys])

    def start_run(
        self, values: Mapping[str, Any], members: Iterable[tuple[int, int, Mapping[str, Any]]]
    ) -> None:
        """A new run's members and configuration (``values``), in one transaction: a folder holds
        both or neither."""
        with self.errors(), self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO members (id, seed, initial_hyperparameters) VALUES (?, ?, ?)",
                [(member, seed, dumps(dict(values))) for member, seed, values in members],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO run (key, value) VALUES (?, ?)",
                [(key, dumps(value)) for key, value in values.items()],
            )

    def last_sequence(self) -> int:
        """The newest record's sequence number (0 without records)."""
        with self.errors():
            newest = [
                self._db.execute(f"SELECT MAX(sequence) FROM {kind}").fetchone()[0] for kind in ROW_COLUMNS
            ]
        return max((value for value in newest if isinstance(value, int)), default=0)

    def members(self) -> list[dict[str, Any]]:
        with self.errors():
            rows = self._db.execute(
                "SELECT id, seed, initial_hyperparameters FROM members ORDER BY id"
            ).fetchall()
        checks = self.checks
        return [
            {
                "id": checks.integer("a member id", member),
                "seed": checks.integer(f"member {member!r}'s seed", seed, None),
                "initial_hyperparameters": checks.mapping(
                    f"member {member!r}'s hyperparameters", checks.json(f"member {member!r}", values)
                ),
            }
            for member, seed, values in rows
        ]

    # ---- records ------------------------------------------------------------------------------
    def add(self, record: Record) -> None:
        """Append one record to its table, committed at once."""
        kind = record.kind
        columns = ROW_COLUMNS[kind]
        values = [dumps(record[c]) if c in _JSON_COLUMNS else record[c] for c in columns]
        placeholders = ", ".join("?" for _ in range(len(columns) + 1))
        with self.errors():
            self._db.execute(
                f"INSERT INTO {kind} ({', '.join(columns)}, recorded_at) VALUES ({placeholders})",
                (*values, time.time()),
            )

    def records(self, kind: str) -> list[Record]:
        """The records of one kind, in sequence order, checked."""
        columns = ROW_COLUMNS[kind]
        with self.errors():
            rows = self._db.execute(f"SELECT {', '.join(columns)} FROM {kind} ORDER BY sequence").fetchall()
        return [
            as_record(kind, self.checks.record_fields(kind, row[0], dict(zip(columns, row, strict=True))))
            for row in rows
        ]

    def last_recorded_at(self) -> float | None:
        """When the newest record was made (seconds since the epoch), or None."""
        with self.errors():
            times = [
                self._db.execute(f"SELECT MAX(recorded_at) FROM {kind}").fetchone()[0] for kind in ROW_COLUMNS
            ]
        known = [t for t in times if isinstance(t, (int, float))]
        return max(known) if known else None

    def truncate_after(self, sequence: int) -> None:
        """Drop records and cuts after ``sequence``, and the run's end (it is not over any more)."""
        with self.errors(), self._db:
            self._db.execute("BEGIN")
            for kind in ROW_COLUMNS:
                self._db.execute(f"DELETE FROM {kind} WHERE sequence > ?", (sequence,))
            self._db.execute(
                "DELETE FROM checkpoints WHERE cut IN (SELECT id FROM cuts WHERE sequence > ?)", (sequence,)
            )
            self._db.execute("DELETE FROM cuts WHERE sequence > ?", (sequence,))
            # The run is not over any more: its end (and its winner) are to be found again.
            self._db.executemany("DELETE FROM run WHERE key = ?", [(key,) for key in END_KEYS])

    # ---- cuts ---------------------------------------------------------------------------------
    def add_cut(
        self, sequence: int, trainer_state: Mapping[str, Any], files: Mapping[int, tuple[str, str, int, int]]
    ) -> None:
        """One cut: the trainer's state and each member's ``(path, sha256, bytes, epoch)``."""
        with self.errors(), self._db:
            self._db.execute("BEGIN")
            cut = self._db.execute(
                "INSERT INTO cuts (sequence, trainer_state, recorded_at) VALUES (?, ?, ?)",
                (sequence, dumps(dict(trainer_state)), time.time()),
            ).lastrowid
            self._db.executemany(
                "INSERT INTO checkpoints (cut, member, path, sha256, bytes, epoch) VALUES (?, ?, ?, ?, ?, ?)",
                [(cut, member, *entry) for member, entry in sorted(files.items())],
            )

    def cuts(self) -> list[tuple[int, int]]:
        """``(cut id, sequence)`` of every cut, newest first."""
        with self.errors():
            rows = self._db.execute("SELECT id, sequence FROM cuts ORDER BY id DESC").fetchall()
        return [
            (self.checks.integer("a cut id", cut, 1), self.checks.integer("a cut's sequence", seq))
            for cut, seq in rows
        ]

    def cut_state(self, cut: int) -> dict[str, Any]:
        with self.errors():
            (text,) = self._db.execute("SELECT trainer_state FROM cuts WHERE id = ?", (cut,)).fetchone()
        return self.checks.mapping(f"cut {cut}'s state", self.checks.json(f"cut {cut}'s state", text))

    def cut_files(self, cut: int) -> dict[int, tuple[str, str, int, int]]:
        """``{member: (path, sha256, bytes, epoch)}`` of one cut, checked."""
        with self.errors():
            rows = self._db.execute(
                "SELECT member, path, sha256, bytes, epoch FROM checkpoints WHERE cut = ?", (cut,)
            ).fetchall()
        checks, files = self.checks, {}
        for member, path, sha256, size, epoch in rows:
            where = f"cut {cut}'s checkpoint of member {member!r}"
            files[checks.member(where, member)] = (
                checks.text(f"{where}: its path", path),
                checks.text(f"{where}: its hash", sha256),
                checks.integer(f"{where}: its size", size),
                checks.integer(f"{where}: its epoch", epoch),
            )
        return files

    def files_in_use(self) -> set[str]:
        with self.errors():
            return {path for (path,) in self._db.execute("SELECT DISTINCT path FROM checkpoints")}

    def forget_cuts_before(self, cut: int) -> None:
        with self.errors(), self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM checkpoints WHERE cut < ?", (cut,))
            self._db.execute("DELETE FROM cuts WHERE id < ?", (cut,))
