"""Reading a run folder without training: ``pybt.load_run(run_dir)``.

The run comes back as a :class:`StoredRun`: its configuration, its records as a
:class:`~pybt.history.RunHistory`, whether it finished (or runs now, or was interrupted), and the
winner's weights, loaded into a model of yours with :meth:`StoredRun.best_model`. Reading takes
no lock and writes nothing, so it works while the run goes on and on a read-only folder.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pybt._validate import check_instance
from pybt.errors import PyBTError, describe_exception, invalid_argument
from pybt.history import RunHistory
from pybt.lineage import ScheduleEntry, Segment
from pybt.model.base import ModelWrapper, member_with_state
from pybt.store.run_store import RunStore


@dataclass(frozen=True)
class StoredRun:
    """What a run folder holds: its configuration, its history, and how it stands.

    ``best_member`` / ``best_score`` are the finished run's winner (what ``train()`` returned);
    while the run goes on (or after a crash) they are the member that stands best in the
    records. ``status`` is ``"finished"``, ``"running"`` (a process holds the folder's lock) or
    ``"interrupted"``.
    """

    path: Path
    config: dict[str, Any]
    history: RunHistory
    members: list[dict[str, Any]]
    finished: bool
    best_member: int | None
    best_score: float | None
    status: str
    created_at: float | None
    updated_at: float | None
    version: str | None
    winner: dict[str, Any] | None = None

    @property
    def metric(self) -> str | None:
        return self.history.metric

    @property
    def mode(self) -> str | None:
        return self.history.mode

    def history_frame(self) -> Any:
        """The steps as a pandas DataFrame (``hp_*`` and ``metric_*`` columns); needs pandas."""
        return self.history.frame()

    def lineage(self, member: int | None = None) -> list[Segment]:
        """The members whose training made ``member``'s weights (default: the winner's, as
        ``train()`` returned them)."""
        return self.history.lineage(*self._point(member))

    def schedule(self, member: int | None = None) -> list[ScheduleEntry]:
        """The hyperparameters, step by step, that trained ``member``'s weights (default: the
        winner's, as ``train()`` returned them)."""
        return self.history.schedule(*self._point(member))

    def _point(self, member: int | None) -> tuple[int | None, float]:
        if member is not None:
            return member, math.inf
        sequence = (self.winner or {}).get("sequence")
        bound = (
            float(sequence)
            if isinstance(sequence, (int, float)) and not isinstance(sequence, bool)
            else math.inf
        )
        return self.best_member, bound

    def best_model(self, model: ModelWrapper) -> Any:
        """Your own model (a ``keras.Model``, an ``nn.Module``, a state...) with the winner's
        weights: ``model`` is the wrapper the run trained (built the same way).

        A finished run gives exactly what ``train()`` returned; an unfinished one the member
        that stood best at its newest checkpoint cut.
        """
        check_instance("model", model, ModelWrapper, "KerasModelWrapper(model, optimizer=..., loss=...)")
        seeds = {entry["id"]: entry["seed"] for entry in self.members}
        store = RunStore.read(self.path)
        try:
            winner = self.winner or {}
            state = store.read_state_file("winner", winner.get("sha256"))
            member = winner.get("member")
            if state is None:
                member, state = _best_at_newest_cut(store, self.history)
        finally:
            store.close()
        try:
            return member_with_state(model, seeds[member], state).unwrap()
        except PyBTError:
            raise
        except Exception as error:  # the framework's: the weights do not fit this model
            raise invalid_argument(
                "model", type(model).__name__, "the wrapper of the model this run trained",
                f"The winner's weights do not fit it ({describe_exception(error)}).",
            ) from error  # fmt: skip


def _best_at_newest_cut(store: RunStore, history: RunHistory) -> tuple[int, dict[str, Any]]:
    cut = store.latest_cut()
    if cut is None:
        raise PyBTError(f"run_dir: {store.path} holds no checkpoint yet, so no weights to load.")
    sequence, _, states = cut
    standings = [history.standing(member, before=sequence + 0.5) for member in states]
    ranked = [s for s in standings if s is not None]
    if not ranked:
        raise PyBTError(f"run_dir: {store.path} holds no scored member at its newest checkpoint.")
    best = max(ranked, key=lambda s: (history.fitness(s.score), -s.member))
    return best.member, states[best.member]


def load_run(run_dir: str | os.PathLike[str]) -> StoredRun:
    """The configuration and records of a run folder (the trainer's ``run_dir``)."""
    store = RunStore.read(run_dir)
    try:
        config = store.config or {}
        # The metric and mode as the trainer resolved them (None in the config means "inferred"),
        # from the run table (written when resolved), else the newest cut (older run folders).
        resolved = store.newest_cut_state() or {}
        metric = store.journal.get("metric") or resolved.get("metric") or config.get("metric")
        mode = store.journal.get("mode") or resolved.get("mode") or config.get("mode")
        history = RunHistory(
            [*store.rows("steps"), *store.rows("exploits"), *store.rows("failures")],
            metric=metric if isinstance(metric, str) else None,
            mode=mode if mode in ("max", "min") else None,
        )
        winner = store.journal.get("winner")
        winner = winner if isinstance(winner, dict) else None
        best, best_score = store.best_member, None
        if winner is not None:
            best_score = store.journal.checks.number("the winner's score", winner.get("score"))
        else:
            standing = history.best()
            if standing is not None:
                best = standing.member if best is None else best
                best_score = standing.score
        finished = store.finished
        times = [
            t for t in (store.journal.get("created_at"), store.journal.last_recorded_at()) if t is not None
        ]
        return StoredRun(
            path=Path(run_dir),
            config=config,
            history=history,
            members=store.members(),
            finished=finished,
            best_member=best,
            best_score=best_score,
            status="finished" if finished else ("running" if store.lock_holder() else "interrupted"),
            created_at=min(times) if times else None,
            updated_at=max(times) if times else None,
            version=store.journal.get("pybt_version"),
            winner=winner,
        )
    finally:
        store.close()
