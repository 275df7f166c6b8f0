"""Checkpoint cuts of a run folder: when one is due, taking it, and resuming from one.

A *cut* is a consistent picture of the whole run at one record sequence number: the state of
every member (only those that changed since the last cut are written again) and the
population's bookkeeping (members, random state, the resolved metric and mode). A cut is due
once every live member has passed a ready point beyond the last cut's. On an asynchronous
executor steps are still running then; the cut waits for them to finish (*draining*: nothing
new starts meanwhile), so that no member's state is from after the cut's sequence number.

Resuming restores the newest intact cut, drops the records made after it (those steps are
trained again, exactly once) and puts every member's state back into the executor.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from pybt.errors import invalid_argument
from pybt.executor.base import Executor
from pybt.history import Standing
from pybt.model.base import ModelWrapper
from pybt.population import Population
from pybt.runlog import RunLog
from pybt.store import RunStore
from pybt.winner import BestKeeper

logger = logging.getLogger(__name__)


class Checkpoints:
    """Takes the cuts of one run folder and resumes from them."""

    def __init__(
        self,
        store: RunStore,
        executor: Executor,
        population: Population,
        log: RunLog,
        keeper: BestKeeper | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.population = population
        self.log = log
        self.keeper = keeper  # result="best_ever": the best state seen, written with each cut
        self._kept_entry: dict[str, Any] | None = None
        self._cut_at: int | None = None  # the sequence of the newest cut taken
        self.changed: set[int] = set(population.members)  # states not in the last cut
        self.mark = 0  # the ready epoch every live member had passed at the last cut
        self.draining = False  # a cut waits for running steps, and nothing new starts

    def due(self) -> bool:
        mark = self.population.ready_mark()
        return mark is not None and mark > self.mark

    def after_turn(self, running: Collection[int]) -> None:
        """Take a cut if one is due (or drain towards it while steps are running)."""
        if self.draining or self.due():
            if running:
                self.draining = True
            else:
                self.cut()

    def cut(self) -> None:
        """Checkpoint every member whose state changed, with the bookkeeping to resume from here.

        The cut's mark, the changed set and the draining flag move on only once it is written:
        a cut that fails (an interrupt, a full disk) is taken again by the next turn."""
        ready = self.population.ready_mark()
        mark = self.mark if ready is None else ready
        history = self.log.history
        state = {
            **self.population.state(),
            "metric": history.metric,
            "mode": history.mode,
            "cut_mark": mark,
        }
        states = {member: self.executor.get_state(member) for member in sorted(self.changed)}
        epochs = {member.id: member.epoch for member in self.population.members.values()}
        kept_entry = self._kept_entry
        if self.keeper is not None and self.keeper.kept is not None and self.keeper.changed:
            kept = self.keeper.kept
            sha256 = self.store.save_state_file("best-ever", kept.state)
            kept_entry = {**kept.standing._asdict(), "sequence": kept.sequence, "sha256": sha256}
        if kept_entry is not None:
            state["kept"] = kept_entry
        self.store.save_cut(self.log.sequence, state, states, epochs)
        self.mark, self._kept_entry, self._cut_at = mark, kept_entry, self.log.sequence
        if self.keeper is not None:
            self.keeper.changed = False
        self.changed.clear()
        self.draining = False
        self.log.checkpoint(self.log.sequence)

    def finish(
        self, winner: Standing, winner_state: Mapping[str, np.ndarray], member: ModelWrapper, sequence: float
    ) -> None:
        """The run is over: a last cut, the winner's state and export written, the end recorded
        (once). ``member`` holds the winner's weights, for its framework's own export;
        ``sequence`` bounds the records behind them (a kept state: from before the end)."""
        if self.store.finished:
            return
        if self.changed or self._cut_at != self.log.sequence:  # (not again, after an interrupt)
            self.cut()
        sha256 = self.store.save_state_file("winner", winner_state)
        exported = self.store.export(member)
        at = min(sequence, self.log.sequence + 0.5)
        entry = {**winner._asdict(), "sequence": at, "sha256": sha256, "export": exported}
        self.store.mark_finished(winner.member, self.log.sequence, entry)

    def resume(self) -> None:
        """Continue from the newest intact cut; records made after it are dropped, to be redone."""
        store = self.store
        cut = store.latest_cut()
        if cut is None:
            store.truncate_after(0)
            return
        sequence, state, member_states = cut
        if not (store.finished and store.final_sequence == sequence):
            store.truncate_after(sequence)
        records = [*store.rows("steps"), *store.rows("exploits"), *store.rows("failures")]
        self.log.reload(records, state["metric"], state["mode"])
        self.population.restore(state)
        self._restore_kept(state.get("kept"))
        self.mark = state["cut_mark"]
        for member_id, member_state in member_states.items():
            try:
                self.executor.set_state(member_id, member_state)
            except Exception as error:  # the wrapper's or the framework's: the state does not fit
                raise invalid_argument(
                    "run_dir",
                    str(store.path),
                    "checkpoints this model can load",
                    f"Member {member_id}'s checkpoint does not fit the model "
                    f"({type(error).__name__}: {error}). The run folder was written by another "
                    f"model (architecture or state layout); use a new run_dir, or the old model.",
                ) from error
        self.changed.clear()
        self._cut_at = sequence
        logger.info("resumed %s at sequence %d", store.path, sequence)

    def _restore_kept(self, entry: Any) -> None:
        """The best state seen before the resume (result="best_ever"), if it is intact."""
        if self.keeper is None or not isinstance(entry, dict):
            return
        state = self.store.read_state_file("best-ever", entry.get("sha256"))
        try:
            if state is None:
                raise ValueError("missing or damaged")
            self.keeper.restore(entry, state)
            self._kept_entry = entry
        except (KeyError, TypeError, ValueError):
            logger.warning(
                "%s: the best state seen before is missing or damaged; keeping anew", self.store.path
            )
