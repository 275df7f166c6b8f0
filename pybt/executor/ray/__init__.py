"""Members as Ray actors, on one machine or a cluster: asynchronous PBT.

``Trainer(..., executor=RayExecutor())`` runs the same loop as in process, but each member is
scored and decides as soon as its own step finishes (``completed()`` waits for the first
finished step, then hands over every step finished so far).

How it works, and why:

- **A pool of host actors** (:mod:`.pool`). A Ray actor holds its CPUs for its whole life, so one actor per
  member would not fit a population of 8 on 2 CPUs. Instead ``max_concurrent`` actors
  (default: the cluster's CPUs // ``num_cpus_per_member``, at most the population) each host
  several members in memory and run one step at a time. The pool lives until ``close()``:
  each ``start()`` (a new run, a new Trainer) hands the idle actors the new template and data.
- **Data once.** The template wrapper, ``fit_args`` and ``eval_args`` go to the object store
  once per run (``ray.put``); every actor, replacements included, reads them from there.
- **Queues** (:mod:`.scheduling`). Each member has a home actor and each actor a queue of
  submitted steps; the member that has trained fewest epochs runs first, the next step waits
  in Ray's queue behind the running one, and an idle actor takes steps from the longest queue.
- **States live in the object store.** A step returns ``(result, state)`` as two objects; the
  driver fetches only the result and keeps a reference to the state as the member's backup.
  Exploit copies no bytes at decision time: the member's backup becomes the donor's (a
  snapshot of the donor at the epoch the trainer recorded, even if the donor is training
  again), and the member's next step hands that reference to its actor, so the state goes
  actor to actor through the object store, never through the driver or the disk.
- **Faults** (:mod:`.recovery`). If an actor's process dies (killed, out of memory, node lost),
  a replacement actor is started, the dead actor's members are rebuilt from their backups (or
  their seeds) on whichever actor runs them next, and the lost step runs again: the trainer
  never notices. A member whose step takes down its actor :data:`MAX_DEATHS` times in a row is
  reported as a failed step, which the trainer replaces by exploiting, as in process. So is a
  member whose backup was lost with its node, even if idle, so nobody copies it, or returns
  it, without a state.
- ``model(member)`` rebuilds the member in the driver from its backup (``spawn`` +
  ``set_state``); ``close()`` kills the actors (and stops Ray if this executor started it).

``address=None`` uses the running Ray if ``ray.init`` was called, else starts Ray on this
machine; ``address="auto"`` joins the cluster that ``ray start --head`` started, and
``"ray://host:10001"`` connects through Ray Client. To pass Ray other options (a
``runtime_env`` that ships your code to the cluster, say), call ``ray.init(...)`` yourself
first. Decisions depend on which step finishes first, so a seeded run on Ray is not
reproducible step for step, although each member's training is.

Importing this package does not import Ray; creating a :class:`RayExecutor` needs it.
"""

from __future__ import annotations

from pybt.executor.ray.executor import RayExecutor
from pybt.executor.ray.pool import FORWARDED_ENVIRONMENT
from pybt.executor.ray.recovery import MAX_DEATHS

__all__ = ["FORWARDED_ENVIRONMENT", "MAX_DEATHS", "RayExecutor"]
