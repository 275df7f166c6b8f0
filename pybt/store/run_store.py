"""A run folder: its one writer, its checkpoint cuts, and what it refuses.

Layout of ``run_dir``::

    journal.sqlite            the records and cuts (see :mod:`pybt.store.journal`)
    checkpoints/*.npz         member states (see :mod:`pybt.store.files`)
    lock                      held by the one process writing (see :mod:`pybt.store.lock`)

A *cut* is a consistent picture of the whole run at one sequence number: every member's state
(a file each; only changed members are written again) and the trainer's bookkeeping. The two
newest cuts are kept. The order of a cut's writes is what keeps the folder whole through any
crash: the new files (temporary, flushed, renamed) → the cut in the journal → the older cuts
forgotten → the write-ahead log copied into ``journal.sqlite`` → only then the files no kept cut
uses deleted. So the journal never names a file that is gone, and a crash leaves at most the
files of one unfinished cut, which the next writer deletes.

What is refused rather than guessed: a journal that is missing, empty or unreadable while
checkpoints (or its ``-wal``) are there (nothing is deleted; the error says what was found);
a second writer; a journal value or checkpoint that is not what PyBT writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pybt._version import __version__
from pybt.errors import PyBTError, TrainingError, invalid_argument
from pybt.history import Record
from pybt.store.checks import check_cut_state, damaged
from pybt.store.files import (
    CHECKPOINT_NAME,
    checkpoint_path,
    npz_bytes,
    read_checkpoint,
    remove_stale_temporaries,
    write_atomically,
    write_failure,
)
from pybt.store.journal import JOURNAL_NAME, Journal
from pybt.store.lock import RunLock

CHECKPOINT_DIR = "checkpoints"
CUTS_KEPT = 2
#: State files kept beside the checkpoints: the run's winner, and the best state seen.
STATE_FILES = ("winner", "best-ever")
EXPORT_NAME = "best"  # the winner in its framework's format: best.keras, best.pt, best.npz


class RunStore:
    """A run folder, read-only until :meth:`writing` takes its lock."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir)
        if self.path.exists() and not self.path.is_dir():
            raise invalid_argument("run_dir", str(run_dir), "a folder (or a path to create one)")
        self.journal_path = self.path / JOURNAL_NAME
        self.checkpoints = self.path / CHECKPOINT_DIR
        self._lock = RunLock(self.path)
        self._journal: Journal | None = None
        self._refuse_lost_journal()
        if self.journal_path.is_file():
            self._open(writable=False)

    @classmethod
    def read(cls, run_dir: str | os.PathLike[str]) -> RunStore:
        """Open an existing run folder for reading; error if it holds no journal."""
        store = cls(run_dir)
        if store._journal is None:
            raise invalid_argument(
                "run_dir",
                str(run_dir),
                f"a run folder holding {JOURNAL_NAME}",
                "Pass the run_dir of a Trainer.",
            )
        return store

    def _open(self, writable: bool) -> Journal:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self._journal = Journal(self.journal_path, writable=writable)
        members = None if self._journal.is_empty() else self._journal.members()
        self._journal.checks.members = None if members is None else {m["id"] for m in members}
        return self._journal

    def _refuse_lost_journal(self) -> None:
        """A journal missing or emptied while checkpoints or its log exist: refuse, delete nothing."""
        wal = self.path / f"{JOURNAL_NAME}-wal"
        leftovers = [wal] if wal.is_file() and wal.stat().st_size > 0 else []
        if self.checkpoints.is_dir():
            leftovers += [f for f in self.checkpoints.iterdir() if CHECKPOINT_NAME.fullmatch(f.name)]
        if not leftovers:
            return
        if not self.journal_path.is_file():
            found = "its journal is missing"
        elif self.journal_path.stat().st_size == 0:
            found = "its journal is empty"
        else:
            with contextlib.closing(Journal(self.journal_path, writable=False)) as journal:
                if not journal.is_empty():
                    return
            found = "its journal holds no run"
        raise PyBTError(
            f"run_dir: {self.path} holds {len(leftovers)} checkpoint or log file(s) (e.g. "
            f"{leftovers[0].name}) but {found}, so PyBT cannot tell what they belong to. Nothing was "
            f"deleted. Restore {JOURNAL_NAME} from a copy of the folder to resume, or move the folder "
            f"away (or use another run_dir) to start a new run."
        )

    def lock_holder(self) -> str | None:
        """Who writes to the folder now (``"process 123 on host since ..."``), or None."""
        return self._lock.holder()

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            raise PyBTError(f"run_dir: {self.path} holds no journal yet.")
        return self._journal

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self._lock.release()

    # ---- the writer ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self) -> Iterator[RunStore]:
        """Hold the folder's lock and a writable journal; back to read-only after."""
        if self._lock.held:
            yield self
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.checkpoints.mkdir(exist_ok=True)
        except OSError as error:
            raise write_failure(self.checkpoints, error) from error
        self._lock.acquire()
        try:
            self._refuse_lost_journal()
            self._open(writable=True)
            self._remove_leftovers()
            yield self
            self.journal.checkpoint_wal()
        finally:
            try:
                self._open(writable=False)
            finally:
                self._lock.release()  # released whatever happens, never held by a failed reopen

    def _remove_leftovers(self) -> None:
        """What a crash mid-write leaves: temporary files, and files of a cut never recorded."""
        remove_stale_temporaries(self.checkpoints)
        remove_stale_temporaries(self.path)
        for staging in self.path.glob(".export-*"):
            if staging.is_dir() and not staging.is_symlink():
                shutil.rmtree(staging, ignore_errors=True)
        used = self.journal.files_in_use()
        for file in self.checkpoints.iterdir():
            if CHECKPOINT_NAME.fullmatch(file.name) and file.name not in used:
                file.unlink(missing_ok=True)

    # ---- the run --------------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any] | None:
        if self._journal is None or self._journal.is_empty():
            return None
        config = self.journal.get("config")
        if not isinstance(config, dict):
            raise damaged(self.journal_path, "its configuration is not a dict")
        return config

    @property
    def finished(self) -> bool:
        return self._journal is not None and self.journal.get("finished") is True

    @property
    def best_member(self) -> int | None:
        """The finished run's winner (None while the run goes on)."""
        if self._journal is None:
            return None
        best = self.journal.get("best_member")
        return None if best is None else self.journal.checks.member("the run's best member", best)

    @property
    def final_sequence(self) -> int | None:
        value = None if self._journal is None else self.journal.get("final_sequence")
        return None if value is None else self.journal.checks.integer("the run's final sequence", value)

    def begin(self, config: dict[str, Any], members: Iterable[tuple[int, int, Mapping[str, Any]]]) -> None:
        """Record a new run's configuration and members; for an existing run, check they match."""
        members = list(members)
        stored = self.config
        if stored is None:
            with self.writing():
                if self.journal.is_empty():  # no other writer got there first
                    values = {"config": config, "created_at": time.time(), "pybt_version": __version__}
                    self.journal.start_run(values, members)
                stored = self.config
        self._check_compatible(stored or {}, config)
        self._check_members(members)

    def _check_members(self, members: list[tuple[int, int, Mapping[str, Any]]]) -> None:
        """The stored members must be these (their seeds, their starting hyperparameters)."""
        stored = {m["id"]: (m["seed"], m["initial_hyperparameters"]) for m in self.journal.members()}
        now = {member: (seed, dict(values)) for member, seed, values in members}
        if stored != now:
            differing = sorted(m for m in set(stored) | set(now) if stored.get(m) != now.get(m))
            raise invalid_argument(
                "run_dir",
                str(self.path),
                "a run folder whose members start as this trainer's",
                f"Members {differing} start differently (their seed or first hyperparameters: did the "
                f"model's given values, e.g. its optimizer's learning rate, change?). Use a new run_dir, "
                f"or the old configuration.",
            )

    def seed(self) -> int | None:
        """The seed a stored run started with (checked), or None for a new folder."""
        config = self.config
        if config is None:
            return None
        return self.journal.checks.integer("the configuration's seed", config.get("seed"), 0)

    def last_sequence(self) -> int:
        return self.journal.last_sequence() if self._journal is not None else 0

    def newest_cut_sequence(self) -> int | None:
        cuts = self.journal.cuts() if self._journal is not None else []
        return cuts[0][1] if cuts else None

    def note_objective(self, metric: str | None, mode: str | None) -> None:
        """The run's metric and mode as resolved (readers rank members by them before any cut)."""
        self._writer().set_many({"metric": metric, "mode": mode})

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

    def members(self) -> list[dict[str, Any]]:
        return self.journal.members()

    def rows(self, kind: str) -> list[Record]:
        """The records of one kind (``"steps"``, ``"exploits"``, ``"failures"``), in order."""
        return self.journal.records(kind) if self._journal is not None else []

    def record(self, record: Record) -> None:
        self._writer().add(record)

    def mark_finished(self, best_member: int, sequence: int, winner: Mapping[str, Any] | None = None) -> None:
        journal = self._writer()
        ending = {"finished": True, "best_member": best_member, "final_sequence": sequence}
        journal.set_many({**ending, "winner": dict(winner)} if winner is not None else ending)
        journal.checkpoint_wal()

    # ---- state files and the export -------------------------------------------------------------
    def save_state_file(self, name: str, state: Mapping[str, np.ndarray]) -> str:
        """Write ``run_dir/<name>.npz`` (one of STATE_FILES) atomically; its SHA-256."""
        self._writer()
        data = npz_bytes(state)
        write_atomically(self.path / f"{name}.npz", data)
        return hashlib.sha256(data).hexdigest()

    def read_state_file(self, name: str, sha256: Any) -> dict[str, np.ndarray] | None:
        """The state in ``run_dir/<name>.npz`` if it is intact (its hash matches), else None."""
        if name not in STATE_FILES or not isinstance(sha256, str):
            return None
        path = self.path / f"{name}.npz"
        return None if path.is_symlink() else read_checkpoint(path, sha256)

    def export(self, member: Any) -> str:
        """The winner in its framework's own format as ``run_dir/best.<suffix>``; its file name."""
        self._writer()
        staging = self.path / f".export-{os.getpid()}"
        try:
            staging.mkdir(exist_ok=True)
            written = Path(member.export(staging / EXPORT_NAME))
            os.replace(written, self.path / written.name)
        except OSError as error:
            raise write_failure(self.path / f"{EXPORT_NAME}{member.export_suffix}", error) from error
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return written.name

    def truncate_after(self, sequence: int) -> None:
        """Drop records after ``sequence``: those steps will be trained again."""
        self._writer().truncate_after(sequence)

    def _writer(self) -> Journal:
        if not self._lock.held:
            raise PyBTError(f"run_dir: {self.path} is written only by the process holding its lock.")
        return self.journal

    # ---- checkpoint cuts --------------------------------------------------------------------------
    def save_cut(
        self,
        sequence: int,
        trainer_state: Mapping[str, Any],
        states: Mapping[int, Mapping[str, np.ndarray]],
        epochs: Mapping[int, int],
    ) -> None:
        """Record a cut: new states for the members in ``states``; the others keep their last file."""
        journal = self._writer()
        cuts = journal.cuts()
        files = journal.cut_files(cuts[0][0]) if cuts else {}
        for member, state in states.items():
            data = npz_bytes(state)
            name = f"member-{member:04d}-seq-{sequence:08d}.npz"
            write_atomically(self.checkpoints / name, data)
            files[member] = (name, hashlib.sha256(data).hexdigest(), len(data), epochs[member])
        journal.add_cut(sequence, trainer_state, files)
        kept = journal.cuts()[:CUTS_KEPT]
        journal.forget_cuts_before(kept[-1][0])
        if journal.checkpoint_wal():
            # Files are deleted only once journal.sqlite itself no longer names them.
            used = journal.files_in_use()
            for file in self.checkpoints.glob("*.npz"):
                if file.name not in used:
                    file.unlink(missing_ok=True)

    def latest_cut(self) -> tuple[int, dict[str, Any], dict[int, dict[str, np.ndarray]]] | None:
        """``(sequence, trainer_state, {member: state})`` of the newest cut whose files are all intact.

        None when the journal has no cut; a journal whose every cut is damaged is an error, not
        a silent fresh start that would drop the whole journal.
        """
        if self._journal is None:
            return None
        journal = self.journal
        cuts = journal.cuts()
        damaged_files: list[str] = []
        for cut, sequence in cuts:
            states: dict[int, dict[str, np.ndarray]] = {}
            for member, (name, sha256, _, _) in journal.cut_files(cut).items():
                path = checkpoint_path(self.checkpoints, name)
                if path is None:
                    raise damaged(
                        self.journal_path, f"cut {cut} names the checkpoint {name!r}, outside its folder"
                    )
                state = read_checkpoint(path, sha256)
                if state is None:
                    damaged_files.append(name)
                    break
                states[member] = state
            else:
                return sequence, check_cut_state(journal.checks, cut, journal.cut_state(cut)), states
        if cuts:
            raise TrainingError(
                f"run_dir: no checkpoint cut in {self.path} is intact (damaged or missing: "
                f"{sorted(set(damaged_files))}), so the run cannot resume. Nothing was deleted. Restore "
                f"those files, or start over with a new run_dir."
            )
        return None

    def is_complete(self) -> bool:
        """A finished run whose final cut is intact: re-running it only reads."""
        if not self.finished or self._journal is None:
            return False
        cuts = self.journal.cuts()
        if not cuts or cuts[0][1] != self.final_sequence:
            return False
        for name, sha256, _, _ in self.journal.cut_files(cuts[0][0]).values():
            path = checkpoint_path(self.checkpoints, name)
            try:
                if path is None or hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
                    return False
            except OSError:
                return False
        return True

    def newest_cut_state(self) -> dict[str, Any] | None:
        """The trainer's bookkeeping at the newest cut (its resolved metric and mode, ...)."""
        cuts = self.journal.cuts() if self._journal is not None else []
        if not cuts:
            return None
        return check_cut_state(self.journal.checks, cuts[0][0], self.journal.cut_state(cuts[0][0]))

    def disk_bytes(self) -> int:
        """Bytes the checkpoint folder takes (for tests and benchmarks of the disk bound)."""
        if not self.checkpoints.is_dir():
            return 0
        return sum(file.stat().st_size for file in self.checkpoints.iterdir() if file.is_file())
