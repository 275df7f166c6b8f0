"""A run folder's writer: the journal of a PBT run and its checkpoint cuts, so a run can resume.

Layout of ``run_dir``::

    journal.sqlite            SQLite (stdlib sqlite3, WAL): config, members, steps, exploits,
                              failures, and one row per checkpoint *cut*
    checkpoints/*.npz         member states, NumPy .npz loaded with allow_pickle=False

Every member-step row is committed as it happens. A *cut* is a consistent picture of the
whole run at one journal sequence number: every member's state (a checkpoint file each) and
the trainer's bookkeeping (members, random state). Resuming restores the latest intact cut
and drops the journal rows recorded after it, so those steps are trained again exactly once.

Checkpoint files are written to a temporary name, flushed and renamed, and the journal
records each one's SHA-256 only after that: a file that is torn, truncated or altered fails
its hash, and the previous cut is used. The two newest cuts are kept; files no kept cut uses
are deleted, so disk use stays near two states per member.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pybt.errors import TrainingError, invalid_argument
from pybt.history import RECORD_KINDS, Record, as_record, record_fields
from pybt.store.files import npz_bytes, read_checkpoint, write_atomically
from pybt.store.values import dumps, loads

JOURNAL_NAME = "journal.sqlite"
CHECKPOINT_DIR = "checkpoints"
_CUTS_KEPT = 2

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

# Each kind of record has a table whose columns are the record's fields; dict-valued ones
# are stored as JSON text.
_ROW_COLUMNS = {kind: record_fields(record_class) for kind, record_class in RECORD_KINDS.items()}
_JSON_COLUMNS = {"hyperparameters", "metrics", "old_hyperparameters", "new_hyperparameters"}


class RunStore:
    """The journal and checkpoints of one run folder."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir)
        if self.path.exists() and not self.path.is_dir():
            raise invalid_argument("run_dir", str(run_dir), "a folder (or a path to create one)")
        (self.path / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path / JOURNAL_NAME, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives a crash of the process (the case resuming is for).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise invalid_argument(
                "run_dir",
                str(run_dir),
                f"a run folder whose {JOURNAL_NAME} is a PyBT journal",
                f"SQLite cannot use it ({error}). Use a new run_dir, or move the damaged journal away.",
            ) from error

    @classmethod
    def read(cls, run_dir: str | os.PathLike[str]) -> RunStore:
        """Open an existing run folder (for reports); error if there is no journal."""
        if not (Path(run_dir) / JOURNAL_NAME).is_file():
            raise invalid_argument(
                "run_dir",
                str(run_dir),
                f"a run folder holding {JOURNAL_NAME}",
                "Pass the run_dir of a Trainer.",
            )
        return cls(run_dir)

    def close(self) -> None:
        self._db.close()

    # ---- configuration ---------------------------------------------------------------------------
    def _get(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM run WHERE key = ?", (key,)).fetchone()
        return None if row is None else loads(row[0])

    def _set(self, key: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO run (key, value) VALUES (?, ?)", (key, dumps(value)))

    @property
    def config(self) -> dict[str, Any] | None:
        return self._get("config")

    @property
    def finished(self) -> bool:
        return bool(self._get("finished"))

    def begin(self, config: dict[str, Any], members: Iterable[tuple[int, int, Mapping[str, Any]]]) -> None:
        """Record a new run's configuration and members (a no-op check when resuming)."""
        stored = self.config
        if stored is not None:
            self._check_compatible(stored, config)
            return
        with self._db:
            self._db.execute("BEGIN")
            self._set("config", config)
            self._set("created_at", time.time())
            self._db.executemany(
                "INSERT INTO members (id, seed, initial_hyperparameters) VALUES (?, ?, ?)",
                [(member, seed, dumps(dict(values))) for member, seed, values in members],
            )

    def _check_compatible(self, stored: dict[str, Any], config: dict[str, Any]) -> None:
        differences = sorted(key for key in set(stored) | set(config) if stored.get(key) != config.get(key))
        if differences:
            detail = "; ".join(
                f"{key}: run folder has {stored.get(key)!r}, now {config.get(key)!r}" for key in differences
            )
            raise invalid_argument(
                "run_dir",
                str(self.path),
                "a run folder written by the same configuration",
                f"It was written by a different one ({detail}). Use a new run_dir, or the old configuration.",
            )

    @property
    def best_member(self) -> int | None:
        """The finished run's winner (None while the run goes on)."""
        return self._get("best_member")

    def newest_trainer_state(self) -> dict[str, Any] | None:
        """The trainer's bookkeeping at the newest cut (its resolved metric and mode, ...)."""
        row = self._db.execute("SELECT trainer_state FROM cuts ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else loads(row[0])

    @property
    def final_sequence(self) -> int | None:
        """The journal sequence number at which the run finished (None while it has not)."""
        return self._get("final_sequence")

    def mark_finished(self, best_member: int, sequence: int) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._set("finished", True)
            self._set("best_member", best_member)
            self._set("final_sequence", sequence)

    # ---- rows --------------------------------------------------------------------------------------
    def record(self, record: Record) -> None:
        """Append one record to its table, committed at once."""
        kind = record.kind
        columns = _ROW_COLUMNS[kind]
        values = [dumps(record[c]) if c in _JSON_COLUMNS else record[c] for c in columns]
        placeholders = ", ".join("?" for _ in range(len(columns) + 1))
        self._db.execute(
            f"INSERT INTO {kind} ({', '.join(columns)}, recorded_at) VALUES ({placeholders})",
            (*values, time.time()),
        )

    def rows(self, kind: str, up_to: float = float("inf")) -> list[Record]:
        """The records of one kind (``"steps"``, ``"exploits"``, ``"failures"``), in sequence
        order, optionally only up to a sequence number."""
        columns = _ROW_COLUMNS[kind]
        cursor = self._db.execute(
            f"SELECT {', '.join(columns)} FROM {kind} WHERE sequence <= ? ORDER BY sequence",
            (up_to if up_to != float("inf") else 2**62,),
        )
        return [
            as_record(
                kind, {c: loads(v) if c in _JSON_COLUMNS else v for c, v in zip(columns, values, strict=True)}
            )
            for values in cursor
        ]

    def members(self) -> list[dict[str, Any]]:
        cursor = self._db.execute("SELECT id, seed, initial_hyperparameters FROM members ORDER BY id")
        return [{"id": i, "seed": s, "initial_hyperparameters": loads(h)} for i, s, h in cursor]

    # ---- checkpoints -------------------------------------------------------------------------------
    def save_cut(
        self,
        sequence: int,
        trainer_state: Mapping[str, Any],
        states: Mapping[int, Mapping[str, np.ndarray]],
        epochs: Mapping[int, int],
    ) -> None:
        """Record a cut: new states for the members in ``states``; the others keep their last file."""
        previous = {
            member: (path, sha, size, epoch) for member, path, sha, size, epoch in self._latest_files()
        }
        files = dict(previous)
        for member, state in states.items():
            data = npz_bytes(state)
            name = f"member-{member:04d}-seq-{sequence:08d}.npz"
            write_atomically(self.path / CHECKPOINT_DIR / name, data)
            files[member] = (name, hashlib.sha256(data).hexdigest(), len(data), epochs[member])
        with self._db:
            self._db.execute("BEGIN")
            cut = self._db.execute(
                "INSERT INTO cuts (sequence, trainer_state, recorded_at) VALUES (?, ?, ?)",
                (sequence, dumps(dict(trainer_state)), time.time()),
            ).lastrowid
            self._db.executemany(
                "INSERT INTO checkpoints (cut, member, path, sha256, bytes, epoch) VALUES (?, ?, ?, ?, ?, ?)",
                [(cut, member, *entry) for member, entry in sorted(files.items())],
            )
        self._prune()

    def _latest_files(self) -> list[tuple[int, str, str, int, int]]:
        row = self._db.execute("SELECT MAX(id) FROM cuts").fetchone()
        if row[0] is None:
            return []
        cursor = self._db.execute(
            "SELECT member, path, sha256, bytes, epoch FROM checkpoints WHERE cut = ?", (row[0],)
        )
        return list(cursor)

    def _prune(self) -> None:
        """Forget all but the newest cuts, and delete the files none of those uses."""
        kept = [
            cut for (cut,) in self._db.execute("SELECT id FROM cuts ORDER BY id DESC LIMIT ?", (_CUTS_KEPT,))
        ]
        if not kept:
            return
        oldest_kept = min(kept)
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM checkpoints WHERE cut < ?", (oldest_kept,))
            self._db.execute("DELETE FROM cuts WHERE id < ?", (oldest_kept,))
        used = {path for (path,) in self._db.execute("SELECT DISTINCT path FROM checkpoints")}
        for file in (self.path / CHECKPOINT_DIR).glob("*.npz"):
            if file.name not in used:
                file.unlink(missing_ok=True)

    def latest_cut(self) -> tuple[int, dict[str, Any], dict[int, dict[str, np.ndarray]]] | None:
        """``(sequence, trainer_state, {member: state})`` of the newest cut whose files are all intact.

        None when the journal has no cut; a journal whose every cut is damaged is an error, not
        a silent fresh start that would drop the whole journal.
        """
        cuts = self._db.execute("SELECT id, sequence, trainer_state FROM cuts ORDER BY id DESC").fetchall()
        damaged: list[str] = []
        for cut, sequence, trainer_state in cuts:
            entries = self._db.execute("SELECT member, path, sha256 FROM checkpoints WHERE cut = ?", (cut,))
            states: dict[int, dict[str, np.ndarray]] = {}
            for member, path, sha256 in entries:
                state = read_checkpoint(self.path / CHECKPOINT_DIR / path, sha256)
                if state is None:
                    damaged.append(path)
                    break
                states[member] = state
            else:
                return sequence, loads(trainer_state), states
        if cuts:
            raise TrainingError(
                f"No checkpoint cut in {self.path} is intact (damaged or missing: "
                f"{sorted(set(damaged))}), so the run cannot resume. Restore those files, or start "
                f"over with a new run_dir."
            )
        return None

    def truncate_after(self, sequence: int) -> None:
        """Drop rows recorded after ``sequence``: those steps will be trained again.

        Cuts after it go too (a damaged newest cut that resuming passed over): kept, they would
        hold one of the two kept places and lend their files to the next cut.
        """
        with self._db:
            self._db.execute("BEGIN")
            for kind in _ROW_COLUMNS:
                self._db.execute(f"DELETE FROM {kind} WHERE sequence > ?", (sequence,))
            self._db.execute(
                "DELETE FROM checkpoints WHERE cut IN (SELECT id FROM cuts WHERE sequence > ?)", (sequence,)
            )
            self._db.execute("DELETE FROM cuts WHERE sequence > ?", (sequence,))
            self._db.execute("DELETE FROM run WHERE key IN ('finished', 'best_member', 'final_sequence')")

    def disk_bytes(self) -> int:
        """Bytes the checkpoint files take (for tests and benchmarks of the disk bound)."""
        return sum(file.stat().st_size for file in (self.path / CHECKPOINT_DIR).glob("*.npz"))
