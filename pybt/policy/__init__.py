"""Policies: the decisions of PBT, as pure functions of read-only member snapshots.

- ``done``: when a member has finished training, or the whole run
  (:class:`~pybt.policy.done.StopAfter`, ``StopWhen``, ``Budget``, combined with ``|``);
- ``ready``: when a member may exploit (:class:`~pybt.policy.ready.ReadyAfter` with a
  ``burn_in``, ``ReadyAfterSeconds``);
- ``exploit``: which member, if any, a ready member copies
  (:class:`~pybt.policy.exploit.Truncation`, :class:`~pybt.policy.exploit.BinaryTournament`);
- ``explore``: how copied hyperparameters change (:class:`~pybt.policy.explore.Perturb`,
  :class:`~pybt.policy.explore.Resample`, and :class:`~pybt.policy.pb2.PB2`, which models what
  worked with a Gaussian process — the ``pb2`` extra).

Policies never touch a model: they see :class:`MemberSnapshot` objects and answer with an
id or a dict of hyperparameters; the trainer does the copying. Write your own by
subclassing the small base class in each module.
"""

from __future__ import annotations

from pybt.policy.snapshot import MemberSnapshot, Population

__all__ = ["MemberSnapshot", "Population"]
