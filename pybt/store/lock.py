"""One writer per run folder: an exclusive OS lock on ``run_dir/lock``, with who holds it.

The lock is an advisory ``flock`` (``msvcrt.locking`` on Windows) on a small file. The
operating system drops it when its holder's process ends, however it ends, so a crashed run
never leaves a folder locked. While held, the file names the holder (pid, host, since when),
so a second writer is refused at once with an error that says who has the folder.
Readers (reports, ``load_run``, replay) never take the lock and never write.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import IO, Any

from pybt.errors import PyBTError

LOCK_NAME = "lock"


class RunFolderBusyError(PyBTError, RuntimeError):
    """Another process (or another Trainer) is writing to this run folder."""


def _try_lock(handle: IO[bytes], shared: bool = False) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):
        return False
    return True


def _unlock(handle: IO[bytes]) -> None:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _holder_text(path: Path) -> str:
    try:
        holder: Any = json.loads(path.read_text(encoding="utf-8"))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder["since"])))
        return f"process {int(holder['pid'])} on {str(holder['host'])[:100]} since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


class RunLock:
    """The writer's lock on one run folder; ``with RunLock(folder):`` holds it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self._handle: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self) -> None:
        """Take the lock, or raise RunFolderBusyError naming the folder and its holder."""
        if self._handle is not None:
            return
        try:
            handle = open(self.path, "a+b")  # held open for as long as the lock is
        except OSError as error:
            raise PyBTError(
                f"run_dir: cannot write to {self.folder} to lock it for this run ({error.strerror}). "
                f"Give a folder this process may write to."
            ) from error
        if not _try_lock(handle):
            handle.close()
            raise RunFolderBusyError(
                f"run_dir: {self.folder} is in use by {_holder_text(self.path)}: one run folder has one "
                f"writer at a time. Wait for that run to end (or stop it), or use another run_dir. Reading "
                f"it (pybt report, pybt.load_run) works meanwhile."
            )
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder).encode())
        handle.flush()
        self._handle = handle

    def holder(self) -> str | None:
        """Who holds the lock now, or None when nobody does (a check that takes it for no time)."""
        if self._handle is not None:
            return _holder_text(self.path)
        try:
            handle = open(self.path, "rb")  # read-only: a reader may not write to the folder
        except OSError:
            return None
        with handle:
            if not _try_lock(handle, shared=True):
                return _holder_text(self.path)
            _unlock(handle)
        return None

    def release(self) -> None:
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        try:
            handle.seek(0)
            handle.truncate()
        except OSError:
            pass  # the holder text is a courtesy; closing the file is what frees the lock
        handle.close()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
