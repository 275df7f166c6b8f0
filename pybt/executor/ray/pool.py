"""The pool of host actors of :class:`~pybt.executor.ray.RayExecutor`: how many, and their lives.

A Ray actor holds its CPUs (and GPUs) for its whole life, so the pool has as many actors as
the cluster fits (or ``max_concurrent``), at most one per member, each hosting several
members. The pool outlives a run: at the start of the next one, the actors that are idle
load the new template and data; one still running a step of the earlier run is killed
rather than waited for, and actors the new population has no member for are let go.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pybt.errors import invalid_argument
from pybt.executor.ray.actor import MemberHost

#: Environment variables the actors take from the driver (Keras picks its backend at import).
FORWARDED_ENVIRONMENT = ("KERAS_BACKEND",)


@dataclass
class _Host:
    """The driver's handle on one actor."""

    handle: Any
    ready_ref: Any = None  # the answer to ``load()`` while the actor takes in a run's data


class ActorPool:
    """Starts, reloads and kills the actors; the executor decides what they run."""

    def __init__(self, num_cpus: float, num_gpus: float, max_concurrent: int | None) -> None:
        self._num_cpus, self._num_gpus, self._max_concurrent = num_cpus, num_gpus, max_concurrent
        self._ray: Any = None
        self._actor_class: Any = None
        self._payload: list[Any] = []
        self._size = 0
        self._next_key = 0
        self._hosts: dict[int, _Host] = {}
        self._spare: list[_Host] = []  # actors of an earlier run, for this run's first members
        #: The answer each starting actor will give once it has loaded the run -> its key.
        self.starting: dict[Any, int] = {}

    def forget(self) -> None:
        """Ray was not running: the actors of the session that ended are gone with it."""
        self._hosts.clear()
        self._spare.clear()
        self.starting.clear()

    def begin(self, ray: Any, payload: list[Any], busy: Collection[int]) -> None:
        """A new run, with its data in the object store: the actors not ``busy`` wait as spares."""
        self._size = self._fitting_size(ray.cluster_resources())
        self._ray, self._payload = ray, payload
        self._actor_class = ray.remote(MemberHost)
        idle = [host for key, host in self._hosts.items() if key not in busy] + self._spare
        self._spare = idle[: self._size]
        self._kill([host for key, host in self._hosts.items() if key in busy] + idle[self._size :])
        self._hosts.clear()
        self.starting.clear()

    def _fitting_size(self, resources: Mapping[str, float]) -> int:
        if self._max_concurrent is not None:
            return self._max_concurrent  # trust it: an autoscaling cluster may grow to fit
        cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
        fits = cpus // self._num_cpus
        if self._num_gpus:
            fits = min(fits, gpus // self._num_gpus)
        if fits < 1:
            raise invalid_argument(
                "RayExecutor(num_cpus_per_member, num_gpus_per_member)",
                (self._num_cpus, self._num_gpus),
                f"resources one member fits in; the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs",
                "Ask for less per member, add nodes, or pass max_concurrent if the cluster autoscales.",
            )
        return int(fits)

    @property
    def full(self) -> bool:
        return len(self._hosts) >= self._size

    def __contains__(self, key: object) -> bool:
        return key in self._hosts

    def handle(self, key: int) -> Any:
        return self._hosts[key].handle

    def add(self) -> int:
        """An actor for this run (a spare one, or a new one), told to load the run's data; its
        answer is in :attr:`starting`."""
        if self._spare:
            host = self._spare.pop(0)
        else:
            environment = {name: os.environ[name] for name in FORWARDED_ENVIRONMENT if name in os.environ}
            handle = self._actor_class.options(
                num_cpus=self._num_cpus,
                num_gpus=self._num_gpus,
                # Members are CPU- or GPU-bound: one actor per node before two on one.
                scheduling_strategy="SPREAD",
            ).remote(environment, max(1, int(self._num_cpus)))
            host = _Host(handle)
        key, self._next_key = self._next_key, self._next_key + 1
        host.ready_ref = host.handle.load.remote(self._payload)
        self._hosts[key] = host
        self.starting[host.ready_ref] = key
        return key

    def loaded(self, ref: Any) -> int:
        """The key of the actor whose answer to ``load()`` is ``ref`` (it stops starting)."""
        key = self.starting.pop(ref)
        self._hosts[key].ready_ref = None
        return key

    def release_spares(self) -> None:
        """Every member is placed: the actors the run has no member for go."""
        self._kill(self._spare)
        self._spare.clear()

    def remove(self, key: int) -> None:
        """Kill an actor (it died, or is about to) and forget it."""
        host = self._hosts.pop(key)
        self.starting.pop(host.ready_ref, None)
        self._kill([host])

    def close(self) -> None:
        self._kill([*self._hosts.values(), *self._spare])
        self._hosts.clear()
        self._spare.clear()
        self.starting.clear()
        self._payload = []

    def _kill(self, hosts: Collection[_Host]) -> None:
        for host in hosts:
            try:
                self._ray.kill(host.handle, no_restart=True)
            except Exception:  # it is gone already; this only makes sure
                pass
