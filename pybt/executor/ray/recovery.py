"""Fault recovery for :class:`~pybt.executor.ray.RayExecutor`: the driver's ledger, without Ray.

The ledger records where every member's state is (its *backup*: a reference to the state
its last step or copy left in the object store, and which actor made it), which actor holds
the member in memory, and the steps in flight. The executor does the Ray calls and tells the
ledger what happened; the ledger decides what that means:

- **An actor died.** Of the steps sent to it, the first was running: it runs again on another
  actor, from the member's backup, unless the member's steps have now taken down their actor
  :data:`MAX_DEATHS` times in a row, when it is reported failed (the trainer replaces it by
  exploiting). The step sent ahead never ran: it is queued again. The states the dead actor
  made are probed, since its node may have gone with it.
- **A state was lost with its node.** Every member whose backup it was is reported failed at
  once, even an idle one (waiting for slower members, or done), so that nobody copies it, or
  returns it as the best model, without a state. A step about to start from it fails; one
  already running from it is dropped when it ends.

References to Ray objects are opaque values here, so these rules are tested without Ray.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pybt.executor.base import StepResult
from pybt.executor.ray.scheduling import Job, Scheduler

logger = logging.getLogger(__name__)

#: A member whose step takes down its actor this many times in a row has failed.
MAX_DEATHS = 3
LOST = "its state was lost with the Ray node that held it"


@dataclass
class MemberRecord:
    """The driver's record of one member."""

    seed: int
    backup: Any = None  # ObjectRef of its state after its last step or copy; None = its seed
    origin: int | None = None  # the actor that made ``backup`` (None: this process did)
    holder: int | None = None  # the actor holding a copy of the member in memory
    fresh: bool = False  # whether that copy equals ``backup``
    deaths: int = 0  # actor deaths in a row while running its step
    failed: bool = False  # its last reported step failed, and it has no new state since


@dataclass
class Flight:
    """A step sent to an actor."""

    job: Job
    actor: int
    source: Any  # the backup the step started from (None: the actor's own copy, or the seed)
    sent: int  # launch order: of a dead actor's steps, the first sent was the one running
    state: Any = None  # the reference to the state the step returns
    abandoned: bool = False  # its member was reported failed already; its outcome is dropped


