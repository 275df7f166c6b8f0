"""Which step runs where, and next: the queues of :class:`~pybt.executor.ray.RayExecutor`, without Ray.

Each member has a *home* actor and each actor a queue of submitted steps. The rules:

- **Fewest epochs first, then the oldest.** An actor runs, of the steps it may take, the one
  of the member that has trained fewest epochs (then the one submitted first). The
  population stays close in epochs, so a member that exploits copies a donor of about its
  own age, and the trainer's run-ahead limit seldom holds anyone back.
- **One step sent ahead.** An actor that is up holds its running step and the next one
  (already in Ray's queue behind it), so the next starts without a round trip to the driver.
- **No actor idles while steps wait.** An actor takes the steps queued for actors that are
  not up (starting, or replaced after their node went); and one with nothing to do takes a
  step from the longest other queue. A member whose step an actor takes moves home to it.

Actors are known by integer keys and members by their ids; what a key stands for (a Ray
actor handle) is the executor's business, so these rules are tested without Ray.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Steps waiting in an actor's own queue behind the running one.
STEPS_SENT_AHEAD = 1


@dataclass
class Job:
    """A submitted step."""

    member: int
    hyperparameters: dict[str, Any]
    epochs: int
    order: int  # submission order (between members of equal epochs, the oldest runs first)


@dataclass
class _Actor:
    """What the scheduler knows of one actor."""

    up: bool = False  # answered that it holds this run's template and data
    queue: deque[Job] = field(default_factory=deque)
    launched: int = 0  # steps sent to it and not finished: one running, maybe one waiting


class Scheduler:
    """Per-actor queues of submitted steps, each member's home, and what each actor runs next."""

    def __init__(self) -> None:
        self._actors: dict[int, _Actor] = {}
        self._homes: dict[int, int] = {}  # member -> the actor whose queue takes its steps
        self._epochs: dict[int, int] = {}  # member -> epochs its state has trained
        self._submitted = 0

    # ---- actors ----------------------------------------------------------------------------
    @property
    def actors(self) -> list[int]:
        return list(self._actors)

    def add_actor(self, key: int) -> None:
        """A new actor, not up yet: its queue fills, and actors that are up run from it."""
        self._actors[key] = _Actor()

    def actor_up(self, key: int) -> None:
        self._actors[key].up = True

    def replace_actor(self, dead: int, new: int) -> None:
        """``new`` takes over the queue and the members of ``dead``, which is forgotten."""
        old = self._actors.pop(dead)
        self._actors[new].queue.extend(old.queue)
        for member, home in self._homes.items():
            if home == dead:
                self._homes[member] = new

    def landed(self, key: int) -> None:
        """A step sent to ``key`` has finished (or failed)."""
        if key in self._actors:  # (not when the actor was replaced meanwhile)
            self._actors[key].launched -= 1

    # ---- members ---------------------------------------------------------------------------
    def place(self, member: int) -> int:
        """Give ``member`` a home: the actor with fewest members (then the first made)."""
        if not self._actors:
            raise RuntimeError("Scheduler.place() needs an actor")  # the executor adds one first
        homes = [home for other, home in self._homes.items() if other != member]
        home = min(self._actors, key=lambda key: (homes.count(key), key))
        self._homes[member] = home
        self._epochs[member] = 0
        return home

    def home(self, member: int) -> int:
        return self._homes[member]

    def epochs(self, member: int) -> int:
        return self._epochs[member]

    def set_epochs(self, member: int, epochs: int) -> None:
        """The epochs ``member``'s state has trained: after its step, or the donor's after a copy."""
        self._epochs[member] = epochs

    def copy_epochs(self, pairs: Sequence[tuple[int, int]]) -> None:
        """Exploit, ``(donor, member)`` pairs: every donor's count is read before any member's changes."""
        donors = {donor: self._epochs[donor] for donor, _ in pairs}
        for donor, member in pairs:
            self._epochs[member] = donors[donor]

    # ---- steps -----------------------------------------------------------------------------
    def submit(self, member: int, hyperparameters: Mapping[str, Any], epochs: int) -> Job:
        """Queue a step at the member's home."""
        self._submitted += 1
        job = Job(member, dict(hyperparameters), epochs, self._submitted)
        self._actors[self._homes[member]].queue.append(job)
        return job

    def requeue(self, job: Job) -> None:
        """A step that has to run again (its actor died) goes first in its member's home queue."""
        self._actors[self._homes[job.member]].queue.appendleft(job)

    def unqueue(self, member: int) -> Job | None:
        """Take ``member``'s queued step out, if it has one."""
        for actor in self._actors.values():
            for job in actor.queue:
                if job.member == member:
                    actor.queue.remove(job)
                    return job
        return None

    @property
    def queued(self) -> int:
        return sum(len(actor.queue) for actor in self._actors.values())

    def dispatch(self) -> list[tuple[int, Job]]:
        """The steps to send now, as ``(actor, job)``: every actor that is up gets a running step
        and one waiting behind it; only an actor with nothing to do takes another's steps."""
        sends: list[tuple[int, Job]] = []
        for key, actor in self._actors.items():
            while actor.up and actor.launched < STEPS_SENT_AHEAD + 1:
                job = self._next_job(key, steal=actor.launched == 0)
                if job is None:
                    break
                actor.launched += 1
                sends.append((key, job))
        return sends

    def _next_job(self, key: int, steal: bool) -> Job | None:
        """The first due of its own steps and of those queued for actors that are not up (yet,
        or ever: their node is gone); failing those, with ``steal``, the first due of the
        longest queue. The member moves home to ``key``."""
        own = self._actors[key].queue
        queues = [own] if own else []
        queues += [actor.queue for actor in self._actors.values() if actor.queue and not actor.up]
        if not queues:
            longest = max((actor.queue for actor in self._actors.values()), key=len)
            if not (steal and longest):
                return None
            queues = [longest]
        queue, job = min(
            ((queue, min(queue, key=self._due)) for queue in queues), key=lambda q: self._due(q[1])
        )
        queue.remove(job)
        self._homes[job.member] = key
        return job

    def _due(self, job: Job) -> tuple[int, int]:
        return self._epochs[job.member], job.order
