"""A run folder: the journal of a PBT run and its checkpoints, so a run can resume after a crash.

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
import io
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pybt.errors import PyBTError, TrainingError, invalid_argument

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

# Each kind of row: its table and columns; dict-valued columns are stored as JSON text.
_ROW_COLUMNS = {
    "steps": ("sequence", "member", "epoch", "hyperparameters", "metrics", "score", "seconds"),
    "exploits": (
        "sequence",
        "member",
        "donor",
        "epoch",
        "member_epoch",
        "old_hyperparameters",
        "new_hyperparameters",
        "reason",
    ),
    "failures": ("sequence", "member", "epoch", "hyperparameters", "error"),
}
_JSON_COLUMNS = {"hyperparameters", "metrics", "old_hyperparameters", "new_hyperparameters"}


# ---- JSON that keeps tuples (Choice options such as Adam's betas are tuples) ------------------
def _tag(value: Any) -> Any:
    if isinstance(value, tuple):
        return {"__tuple__": [_tag(item) for item in value]}
    if isinstance(value, list):
        return [_tag(item) for item in value]
    if isinstance(value, dict):
        return {key: _tag(item) for key, item in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_untag(item) for item in value["__tuple__"])
        return {key: _untag(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_untag(item) for item in value]
    return value


def dumps(value: Any) -> str:
    """JSON text for journal values (tuples survive the round trip)."""
    try:
        return json.dumps(_tag(value), sort_keys=True)
    except (TypeError, ValueError) as error:
        raise PyBTError(
            f"A run folder records hyperparameters and metrics as JSON, and this value is not "
            f"JSON: {value!r} ({error}). With run_dir, use hyperparameter values that are "
            f"numbers, strings, booleans, None, or lists/tuples/dicts of them (e.g. a Choice of "
            f"names that your step function maps to functions)."
        ) from error


def loads(text: str) -> Any:
    return _untag(json.loads(text))


# ---- checkpoint files ----------------------------------------------------------------------------
def _npz_bytes(state: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    arrays = {key: np.asarray(value) for key, value in state.items()}
    for key, array in arrays.items():
        if array.dtype == object:
            raise PyBTError(
                f"State entry {key!r} holds Python objects; checkpoints take numeric arrays only."
            )
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either the old file or all of the new one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read_checkpoint(path: Path, sha256: str) -> dict[str, np.ndarray] | None:
    """The state in ``path``, or None when the file is missing, torn or altered."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError):
        return None


def describe(value: Any) -> Any:
    """A stable description of a configuration value, for comparing runs (no memory addresses)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):  # np.float32(0.1), np.int64(32): their Python value
        return value.item()
    if isinstance(value, np.ndarray):
        return {"type": "numpy.ndarray", "dtype": str(value.dtype), "values": value.tolist()}
    if isinstance(value, Mapping):
        return {str(key): describe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [describe(item) for item in value]
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    if callable(value) and hasattr(value, "__qualname__"):  # a function: its name, not its address
        return {"type": kind, "name": f"{getattr(value, '__module__', '')}.{value.__qualname__}"}
    try:
        attributes = vars(value)
    except TypeError:  # no __dict__ (__slots__, C types): its type stands for it
        return {"type": kind}
    settings = {key: describe(item) for key, item in sorted(attributes.items()) if not key.startswith("_")}
    return {"type": kind, **settings}


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
    def record(self, kind: str, row: Mapping[str, Any]) -> None:
        """Append one row (``steps``, ``exploits`` or ``failures``), committed at once."""
        columns = _ROW_COLUMNS[kind]
        values = [dumps(row[c]) if c in _JSON_COLUMNS else row[c] for c in columns]
        placeholders = ", ".join("?" for _ in range(len(columns) + 1))
        self._db.execute(
            f"INSERT INTO {kind} ({', '.join(columns)}, recorded_at) VALUES ({placeholders})",
            (*values, time.time()),
        )

    def rows(self, kind: str, up_to: float = float("inf")) -> list[dict[str, Any]]:
        """The rows of one kind, in sequence order, optionally only up to a sequence number."""
        columns = _ROW_COLUMNS[kind]
        cursor = self._db.execute(
            f"SELECT {', '.join(columns)} FROM {kind} WHERE sequence <= ? ORDER BY sequence",
            (up_to if up_to != float("inf") else 2**62,),
        )
        return [
            {c: loads(v) if c in _JSON_COLUMNS else v for c, v in zip(columns, values, strict=True)}
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
            data = _npz_bytes(state)
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


def load_run(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Everything a report needs from a run folder, as plain rows.

    Returns ``{"config", "steps", "exploits", "failures", "members", "metric", "mode",
    "finished", "best_member"}``; ``best_member`` is the finished run's winner (None while the
    run goes on: :func:`pybt.report.best_member` reads it off the rows).
    """
    store = RunStore.read(run_dir)
    try:
        config = store.config or {}
        resolved = store.newest_trainer_state() or {}
        steps = store.rows("steps")
        metric = resolved.get("metric") or config.get("metric")
        mode = resolved.get("mode") or config.get("mode") or "max"
        return {
            "config": config,
            "steps": steps,
            "exploits": store.rows("exploits"),
            "failures": store.rows("failures"),
            "members": store.members(),
            "metric": metric,
            "mode": mode,
            "finished": store.finished,
            "best_member": store.best_member,
        }
    finally:
        store.close()
