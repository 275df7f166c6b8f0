"""Members as Ray actors, on one machine or a cluster: asynchronous PBT.

``Trainer(..., executor=RayExecutor())`` runs the same loop as in process, but each member is
scored and decides as soon as its own step finishes (``completed()`` waits for the first
finished step, then hands over every step finished so far).

How it works, and why:

- **A pool of host actors.** A Ray actor holds its CPUs for its whole life, so one actor per
  member would not fit a population of 8 on 2 CPUs. Instead ``max_concurrent`` actors
  (default: the cluster's CPUs // ``num_cpus_per_member``, at most the population) each host
  several members in memory and run one step at a time.
- **Data once.** The template wrapper, ``fit_args`` and ``eval_args`` go to the object store
  once (``ray.put``); every actor, replacements included, reads them from there.
- **Queues.** Each member has a home actor and each actor a queue of submitted steps. An
  actor runs its own steps, the member that has trained fewest epochs first (then the
  oldest): the population stays close in epochs, so members compare and copy at comparable
  epochs. Its next step already waits in Ray's queue behind the running one, so it starts
  without a round trip to the driver. An actor with nothing to do takes a step from the
  longest other queue (and of actors not up), and that member moves home: no actor idles
  while steps wait, and no member is starved while others run ahead (the trainer also caps
  how far ahead a member may start a step).
- **States live in the object store.** A step returns ``(result, state)`` as two objects; the
  driver fetches only the result and keeps a reference to the state as the member's backup.
  Exploit copies no bytes at decision time: the member's backup becomes the donor's (a
  snapshot of the donor at the epoch the trainer recorded, even if the donor is training
  again), and the member's next step hands that reference to its actor, so the state goes
  actor to actor through the object store, never through the driver or the disk.
- **Faults.** If an actor's process dies (killed, out of memory, node lost), a replacement
  actor is started, the dead actor's members are rebuilt from their backups (or their seeds,
  before their first step) on whichever actor runs them next, and the lost step runs again:
  the trainer never notices. A member whose step takes down its actor 3 times in a row is
  reported as a failed step, which the trainer replaces by exploiting, as in process. So is
  a member whose backup was lost with its node: the states a dead actor made are probed (a
  zero-CPU task that fetches them), and a member found without one is reported failed even
  if idle, so nobody copies it, or returns it, without a state.
- ``model(member)`` rebuilds the member in the driver from its backup (``spawn`` +
  ``set_state``); ``shutdown()`` kills the actors (and stops Ray if this executor started it).

``address=None`` uses the running Ray if ``ray.init`` was called, else starts Ray on this
machine; ``address="auto"`` joins the cluster that ``ray start --head`` started, and
``"ray://host:10001"`` connects through Ray Client. To pass Ray other options (a
``runtime_env`` that ships your code to the cluster, say), call ``ray.init(...)`` yourself
first. Decisions depend on which step finishes first, so a seeded run on Ray is not
reproducible step for step, although each member's training is.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pybt.errors import TrainingError, invalid_argument, missing_extra
from pybt.executor._ray_actor import MemberHost, touch
from pybt.executor.base import Executor, StepResult
from pybt.model.base import ModelWrapper, State

logger = logging.getLogger(__name__)

#: A member whose step takes down its actor this many times in a row has failed.
MAX_DEATHS = 3
#: Environment variables the actors take from the driver (Keras picks its backend at import).
FORWARDED_ENVIRONMENT = ("KERAS_BACKEND",)
_QUIET_WARNING_S = 60.0  # say so when no step has finished for this long
_STEPS_SENT_AHEAD = 1  # steps waiting in an actor's own queue behind the running one
_LOST = "its state was lost with the Ray node that held it"


def _ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError as error:
        if error.name == "ray":
            raise missing_extra("Ray", "ray") from error
        raise
    return ray


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@dataclass
class _Job:
    """A submitted step."""

    member: int
    hyperparameters: dict[str, Any]
    epochs: int
    order: int  # submission order (between members of equal epochs, the oldest runs first)


@dataclass
class _Host:
    """The driver's record of one actor."""

    key: int
    handle: Any
    ready_ref: Any  # the answer to ``ready()``; None once the actor is up
    queue: deque[_Job] = field(default_factory=deque)
    launched: int = 0  # steps sent to it and not finished: one running, maybe one waiting

    @property
    def up(self) -> bool:
        return self.ready_ref is None