class Ledger:
    """Members' states and the steps in flight, and what a finished step or a fault changes."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.members: dict[int, MemberRecord] = {}
        self.flights: dict[Any, Flight] = {}  # result ref -> step
        # Failures found outside a running step (a state lost with its node), each with whether
        # it answers a submitted step.
        self.news: list[tuple[StepResult, bool]] = []
        self._sent = 0

    # ---- the ordinary course -----------------------------------------------------------------
    def place(self, member: int, seed: int) -> None:
        self.members[member] = MemberRecord(seed=seed)
        self.scheduler.place(member)

    def launch(self, actor: int, job: Job) -> tuple[Flight, bool, int | None]:
        """Send ``job`` to ``actor``: its flight (the executor adds the refs), whether the actor
        must rebuild the member (from ``flight.source``, or its seed), and the actor that held
        the member until now (to drop it), if another."""
        record = self.members[job.member]
        sync = not (record.holder == actor and record.fresh)
        previous = record.holder if record.holder not in (None, actor) else None
        record.holder, record.fresh = actor, False
        self._sent += 1
        return Flight(job, actor, record.backup if sync else None, self._sent), sync, previous

    def finished(self, ref: Any) -> Flight:
        """The step whose result is ``ref`` has ended, one way or another."""
        flight = self.flights.pop(ref)
        self.scheduler.landed(flight.actor)
        return flight

    def landed(self, flight: Flight, result: StepResult) -> StepResult | None:
        """The step ran (it may have failed in the user's code); None when its outcome is dropped."""
        if flight.abandoned:
            return None
        record = self.members[flight.job.member]
        if result.error is None:
            record.backup, record.origin, record.fresh = flight.state, flight.actor, True
            record.deaths, record.failed = 0, False
            self.scheduler.set_epochs(
                flight.job.member, self.scheduler.epochs(flight.job.member) + flight.job.epochs
            )
        else:
            record.failed = True
        return result

    def copy(self, pairs: Sequence[tuple[int, int]]) -> None:
        """Exploit: every donor's backup is taken before any member's changes (a snapshot). The
        executor has given each donor a backup first."""
        donors = {donor: (self.members[donor].backup, self.members[donor].origin) for donor, _ in pairs}
        self.scheduler.copy_epochs(pairs)
        for donor, member in pairs:
            record = self.members[member]
            (record.backup, record.origin), record.fresh, record.failed = donors[donor], False, False

    def restore(self, member: int, backup: Any) -> None:
        """``member``'s state was set from this process (resume, restarting a lost member)."""
        record = self.members[member]
        record.backup, record.origin, record.fresh, record.failed = backup, None, False, False

    def take_news(self) -> list[tuple[StepResult, bool]]:
        news, self.news = self.news, []
        return news

    # ---- faults --------------------------------------------------------------------------------
    def failed(self, job: Job, error: str) -> StepResult:
        """Report ``job``'s member failed: the trainer replaces it by exploiting."""
        record = self.members[job.member]
        record.fresh, record.failed = False, True
        return StepResult(member=job.member, epochs=job.epochs, error=error)

    def not_run(self, flight: Flight, state_lost: bool, error: str) -> StepResult | None:
        """Ray could not run the step (not the user's code failing: run_step catches that). If the
        state it started from was lost with a node, every member holding that state lost it."""
        if flight.abandoned:
            return None
        if state_lost and flight.source is not None:
            result = self.failed(flight.job, LOST)
            self.lost(flight.source)
            return result
        return self.failed(flight.job, error)

    def grounded(self, actor: int, flight: Flight) -> tuple[Flight, list[Flight]]:
        """``actor`` died while ``flight`` was on it: ``(running, waiting)`` of all its steps, which
        leave the ledger. The first sent was running; the others never started."""
        ahead = [ref for ref, other in self.flights.items() if other.actor == actor]
        running, *waiting = sorted([flight, *(self.flights.pop(ref) for ref in ahead)], key=lambda f: f.sent)
        return running, waiting

    def actor_died(self, running: Flight, waiting: list[Flight], error: str) -> StepResult | None:
        """The steps a dead actor had: those that never started are queued again; the running one
        runs again, or fails after :data:`MAX_DEATHS` deaths in a row."""
        for lost in reversed(waiting):
            if not lost.abandoned:
                self.scheduler.requeue(lost.job)
        if running.abandoned:
            return None
        job, record = running.job, self.members[running.job.member]
        record.deaths += 1
        if record.deaths >= MAX_DEATHS:
            record.deaths = 0
            return self.failed(
                job,
                f"its Ray actor died {MAX_DEATHS} times in a row while running this step (killed, "
                f"out of memory, or its node was lost): {error}",
            )
        logger.warning("member %d: its actor died; running its step again on another", job.member)
        self.scheduler.requeue(job)
        return None

    def actor_replaced(self, dead: int, new: int) -> list[Any]:
        """``new`` takes over the dead actor's queue and members; returns the backups the dead actor
        made, to probe: if its node went too, they are gone."""
        self.scheduler.replace_actor(dead, new)
        for record in self.members.values():
            if record.holder == dead:
                record.holder, record.fresh = None, False
        made = {id(record.backup): record.backup for record in self.members.values() if record.origin == dead}
        return list(made.values())

    def lost(self, backup: Any) -> None:
        """Members whose state is ``backup`` lost it: they are all reported failed now.

        A step of theirs that starts from it fails at once (queued: it is not sent; sent: its
        outcome will be dropped). An idle member is reported too. Otherwise the trainer, not
        knowing, would keep handing that state on to the members it replaces, or return it as
        the best model.
        """
        doomed = {
            f.job.member: f
            for f in self.flights.values()
            if not f.abandoned and f.source is not None and (f.source is backup or f.source == backup)
        }
        running = {f.job.member for f in self.flights.values() if not f.abandoned}
        for member, record in self.members.items():
            if record.backup is None or not (record.backup is backup or record.backup == backup):
                continue
            record.fresh = False
            if member in doomed:
                doomed[member].abandoned = True
                job: Job | None = doomed[member].job
            elif member in running:
                continue  # it runs on a copy of its own, made before
            else:
                job = self.scheduler.unqueue(member)
            if job is not None:
                self.news.append((StepResult(member=member, epochs=job.epochs, error=LOST), True))
            elif not record.failed:
                self.news.append((StepResult(member=member, epochs=0, error=LOST), False))
            record.failed = True
