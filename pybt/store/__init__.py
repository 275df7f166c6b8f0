"""Run folders: a run's journal and checkpoints, so it can resume after a crash and be reported.

Layout of ``run_dir``::

    journal.sqlite            SQLite (stdlib sqlite3, WAL): config, members, steps, exploits,
                              failures, and one row per checkpoint *cut*
    checkpoints/*.npz         member states, uncompressed NumPy .npz loaded without pickle
    lock                      held by the one process writing

- :mod:`pybt.store.run_store`: :class:`RunStore`, the folder (one writer, cuts, resume);
- :mod:`pybt.store.journal`: the SQLite layer; :mod:`pybt.store.checks`: every value read back
  is checked; :mod:`pybt.store.lock`: the writer's lock;
- :mod:`pybt.store.files`: checkpoint files (atomic writes, hashes, no pickle, no inflating);
- :mod:`pybt.store.values`: journal values as JSON, configuration descriptions;
- :mod:`pybt.store.reader`: :func:`load_run`, a run folder as a :class:`StoredRun`, read-only.
"""

from __future__ import annotations

from pybt.store.checks import DamagedRunFolderError
from pybt.store.files import StoreWriteError, read_checkpoint, write_atomically
from pybt.store.journal import JOURNAL_NAME
from pybt.store.lock import RunFolderBusyError
from pybt.store.reader import StoredRun, load_run
from pybt.store.run_store import CHECKPOINT_DIR, RunStore
from pybt.store.values import check_round_trip, describe, dumps, loads

__all__ = [
    "CHECKPOINT_DIR",
    "JOURNAL_NAME",
    "DamagedRunFolderError",
    "RunFolderBusyError",
    "RunStore",
    "StoreWriteError",
    "StoredRun",
    "check_round_trip",
    "describe",
    "dumps",
    "load_run",
    "loads",
    "read_checkpoint",
    "write_atomically",
]