@dataclass
class _Slot:
    """The driver's record of one member."""

    seed: int
    home: int  # the actor whose queue takes its steps
    backup: Any = None  # ObjectRef of its state after its last step or copy; None = its seed
    origin: int | None = None  # the actor that made ``backup`` (None: this process did)
    holder: int | None = None  # the actor holding a copy of the member in memory
    fresh: bool = False  # whether that copy equals ``backup``
    deaths: int = 0  # actor deaths in a row while running its step
    epochs: int = 0  # epochs its state has trained (the trainer's count, seen from here)
    failed: bool = False  # its last reported step failed, and it has no new state since


@dataclass
class _Flight:
    """A step running on an actor."""

    job: _Job
    host: int
    state_ref: Any  # the state the step returns
    source: Any  # the backup the step started from (None: the actor's own copy, or the seed)
    sent: int  # launch order: of a dead actor's steps, the first sent was the one running
    abandoned: bool = False  # its member was reported failed already; its outcome is dropped


class RayExecutor(Executor):
    """Runs members on a pool of Ray actors and decides for each member as its step ends.

    ``num_cpus_per_member``/``num_gpus_per_member`` are the Ray resources each actor holds
    (one step runs on an actor at a time); ``max_concurrent`` is the number of actors, by
    default as many as the cluster's resources fit, at most one per member.
    """

    def __init__(
        self,
        address: str | None = None,
        num_cpus_per_member: float = 1,
        num_gpus_per_member: float = 0,
        max_concurrent: int | None = None,
    ) -> None:
        _ray()  # a missing extra is reported where the executor is made
        if address is not None and not isinstance(address, str):
            raise invalid_argument(
                "RayExecutor(address)", address, "None, 'auto' or a Ray address such as 'ray://head:10001'"
            )
        for name, value, least in (
            ("num_cpus_per_member", num_cpus_per_member, "a number > 0"),
            ("num_gpus_per_member", num_gpus_per_member, "a number >= 0"),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
                or (value == 0 and name == "num_cpus_per_member")
            ):
                raise invalid_argument(f"RayExecutor({name})", value, least)
        if max_concurrent is not None and (
            not isinstance(max_concurrent, int) or isinstance(max_concurrent, bool) or max_concurrent < 1
        ):
            raise invalid_argument(
                "RayExecutor(max_concurrent)", max_concurrent, "an integer >= 1 or None (fit the cluster)"
            )
        self.address = address
        self.num_cpus_per_member = num_cpus_per_member
        self.num_gpus_per_member = num_gpus_per_member
        self.max_concurrent = max_concurrent
        self._ray_module: Any = None
        self._owns_ray = False
        self._template: ModelWrapper | None = None
        self._payload: list[Any] = []
        self._actor_class: Any = None
        self._pool_size = 0
        self._hosts: dict[int, _Host] = {}
        self._shut_down = False
        self._starting: dict[Any, int] = {}  # ready ref -> host key
        self._flights: dict[Any, _Flight] = {}  # result ref -> step
        self._probes: dict[Any, Any] = {}  # probe ref -> the backup it checks
        self._probe: Any = None
        # Failures found outside a running step (a state lost with its node), and whether each
        # answers a submitted step.
        self._news: list[tuple[StepResult, bool]] = []
        self._members: dict[int, _Slot] = {}
        self._next_key = 0
        self._submitted = 0
        self._sent = 0
        self._pending = 0
        #: How many actors died and were replaced during the run.
        self.restarts = 0

    def __repr__(self) -> str:
        return (
            f"RayExecutor(address={self.address!r}, num_cpus_per_member={self.num_cpus_per_member}, "
            f"num_gpus_per_member={self.num_gpus_per_member}, max_concurrent={self.max_concurrent})"
        )

    # ---- set-up ---------------------------------------------------------------------------
    def start(
        self, template: ModelWrapper, fit_args: Mapping[str, Any], eval_args: Mapping[str, Any]
    ) -> None:
        ray = self._ray_module = _ray()
        if not ray.is_initialized():
            ray.init(address=self.address)
            self._owns_ray = True
        self._pool_size = self._fitting_pool_size(ray.cluster_resources())
        self._template = template
        self._payload = [ray.put(template), ray.put(dict(fit_args)), ray.put(dict(eval_args))]
        self._actor_class = ray.remote(MemberHost)
        self._probe = ray.remote(num_cpus=0)(touch)

    def _fitting_pool_size(self, resources: Mapping[str, float]) -> int:
        if self.max_concurrent is not None:
            return self.max_concurrent  # trust it: an autoscaling cluster may grow to fit
        cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
        fits = cpus // self.num_cpus_per_member
        if self.num_gpus_per_member:
            fits = min(fits, gpus // self.num_gpus_per_member)
        if fits < 1:
            raise invalid_argument(
                "RayExecutor(num_cpus_per_member, num_gpus_per_member)",
                (self.num_cpus_per_member, self.num_gpus_per_member),
                f"resources one member fits in; the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs",
                "Ask for less per member, add nodes, or pass max_concurrent if the cluster autoscales.",
            )
        return int(fits)

    def _new_host(self) -> _Host:
        environment = {name: os.environ[name] for name in FORWARDED_ENVIRONMENT if name in os.environ}
        handle = self._actor_class.options(
            num_cpus=self.num_cpus_per_member,
            num_gpus=self.num_gpus_per_member,
            # Members are CPU- or GPU-bound: one actor per node before two on one.
            scheduling_strategy="SPREAD",
        ).remote(environment, self._payload, max(1, int(self.num_cpus_per_member)))
        host = _Host(key=self._next_key, handle=handle, ready_ref=handle.ready.remote())
        self._next_key += 1
        self._hosts[host.key] = host
        self._starting[host.ready_ref] = host.key
        return host

    def place(self, member_id: int, seed: int) -> None:
        if self._actor_class is None:
            raise TrainingError("RayExecutor.start() comes before place().")
        if len(self._hosts) < self._pool_size:
            self._new_host()
        homes = [slot.home for key, slot in self._members.items() if key != member_id]
        home = min(self._hosts, key=lambda key: (homes.count(key), key))
        self._members[member_id] = _Slot(seed=seed, home=home)

    # ---- steps ----------------------------------------------------------------------------
    def submit(self, member_id: int, hyperparameters: Mapping[str, Any], epochs: int) -> None:
        if self._shut_down:
            # train() ended or was interrupted and shut the executor down: its actors are gone.
            raise TrainingError(
                "This RayExecutor was shut down by an earlier train(), with its actors and members. "
                "Create a new Trainer with a new RayExecutor; with run_dir= it resumes from the last "
                "checkpoint."
            )
        slot = self._members[member_id]
        self._submitted += 1
        self._hosts[slot.home].queue.append(_Job(member_id, dict(hyperparameters), epochs, self._submitted))
        self._pending += 1
        self._dispatch()

    @property
    def pending(self) -> int:
        return self._pending

    def completed(self) -> Iterator[StepResult]:
        ray = self._ray_module
        batch: list[tuple[StepResult, float]] = []
        while self._pending and not batch and not self._news:
            self._dispatch()
            waiting = [*self._flights, *self._starting, *self._probes]
            if not waiting:
                raise TrainingError("RayExecutor has steps to run but no Ray actor to run them.")
            done, _ = ray.wait(waiting, num_returns=1, timeout=_QUIET_WARNING_S)
            if not done:
                logger.warning(
                    "No step has finished for %.0f s: %d steps running, %d actors waiting for "
                    "resources (check `ray status`).",
                    _QUIET_WARNING_S,
                    len(self._flights),
                    len(self._starting),
                )
                continue
            done, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)
            for ref in done:
                if ref in self._starting:
                    self._host_started(ref)
                elif ref in self._probes:
                    self._probed(ref)
                elif ref in self._flights:  # (not when its actor's death was handled already)
                    outcome = self._finish(ref)
                    if outcome is not None:
                        batch.append(outcome)
        self._dispatch()  # freed actors start queued steps while the trainer decides
        # Members found without a state come first, so no decision in this batch copies them.
        news, self._news = self._news, []
        for result, submitted in news:
            self._pending -= submitted
            yield result
        for result, _ in sorted(batch, key=lambda item: item[1]):
            self._pending -= 1
            yield result

    def _dispatch(self) -> None:
        """Keep every actor that is up busy, with its next step already waiting in Ray's queue.

        The waiting step starts as soon as the running one ends, without a round trip to this
        process. Only an actor with nothing to do takes steps from another actor's queue.
        """
        for host in self._hosts.values():
            while host.up and host.launched < _STEPS_SENT_AHEAD + 1:
                job = self._next_job(host, steal=host.launched == 0)
                if job is None:
                    break
                self._launch(host, job)

    def _next_job(self, host: _Host, steal: bool) -> _Job | None:
        """The first due of its own steps and of those queued for actors that are not up (yet,
        or ever: their node is gone); failing those, with ``steal``, the first due of the
        longest queue. The member moves to ``host``.

        Due first: the member that has trained fewest epochs, then the oldest submission. The
        population stays close in epochs, so a member that exploits copies a donor of about
        its own age, and the trainer's run-ahead limit seldom holds anyone back.
        """
        queues = [host.queue] if host.queue else []
        queues += [
            other.queue for other in self._hosts.values() if other.queue and other.ready_ref is not None
        ]
        if not queues:
            queues = [max((other.queue for other in self._hosts.values()), key=len)]
            if not (steal and queues[0]):
                return None
        queue, job = min(
            ((queue, min(queue, key=self._due)) for queue in queues), key=lambda q: self._due(q[1])
        )
        queue.remove(job)
        self._members[job.member].home = host.key
        return job

    def _due(self, job: _Job) -> tuple[int, int]:
        return self._members[job.member].epochs, job.order

    def _launch(self, host: _Host, job: _Job) -> None:
        slot = self._members[job.member]
        sync = not (slot.holder == host.key and slot.fresh)
        source = slot.backup if sync else None
        if slot.holder is not None and slot.holder != host.key and slot.holder in self._hosts:
            self._hosts[slot.holder].handle.drop.remote(job.member)
        result_ref, state_ref = host.handle.step.options(num_returns=2).remote(
            job.member, slot.seed, job.hyperparameters, job.epochs, source, sync
        )
        slot.holder, slot.fresh = host.key, False
        host.launched += 1
        self._sent += 1
        self._flights[result_ref] = _Flight(job, host.key, state_ref, source, self._sent)

    def _finish(self, ref: Any) -> tuple[StepResult, float] | None:
        """The outcome of a step, or None when it runs again after its actor died."""
        ray = self._ray_module
        flight = self._flights.pop(ref)
        host = self._hosts.get(flight.host)
        if host is not None:
            host.launched -= 1
        slot = self._members[flight.job.member]
        try:
            result, finished_at = ray.get(ref)
        except ray.exceptions.RayActorError as error:
            return self._actor_lost(flight, host, error)
        except ray.exceptions.RayError as error:
            # Not the user's step (run_step catches that): the state it starts from was lost
            # with a node, say. The member fails, and the trainer replaces it by exploiting.
            self._discard(flight.state_ref)
            if flight.abandoned:
                return None
            cause = getattr(error, "cause", None) or error
            if isinstance(cause, ray.exceptions.ObjectLostError) and flight.source is not None:
                failed = self._failed(flight.job, _LOST)
                self._lost(flight.source)  # every other member holding that state lost it too
                return failed, 0.0
            text = f"Ray could not run the step: {type(cause).__name__}: {_first_line(cause)}"
            return self._failed(flight.job, text), 0.0
        if flight.abandoned:
            return None
        if result.error is None:
            slot.backup, slot.origin, slot.fresh = flight.state_ref, flight.host, True
            slot.deaths, slot.failed = 0, False
            slot.epochs += flight.job.epochs
        else:
            slot.failed = True
        return result, finished_at

    def _actor_lost(
        self, flight: _Flight, host: _Host | None, error: BaseException
    ) -> tuple[StepResult, float] | None:
        """Replace a dead actor. Of the steps sent to it, the first was running: it runs again
        (or fails, after too many deaths); the one sent ahead never ran, and is queued again."""
        ahead = {ref: other for ref, other in self._flights.items() if other.host == flight.host}
        for ref in ahead:
            del self._flights[ref]
        running, *waiting = sorted([flight, *ahead.values()], key=lambda f: f.sent)
        for lost in (running, *waiting):
            self._discard(lost.state_ref)
        if host is not None:
            self._replace(host, error)
        for lost in reversed(waiting):
            if not lost.abandoned:
                self._requeue(lost.job)
        return None if running.abandoned else self._actor_died(running.job, error)

    def _discard(self, ref: Any) -> None:
        """Take the error out of a step's unused state, so Ray does not report it as unhandled."""
        try:
            self._ray_module.get(ref, timeout=0)
        except Exception:
            pass

    def _actor_died(self, job: _Job, error: BaseException) -> tuple[StepResult, float] | None:
        slot = self._members[job.member]
        slot.deaths += 1
        if slot.deaths >= MAX_DEATHS:
            slot.deaths = 0
            text = (
                f"its Ray actor died {MAX_DEATHS} times in a row while running this step (killed, "
                f"out of memory, or its node was lost): {_first_line(error)}"
            )
            return self._failed(job, text), 0.0
        logger.warning("member %d: its actor died; running its step again on another", job.member)
        self._requeue(job)
        return None

    def _requeue(self, job: _Job) -> None:
        self._hosts[self._members[job.member].home].queue.appendleft(job)

    def _failed(self, job: _Job, error: str) -> StepResult:
        slot = self._members[job.member]
        slot.fresh, slot.failed = False, True
        return StepResult(member=job.member, epochs=job.epochs, error=error)

    # ---- states lost with a node ----------------------------------------------------------------
    def _check_states_made_by(self, dead: int) -> None:
        """Probe the states a dead actor made: if its node went too, they are gone."""
        made = {id(slot.backup): slot.backup for slot in self._members.values() if slot.origin == dead}
        for backup in made.values():
            self._probes[self._probe.remote(backup)] = backup

    def _probed(self, ref: Any) -> None:
        backup = self._probes.pop(ref)
        try:
            self._ray_module.get(ref)
        except self._ray_module.exceptions.RayError:
            self._lost(backup)

    def _lost(self, backup: Any) -> None:
        """Members whose state is ``backup`` lost it: they are all reported failed now.

        A step of theirs that starts from it fails at once (queued: it is not sent; sent: its
        outcome will be dropped). An idle member (waiting for slower ones, or done) is reported
        too. Otherwise the trainer, not knowing, would keep handing that state on to the
        members it replaces, or return it as the best model.
        """
        doomed = {
            f.job.member: f
            for f in self._flights.values()
            if not f.abandoned and f.source is not None and (f.source is backup or f.source == backup)
        }
        running = {f.job.member for f in self._flights.values() if not f.abandoned}
        for member_id, slot in self._members.items():
            if slot.backup is None or not (slot.backup is backup or slot.backup == backup):
                continue
            slot.fresh = False
            if member_id in doomed:
                doomed[member_id].abandoned = True
                job: _Job | None = doomed[member_id].job
            elif member_id in running:
                continue  # it runs on a copy of its own, made before
            else:
                job = self._unqueue(member_id)
            if job is not None:
                self._news.append((StepResult(member=member_id, epochs=job.epochs, error=_LOST), True))
            elif not slot.failed:
                self._news.append((StepResult(member=member_id, epochs=0, error=_LOST), False))
            slot.failed = True

    def _unqueue(self, member_id: int) -> _Job | None:
        for host in self._hosts.values():
            for job in host.queue:
                if job.member == member_id:
                    host.queue.remove(job)
                    return job
        return None

    def _host_started(self, ref: Any) -> None:
        ray = self._ray_module
        host = self._hosts[self._starting.pop(ref)]
        try:
            ray.get(ref)
        except ray.exceptions.RayActorError as error:
            if error.actor_init_failed:
                raise TrainingError(
                    f"A Ray actor could not load the model or the data: {error}\nThe model wrapper and "
                    f"step_args/eval_args are unpickled on every Ray worker: define their functions and "
                    f"classes in the script you run or in a module installed on every node, and install "
                    f"PyBT and your framework there too."
                ) from error
            self._replace(host, error)
            return
        host.ready_ref = None

    def _replace(self, dead: _Host, error: BaseException) -> None:
        """Start a new actor in place of a dead one; the dead one's members and queue move to it."""
        logger.warning("a Ray actor died (%s); starting a replacement", _first_line(error))
        self.restarts += 1
        del self._hosts[dead.key]
        self._starting.pop(dead.ready_ref, None)
        try:
            self._ray_module.kill(dead.handle, no_restart=True)
        except Exception:  # it is gone already; this only makes sure
            pass
        new = self._new_host()
        new.queue.extend(dead.queue)
        for slot in self._members.values():
            if slot.home == dead.key:
                slot.home = new.key
            if slot.holder == dead.key:
                slot.holder, slot.fresh = None, False
        self._check_states_made_by(dead.key)

    # ---- states ---------------------------------------------------------------------------
    def copy_states(self, pairs: Sequence[tuple[int, int]]) -> None:
        # References only: every donor's is taken before any member's changes (snapshot).
        donors = {
            donor: (self._backup_ref(donor), self._members[donor].origin, self._members[donor].epochs)
            for donor, _ in pairs
        }
        for donor, member in pairs:
            slot = self._members[member]
            (slot.backup, slot.origin, slot.epochs), slot.fresh, slot.failed = donors[donor], False, False

    def _backup_ref(self, member_id: int) -> Any:
        slot = self._members[member_id]
        if slot.backup is None:  # never stepped: its state is the one its seed makes
            slot.backup, slot.origin = self._ray_module.put(self._seed_state(slot)), None
        return slot.backup

    def _seed_state(self, slot: _Slot) -> State:
        assert self._template is not None
        return self._template.spawn(slot.seed).get_state()

    def get_state(self, member_id: int) -> dict[str, np.ndarray]:
        slot = self._members[member_id]
        if slot.backup is None:
            return self._seed_state(slot)
        ray = self._ray_module
        try:
            state = ray.get(slot.backup)
        except ray.exceptions.RayError as error:
            raise TrainingError(
                f"The state of member {member_id} was lost with the Ray node that held it "
                f"({_first_line(error)})."
            ) from error
        return {key: np.array(value, copy=True) for key, value in state.items()}

    def set_state(self, member_id: int, state: Mapping[str, np.ndarray]) -> None:
        slot = self._members[member_id]
        slot.backup = self._ray_module.put({key: np.asarray(value) for key, value in state.items()})
        slot.origin, slot.fresh, slot.failed = None, False, False

    def model(self, member_id: int) -> Any:
        assert self._template is not None
        slot = self._members[member_id]
        wrapper = self._template.spawn(slot.seed)
        if slot.backup is not None:
            wrapper.set_state(self.get_state(member_id))
        return wrapper.unwrap()

    def shutdown(self) -> None:
        """Kill the actors; stop Ray too if this executor started it. Safe to call twice."""
        ray = self._ray_module
        if ray is None:
            return
        self._shut_down = True
        for host in self._hosts.values():
            try:
                ray.kill(host.handle, no_restart=True)
            except Exception:  # already gone
                pass
        self._hosts.clear()
        self._starting.clear()
        self._flights.clear()
        self._probes.clear()
        self._pending = 0
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False
