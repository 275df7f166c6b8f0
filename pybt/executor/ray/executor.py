"""RayExecutor: the Ray plumbing of asynchronous PBT (steps on actors, states in the object store).

The rules live elsewhere, Ray-free: :mod:`~pybt.executor.ray.scheduling` says which step runs
where and next, :mod:`~pybt.executor.ray.recovery` what an actor's death or a lost state
means; :mod:`~pybt.executor.ray.pool` keeps the actors. This module makes the Ray calls for
steps and states, waits for them, and tells the rules what happened.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from pybt import _validate
from pybt._imports import require
from pybt.errors import TrainingError, first_line, invalid_argument
from pybt.executor.base import Executor, StepResult
from pybt.executor.ray.actor import touch
from pybt.executor.ray.pool import ActorPool
from pybt.executor.ray.recovery import Flight, Ledger
from pybt.executor.ray.scheduling import Job, Scheduler
from pybt.model.base import ModelWrapper, State

logger = logging.getLogger(__name__)

_QUIET_WARNING_S = 60.0  # say so when no step has finished for this long


def _ray() -> ModuleType:
    return require("ray", "ray", "Ray")


class RayExecutor(Executor):
    """Runs members on a pool of Ray actors and decides for each member as its step ends.

    ``num_cpus_per_member``/``num_gpus_per_member`` are the Ray resources each actor holds
    (one step runs on an actor at a time); ``max_concurrent`` is the number of actors, by
    default as many as the cluster's resources fit, at most one per member.

    Use it as a context manager: the actors live until the block ends (or :meth:`close`, which
    also stops Ray if this executor started it), and serve every run started in between. Not in
    a ``with`` block, the actors go when a run finishes (the executor starts new ones for the
    next), so a finished trainer holds no cluster resources.
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
        _validate.check_real("RayExecutor(num_cpus_per_member)", num_cpus_per_member, 0, low_open=True)
        _validate.check_real("RayExecutor(num_gpus_per_member)", num_gpus_per_member, 0)
        if max_concurrent is not None:
            _validate.check_integer(
                "RayExecutor(max_concurrent)", max_concurrent, 1, "Or None, to fit the cluster."
            )
        self.address = address
        self.num_cpus_per_member = num_cpus_per_member
        self.num_gpus_per_member = num_gpus_per_member
        self.max_concurrent = max_concurrent
        self._ray_module: Any = None
        self._owns_ray = False
        self._open = False  # between start() and close()
        self._held = False  # inside a with block: the actors serve every run in it
        self._template: ModelWrapper | None = None
        self._pool = ActorPool(num_cpus_per_member, num_gpus_per_member, max_concurrent)
        self._probe: Any = None
        self._probes: dict[Any, Any] = {}  # probe ref -> the backup it checks
        self._scheduler = Scheduler()
        self._ledger = Ledger(self._scheduler)
        self._pending = 0
        self._ready: deque[tuple[StepResult, bool]] = deque()  # finished, not yet handed over
        #: How many actors died and were replaced during the current run.
        self.restarts = 0

    def __repr__(self) -> str:
        return (
            f"RayExecutor(address={self.address!r}, num_cpus_per_member={self.num_cpus_per_member}, "
            f"num_gpus_per_member={self.num_gpus_per_member}, max_concurrent={self.max_concurrent})"
        )

    # ---- a run ----------------------------------------------------------------------------------
    def start(
        self, template: ModelWrapper, fit_args: Mapping[str, Any], eval_args: Mapping[str, Any]
    ) -> None:
        """Begin a run: the members of an earlier run are forgotten, and its idle actors serve
        this one (an actor still running an earlier step is replaced rather than waited for)."""
        ray = self._ray_module = _ray()
        if not ray.is_initialized():
            self._pool.forget()
            ray.init(address=self.address)
            self._owns_ray = True
        busy = {flight.actor for flight in self._ledger.flights.values()}
        payload = [ray.put(template), ray.put(dict(fit_args)), ray.put(dict(eval_args))]
        self._pool.begin(ray, payload, busy)
        self._probes.clear()
        self._scheduler = Scheduler()
        self._ledger = Ledger(self._scheduler)
        self._pending = self.restarts = 0
        self._ready.clear()
        self._template = template
        self._probe = ray.remote(num_cpus=0)(touch)
        self._open = True

    def place(self, member_id: int, seed: int) -> None:
        if not self._open:
            raise TrainingError("RayExecutor.start() comes before place().")
        if not self._pool.full:
            self._scheduler.add_actor(self._pool.add())  # at most one actor per member
        self._ledger.place(member_id, seed)

    # ---- steps ----------------------------------------------------------------------------------
    def submit(self, member_id: int, hyperparameters: Mapping[str, Any], epochs: int) -> None:
        if not self._open:
            raise TrainingError(
                "This RayExecutor is closed: its actors are gone, with its members. Close it only "
                "after the trainers that use it (`with RayExecutor() as executor:` around them), or "
                "create a new one; with run_dir= a new Trainer resumes from the last checkpoint."
            )
        self._pool.release_spares()  # every member is placed by now
        self._scheduler.submit(member_id, hyperparameters, epochs)
        self._pending += 1
        self._dispatch()

    @property
    def pending(self) -> int:
        return self._pending

    def completed(self) -> Iterator[StepResult]:
        ray = self._ray_module
        batch: list[tuple[StepResult, float]] = []
        while self._pending and not batch and not self._ledger.news and not self._ready:
            self._dispatch()
            waiting = [*self._ledger.flights, *self._pool.starting, *self._probes]
            if not waiting:
                raise TrainingError("RayExecutor has steps to run but no Ray actor to run them.")
            done, _ = ray.wait(waiting, num_returns=1, timeout=_QUIET_WARNING_S)
            if not done:
                logger.warning(
                    "No step has finished for %.0f s: %d steps running, %d actors waiting for "
                    "resources (check `ray status`).",
                    _QUIET_WARNING_S,
                    len(self._ledger.flights),
                    len(self._pool.starting),
                )
                continue
            done, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)
            for ref in done:
                if ref in self._pool.starting:
                    self._host_started(ref)
                elif ref in self._probes:
                    self._probed(ref)
                elif ref in self._ledger.flights:  # (not when its actor's death was handled already)
                    outcome = self._finish(ref)
                    if outcome is not None:
                        batch.append(outcome)
        self._dispatch()  # freed actors start queued steps while the trainer decides
        # Members found without a state come first, so no decision in this batch copies them.
        self._ready.extend(self._ledger.take_news())
        self._ready.extend((result, True) for result, _ in sorted(batch, key=lambda item: item[1]))
        # Handed over one at a time from a queue kept here: if the trainer is interrupted between
        # two, the rest are still here for the next train().
        while self._ready:
            result, submitted = self._ready.popleft()
            self._pending -= submitted
            yield result

    def _dispatch(self) -> None:
        """Send every actor that is up its next steps (see :meth:`Scheduler.dispatch`)."""
        for key, job in self._scheduler.dispatch():
            self._launch(key, job)

    def _launch(self, key: int, job: Job) -> None:
        flight, sync, previous = self._ledger.launch(key, job)
        if previous is not None and previous in self._pool:
            self._pool.handle(previous).drop.remote(job.member)
        seed = self._ledger.members[job.member].seed
        result_ref, flight.state = (
            self._pool.handle(key)
            .step.options(num_returns=2)
            .remote(job.member, seed, job.hyperparameters, job.epochs, flight.source, sync)
        )
        self._ledger.flights[result_ref] = flight

    def _finish(self, ref: Any) -> tuple[StepResult, float] | None:
        """The outcome of a step, or None when it runs again after its actor died."""
        ray = self._ray_module
        flight = self._ledger.finished(ref)
        try:
            result, finished_at = ray.get(ref)
        except ray.exceptions.RayActorError as error:
            return self._actor_lost(flight, error)
        except ray.exceptions.RayError as error:
            # Not the user's step (run_step catches that): the state it starts from was lost
            # with a node, say. The member fails, and the trainer replaces it by exploiting.
            self._discard(flight.state)
            cause = getattr(error, "cause", None) or error
            text = f"Ray could not run the step: {type(cause).__name__}: {first_line(cause)}"
            failed = self._ledger.not_run(flight, isinstance(cause, ray.exceptions.ObjectLostError), text)
            return None if failed is None else (failed, 0.0)
        landed = self._ledger.landed(flight, result)
        return None if landed is None else (landed, finished_at)

    def _actor_lost(self, flight: Flight, error: BaseException) -> tuple[StepResult, float] | None:
        """Replace a dead actor; its steps run again (see :meth:`Ledger.actor_died`)."""
        running, waiting = self._ledger.grounded(flight.actor, flight)
        for lost in (running, *waiting):
            self._discard(lost.state)
        if flight.actor in self._pool:
            self._replace(flight.actor, error)
        failed = self._ledger.actor_died(running, waiting, first_line(error))
        return None if failed is None else (failed, 0.0)

    def _discard(self, ref: Any) -> None:
        """Take the error out of a step's unused state, so Ray does not report it as unhandled."""
        try:
            self._ray_module.get(ref, timeout=0)
        except Exception:
            pass

    def _host_started(self, ref: Any) -> None:
        ray = self._ray_module
        key = self._pool.loaded(ref)
        try:
            ray.get(ref)
        except ray.exceptions.RayActorError as error:
            if error.actor_init_failed:
                raise _cannot_load(error) from error
            self._replace(key, error)
            return
        except ray.exceptions.RayError as error:  # load() raised: the template or the data
            raise _cannot_load(error) from error
        self._scheduler.actor_up(key)

    def _replace(self, key: int, error: BaseException) -> None:
        """Start a new actor in place of a dead one; the dead one's members and queue move to it."""
        logger.warning("a Ray actor died (%s); starting a replacement", first_line(error))
        self.restarts += 1
        self._pool.remove(key)
        new = self._pool.add()
        self._scheduler.add_actor(new)
        for backup in self._ledger.actor_replaced(key, new):
            # If the dead actor's node went too, the states it made went with it.
            self._probes[self._probe.remote(backup)] = backup

    def _probed(self, ref: Any) -> None:
        backup = self._probes.pop(ref)
        try:
            self._ray_module.get(ref)
        except self._ray_module.exceptions.RayError:
            self._ledger.lost(backup)

    # ---- states ---------------------------------------------------------------------------------
    def copy_states(self, pairs: Sequence[tuple[int, int]]) -> None:
        # References only: no state moves now; each member's next step fetches its donor's.
        for donor, _ in pairs:
            record = self._ledger.members[donor]
            if record.backup is None:  # never stepped: its state is the one its seed makes
                record.backup, record.origin = self._ray_module.put(self._seed_state(donor)), None
        self._ledger.copy(pairs)

    def _seed_state(self, member_id: int) -> State:
        assert self._template is not None
        return self._template.spawn(self._ledger.members[member_id].seed).get_state()

    def get_state(self, member_id: int) -> dict[str, np.ndarray]:
        record = self._ledger.members[member_id]
        if record.backup is None:
            return self._seed_state(member_id)
        ray = self._ray_module
        try:
            state = ray.get(record.backup)
        except ray.exceptions.RayError as error:
            raise TrainingError(
                f"The state of member {member_id} was lost with the Ray node that held it "
                f"({first_line(error)})."
            ) from error
        return {key: np.array(value, copy=True) for key, value in state.items()}

    def set_state(self, member_id: int, state: Mapping[str, np.ndarray]) -> None:
        backup = self._ray_module.put({key: np.asarray(value) for key, value in state.items()})
        self._ledger.restore(member_id, backup)

    def model(self, member_id: int) -> Any:
        assert self._template is not None
        wrapper = self._template.spawn(self._ledger.members[member_id].seed)
        if self._ledger.members[member_id].backup is not None:
            wrapper.set_state(self.get_state(member_id))
        return wrapper.unwrap()

    def __enter__(self) -> RayExecutor:
        self._held = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._held = False
        self.close()

    def release(self) -> None:
        """A run has finished. Inside ``with RayExecutor() as executor:`` the actors stay for
        the block's next run; otherwise they are killed, so a finished trainer holds no cluster
        resources (another executor's actors, or Ray Tune's trials, would wait for them
        forever). States stay readable from the object store; :meth:`start` starts new actors."""
        if self._held or self._ray_module is None or self._pending:
            return
        self._pool.close()
        self._probes.clear()

    def close(self) -> None:
        """Kill the actors and forget the members; stop Ray too if this executor started it.
        Safe to call twice; :meth:`start` opens it again."""
        ray = self._ray_module
        if ray is None:
            return
        self._open = False
        self._pool.close()
        self._probes.clear()
        self._scheduler = Scheduler()
        self._ledger = Ledger(self._scheduler)
        self._pending = 0
        self._ready.clear()
        self._template = None
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False


def _cannot_load(error: BaseException) -> TrainingError:
    return TrainingError(
        f"A Ray actor could not load the model or the data: {error}\nThe model wrapper and "
        f"step_args/eval_args are unpickled on every Ray worker: define their functions and "
        f"classes in the script you run or in a module installed on every node, and install "
        f"PyBT and your framework there too."
    )
