"""Reading a run folder without training: its configuration and its records as a RunHistory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pybt.history import RunHistory
from pybt.store.run_store import RunStore


@dataclass(frozen=True)
class StoredRun:
    """What a run folder holds: its configuration, its history, and whether it finished.

    ``best_member`` is the finished run's recorded winner; while the run goes on (or after a
    crash) it is the member that stands best in the records.
    """

    path: Path
    config: dict[str, Any]
    history: RunHistory
    members: list[dict[str, Any]]
    finished: bool
    best_member: int | None

    @property
    def metric(self) -> str | None:
        return self.history.metric

    @property
    def mode(self) -> str | None:
        return self.history.mode


def load_run(run_dir: str | os.PathLike[str]) -> StoredRun:
    """The configuration and records of a run folder (the trainer's ``run_dir``)."""
    store = RunStore.read(run_dir)
    try:
        config = store.config or {}
        # The metric and mode as the trainer resolved them (None in the config means "inferred").
        resolved = store.newest_cut_state() or {}
        history = RunHistory(
            [*store.rows("steps"), *store.rows("exploits"), *store.rows("failures")],
            metric=resolved.get("metric") or config.get("metric"),
            mode=resolved.get("mode") or config.get("mode"),
        )
        best = store.best_member
        if best is None:
            standing = history.best()
            best = None if standing is None else standing.member
        return StoredRun(
            path=Path(run_dir),
            config=config,
            history=history,
            members=store.members(),
            finished=store.finished,
            best_member=best,
        )
    finally:
        store.close()
