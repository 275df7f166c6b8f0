"""A run folder loses nothing: one writer, no silent restart, bounded disk, clear write errors.

Processes are really started, killed (SIGKILL) and locked out here; the run is the small
deterministic one of ``resumable_run.py``, whose uninterrupted result every recovery must equal.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import pybt
from pybt.store import JOURNAL_NAME, RunFolderBusyError, RunStore, StoreWriteError, load_run

sys.path.insert(0, str(Path(__file__).parent))
from resumable_run import EPOCHS, POPULATION, make_trainer

SCRIPT = Path(__file__).with_name("resumable_run.py")
TOTAL_STEPS = POPULATION * EPOCHS


@pytest.fixture(scope="module")
def uninterrupted() -> pybt.Trainer:
    trainer = make_trainer(None)
    trainer.train()
    return trainer


def key(rows: object) -> list[tuple]:
    return [(r["member"], r["epoch"], r["score"]) for r in rows]  # type: ignore[attr-defined]


def steps_in_journal(run_dir: Path) -> int:
    try:
        with sqlite3.connect(f"file:{run_dir / JOURNAL_NAME}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
    except sqlite3.Error:
        return 0


def cuts_in_journal(run_dir: Path) -> int:
    try:
        with sqlite3.connect(f"file:{run_dir / JOURNAL_NAME}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM cuts").fetchone()[0]
    except sqlite3.Error:
        return 0


def start(run_dir: Path, sleep: float, script: Path = SCRIPT) -> subprocess.Popen:
    calls = run_dir.parent / "calls.txt"
    return subprocess.Popen(
        [sys.executable, str(script), str(run_dir), str(calls), str(sleep)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
    )


def kill_when(process: subprocess.Popen, ready: object, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not ready() and time.time() < deadline:  # type: ignore[operator]
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def files(folder: Path, pattern: str) -> list[str]:
    return sorted(path.name for path in folder.glob(pattern)) if folder.is_dir() else []


# ---- one writer ---------------------------------------------------------------------------------
def test_a_second_writer_is_refused_at_once_and_loses_nothing(tmp_path: Path, uninterrupted) -> None:
    run_dir = tmp_path / "run"
    first = start(run_dir, sleep=0.05)
    try:
        deadline = time.time() + 60
        while steps_in_journal(run_dir) < 8 and time.time() < deadline:
            time.sleep(0.05)
        before = steps_in_journal(run_dir)
        second = make_trainer(str(run_dir))  # reading the configuration needs no lock
        started = time.perf_counter()
        with pytest.raises(RunFolderBusyError) as error:
            second.train()
        assert time.perf_counter() - started < 5, "refused at once, not after waiting"
        message = str(error.value)
        assert str(run_dir) in message and f"process {first.pid}" in message and "since" in message
        assert isinstance(error.value, pybt.PyBTError)
        assert steps_in_journal(run_dir) >= before, "the second trainer deleted nothing"
        assert len(load_run(run_dir).history.steps) >= before, "readers work while the run goes on"
        output, errors = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, errors
    assert json.loads(output)["score"] == uninterrupted.run_history.best().score
    assert key(load_run(run_dir).history.steps) == key(uninterrupted.history)


# ---- no silent restart --------------------------------------------------------------------------
def killed_run(tmp_path: Path, cuts: int = 2) -> Path:
    run_dir = tmp_path / "run"
    process = start(run_dir, sleep=0.01)
    kill_when(process, lambda: cuts_in_journal(run_dir) >= cuts and steps_in_journal(run_dir) < TOTAL_STEPS)
    assert cuts_in_journal(run_dir) >= cuts and steps_in_journal(run_dir) < TOTAL_STEPS
    return run_dir


DIES_AFTER_TWO_CUTS = """
import os, signal, sys
from pybt.callbacks import Callback
from resumable_run import make_trainer

class DieAfterTwoCuts(Callback):
    cuts = 0

    def on_checkpoint(self, trainer, sequence):
        self.cuts += 1

    def on_step(self, trainer, record):
        if self.cuts == 2 and record.member == 2:  # mid-round, between cuts (not while one is written)
            os.kill(os.getpid(), signal.SIGKILL)

trainer = make_trainer(sys.argv[1], sys.argv[2], float(sys.argv[3]))
trainer.callbacks.append(DieAfterTwoCuts())
trainer.train()
"""


def test_a_lost_write_ahead_log_resumes_from_the_main_journal(tmp_path: Path, uninterrupted) -> None:
    # Killed at a set point between cuts: a copy of journal.sqlite taken while a cut is being
    # written into it is torn, and is refused as damaged (tested with the hostile folders).
    script = tmp_path / "dies_after_two_cuts.py"
    script.write_text(textwrap.dedent(DIES_AFTER_TWO_CUTS))
    run_dir = tmp_path / "run"
    process = start(run_dir, 0.0, script)
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL and (run_dir / f"{JOURNAL_NAME}-wal").stat().st_size > 0
    for leftover in (f"{JOURNAL_NAME}-wal", f"{JOURNAL_NAME}-shm"):
        (run_dir / leftover).unlink(missing_ok=True)
    resumed = make_trainer(str(run_dir))
    _, score = resumed.train()
    assert score == uninterrupted.run_history.best().score
    assert key(resumed.history) == key(uninterrupted.history)


@pytest.mark.parametrize("damage", ["missing", "emptied"])
def test_a_journal_lost_beside_its_checkpoints_is_refused_and_nothing_is_deleted(
    tmp_path: Path, damage: str
) -> None:
    run_dir = killed_run(tmp_path, cuts=1)
    journal = run_dir / JOURNAL_NAME
    if damage == "missing":
        journal.unlink()
    else:
        journal.write_bytes(b"")
    (run_dir / f"{JOURNAL_NAME}-wal").unlink(missing_ok=True)
    checkpoints = files(run_dir / "checkpoints", "*.npz")
    assert checkpoints
    with pytest.raises(pybt.PyBTError) as error:
        make_trainer(str(run_dir)).train()
    message = str(error.value)
    assert ("journal is missing" if damage == "missing" else "journal is empty") in message
    assert "Nothing was deleted" in message and str(run_dir) in message
    assert files(run_dir / "checkpoints", "*.npz") == checkpoints


# ---- bounded disk ----------------------------------------------------------------------------------
DIES_IN_A_WRITE = """
import os, signal, sys
import pybt.store.files as files
from resumable_run import make_trainer

