"""Run folders: a run's journal and checkpoints, so it can resume after a crash and be reported.

Layout of ``run_dir``::

    journal.sqlite            SQLite (stdlib sqlite3, WAL): config, members, steps, exploits,
                              failures, and one row per checkpoint *cut*
    checkpoints/*.npz         member states, NumPy .npz loaded with allow_pickle=False

- :mod:`pybt.store.journal`: :class:`RunStore`, the writer (records, cuts, resume);
- :mod:`pybt.store.files`: checkpoint files (atomic writes, hashes, no pickle);
- :mod:`pybt.store.values`: journal values as JSON, configuration descriptions;
- :mod:`pybt.store.reader`: :func:`load_run`, a run folder as a :class:`StoredRun`.
"""

from __future__ import annotations

from pybt.store.files import read_checkpoint, write_atomically
from pybt.store.journal import CHECKPOINT_DIR, JOURNAL_NAME, RunStore
from pybt.store.reader import StoredRun, load_run
from pybt.store.values import describe, dumps, loads

__all__ = [
    "CHECKPOINT_DIR",
    "JOURNAL_NAME",
    "RunStore",
    "StoredRun",
    "describe",
    "dumps",
    "load_run",
    "loads",
    "read_checkpoint",
    "write_atomically",
]