renames = {"n": 0}
real_replace = os.replace

def replace(source, target):
    renames["n"] += 1
    if renames["n"] == 7:  # a checkpoint written and flushed, never renamed into place
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(source, target)

files.os.replace = replace
make_trainer(sys.argv[1], sys.argv[2], float(sys.argv[3])).train()
"""


def test_a_checkpoint_write_killed_midway_leaves_no_temporary_file_after_the_next_start(
    tmp_path: Path, uninterrupted
) -> None:
    script = tmp_path / "dies_in_a_write.py"
    script.write_text(textwrap.dedent(DIES_IN_A_WRITE))
    run_dir = tmp_path / "run"
    process = start(run_dir, 0.0, script)
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL
    assert files(run_dir / "checkpoints", ".*.tmp"), "the kill left a temporary file"
    resumed = make_trainer(str(run_dir))
    _, score = resumed.train()
    assert files(run_dir / "checkpoints", ".*.tmp") == []
    assert score == uninterrupted.run_history.best().score


def test_disk_use_stays_within_the_kept_cuts_across_many_crashes(tmp_path: Path, uninterrupted) -> None:
    run_dir = tmp_path / "run"
    for attempt in range(6):
        process = start(run_dir, sleep=0.005)
        wanted = 10 * (attempt + 1)
        kill_when(process, lambda wanted=wanted: steps_in_journal(run_dir) >= wanted)
        checkpoints = run_dir / "checkpoints"
        # At most the two kept cuts (one file per member each) and one unfinished cut.
        assert len(files(checkpoints, "*.npz")) <= 3 * POPULATION
        assert len(files(checkpoints, ".*.tmp")) <= 1
    resumed = make_trainer(str(run_dir))
    _, score = resumed.train()
    assert score == uninterrupted.run_history.best().score
    store = RunStore.read(run_dir)
    in_use = store.journal.files_in_use()
    store.close()
    assert set(files(run_dir / "checkpoints", "*")) == in_use, "only files the kept cuts use are left"
    assert len(in_use) <= 2 * POPULATION


FILE_SIZE_LIMIT = """
import resource, signal, sys
import pybt
from pybt.callbacks import Callback
from resumable_run import make_trainer

class LimitAfterTheFirstCut(Callback):
    def on_checkpoint(self, trainer, sequence):
        # Files may not grow past a few hundred bytes from now on: the next write fails (EFBIG).
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300, resource.RLIM_INFINITY))

trainer = make_trainer(sys.argv[1], sys.argv[2], float(sys.argv[3]))
trainer.callbacks.append(LimitAfterTheFirstCut())
try:
    trainer.train()
except pybt.PyBTError as error:
    print(type(error).__name__, error)
"""


def test_a_file_too_large_is_a_clear_error_and_the_run_resumes(tmp_path: Path, uninterrupted) -> None:
    script = tmp_path / "file_size_limit.py"
    script.write_text(textwrap.dedent(FILE_SIZE_LIMIT))
    run_dir = tmp_path / "run"
    process = start(run_dir, 0.0, script)
    output, errors = process.communicate(timeout=120)
    assert process.returncode == 0, errors
    assert output.startswith("StoreWriteError") and "could not write" in output, output
    assert str(run_dir) in output and "intact" in output
    assert "Traceback" not in errors
    assert files(run_dir / "checkpoints", ".*.tmp") == [], "a failed write removes its temporary file"
    resumed = make_trainer(str(run_dir))
    _, score = resumed.train()
    assert score == uninterrupted.run_history.best().score
    assert key(resumed.history) == key(uninterrupted.history)


def test_a_write_error_names_the_file_and_keeps_what_was_there(tmp_path: Path) -> None:
    from pybt.store.files import write_atomically

    target = tmp_path / "checkpoints" / "member-0000-seq-00000001.npz"
    target.parent.mkdir()
    target.write_bytes(b"before")
    target.parent.chmod(0o500)
    try:
        if os.geteuid() == 0:  # root writes anyway: make the write itself fail instead
            with pytest.raises(StoreWriteError, match="could not write"):
                write_atomically(tmp_path / "no-such-folder" / "x.npz", b"after")
        else:
            with pytest.raises(StoreWriteError, match="permission denied"):
                write_atomically(target, b"after")
    finally:
        target.parent.chmod(0o700)
    assert target.read_bytes() == b"before"
    assert files(target.parent, ".*.tmp") == []


def test_a_second_trainer_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    from pybt.callbacks import Callback

    run_dir = tmp_path / "run"
    seen: list[BaseException] = []

    class TrainAnotherOnTheSameFolder(Callback):
        def on_step(self, trainer: object, record: object) -> None:
            if not seen:
                try:
                    make_trainer(str(run_dir)).train()
                except RunFolderBusyError as error:
                    seen.append(error)

    first = make_trainer(str(run_dir))
    first.callbacks.append(TrainAnotherOnTheSameFolder())
    first.train()
    assert seen and f"process {os.getpid()}" in str(seen[0])
