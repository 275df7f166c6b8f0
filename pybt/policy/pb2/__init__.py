"""PB2: explore with a model of what worked (Population-Based Bandits).

Parker-Holder, Nguyen and Roberts, "Provably Efficient Online Hyperparameter Optimization with
Population-Based Bandits", NeurIPS 2020. PBT's explore step perturbs a donor's
hyperparameters at random; PB2 instead fits a Gaussian process to how much each choice of
hyperparameters improved the score per epoch, at each point in training, and picks the next
choice by an upper confidence bound. With few members, where random perturbations find little,
that is what makes exploring pay.

:class:`PB2` is an explore strategy; use it with any exploit strategy::

    Trainer(..., exploit_strategy=Truncation(), explore_strategy=PB2())

Each time a member copies a donor, PB2:

1. reads the run's steps (the history view of its :class:`ExploreContext`): each step with a
   standing before it is one observation, ``(time, score before, hyperparameters) → fitness
   change per epoch`` (:mod:`pybt.policy.pb2.data`); the newest ``max_points`` are kept (Ray
   Tune keeps 1,000, but the GP's cost grows with the cube of the number and the kernel
   forgets old points anyway: 100 keep a decision within tens of milliseconds);
2. standardizes the changes and fits the GP (:mod:`pybt.policy.pb2.gp`): the time-varying
   squared-exponential kernel over time (counted in steps), the score before (scaled to the
   observed range) and the hyperparameters mapped onto the unit box, log domains in log scale;
3. maximizes UCB = mean + √β_t · deviation at the donor's epoch and score over the box
   (L-BFGS-B from the best of random starts drawn from the run's generator), with the
   hyperparameters already chosen in this decision (``ExploreContext.pending``) counted as
   pending points, so a batch spreads out; integers and ordered choices are rounded.

One observation per step, not per ready interval: the policy does not know where the ready
points fell, and a GP with a noise term averages the steps of an interval anyway (Ray Tune's
PB2 also takes one per reported iteration).

Limits: an unordered ``Choice`` has no order to model, so PB2 resamples it (as ``Perturb``
does); ``Fixed`` values are kept; a user's own ``Domain`` is resampled. Until the run has
``min_points`` observations, when no hyperparameter can be ordered, and when ``explore()`` is
called without a context (no records to learn from), PB2 explores like ``Perturb()``.

It needs SciPy and threadpoolctl: ``pip install 'pybt[pb2]'``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from pybt import _validate
from pybt.errors import invalid_argument
from pybt.policy.explore import ExploreContext, ExploreStrategy, Perturb
from pybt.policy.pb2.data import Box, observations
from pybt.policy.pb2.gp import Inputs, Posterior, fit_kernel, maximize_ucb, one_blas_thread, root_beta
from pybt.space import Domain, Fixed

__all__ = ["PB2"]

logger = logging.getLogger(__name__)

_CANDIDATES = 256  # random points screened before L-BFGS-B: cheap next to fitting the GP


class PB2(ExploreStrategy):
    """Population-Based Bandits: new hyperparameters by GP-UCB over what worked so far.

    ``max_points``: the newest observations the GP is fitted to. ``min_points``: below this
    many, explore like ``Perturb()``. ``restarts``: L-BFGS-B runs on the acquisition.
    """

    def __init__(self, max_points: int = 100, min_points: int = 4, restarts: int = 4) -> None:
        self.max_points = _validate.check_integer("PB2(max_points=...)", max_points, 2, "e.g. 100.")
        self.min_points = _validate.check_integer("PB2(min_points=...)", min_points, 2, "e.g. 4.")
        if self.min_points > self.max_points:
            raise invalid_argument(
                "PB2(min_points=...)", min_points, f"at most max_points ({self.max_points})"
            )
        self.restarts = _validate.check_integer("PB2(restarts=...)", restarts, 1, "e.g. 4.")
        self._fallback = Perturb()

    def explore(
        self, hyperparameters: Mapping[str, Any], space: Mapping[str, Domain], rng: np.random.Generator
    ) -> dict[str, Any]:
        """Without the run's records there is nothing to model: explore like ``Perturb()``."""
        return self._fallback.explore(hyperparameters, space, rng)

    def explore_in(self, context: ExploreContext) -> dict[str, Any]:
        box = Box(context.space)
        data = observations(context.history, box, self.max_points) if len(box) else None
        if data is None or len(data) < self.min_points:
            return self.explore(context.hyperparameters, context.space, context.rng)
        start = context.donor if context.donor is not None else context.member
        # Time in steps (the paper's rounds), so ε is the forgetting per step whatever its epochs.
        unit = max(float(np.median(data.lengths)), 1.0)
        # Where the weights start, scaled to the observed range, is an input too (as in the
        # authors' implementation): a step from a low score gains more than the same step from
        # a high one, and without it a member that crashed and recovered looks like progress.
        low, span = float(data.levels.min()), float(np.ptp(data.levels)) or 1.0
        level = start.fitness if np.isfinite(start.fitness) else float(data.levels[-1])
        observed = Inputs(data.epochs / unit, ((data.levels - low) / span)[:, None], data.points)
        gains = data.gains - data.gains.mean()
        scale = gains.std()
        # Standardized and clipped (as the PB2 authors do): one lucky step cannot own the model.
        targets = np.clip(gains / scale, -2.0, 2.0) if scale > 0 else gains
        pending = [box.encode(values) for values in context.pending]
        pending_points = np.array([p for p in pending if p is not None]).reshape(-1, len(box))
        starts = context.rng.random((_CANDIDATES, len(box)))
        current = box.encode(context.hyperparameters)
        if current is not None:
            starts[0] = current  # the donor's own choice competes too
        try:
            with one_blas_thread():
                kernel = fit_kernel(observed, targets)
                here = np.array([(level - low) / span])
                posterior = Posterior(kernel, observed, targets, start.epoch / unit, here, pending_points)
                best = maximize_ucb(posterior, starts, root_beta(len(data)), self.restarts)
        except np.linalg.LinAlgError as error:  # numerically hopeless data must not end the run
            logger.warning(
                "PB2 could not fit its model (%s); member %d explores like Perturb()", error, start.id
            )
            return self.explore(context.hyperparameters, context.space, context.rng)
        return self._outside_box(context, box.decode(best))

    def _outside_box(self, context: ExploreContext, chosen: dict[str, Any]) -> dict[str, Any]:
        """The hyperparameters PB2 does not model: Fixed kept, every other one resampled."""
        explored = dict(context.hyperparameters)
        for name, domain in context.space.items():
            if name in chosen:
                explored[name] = chosen[name]
            elif not isinstance(domain, Fixed) or not domain.contains(explored.get(name)):
                explored[name] = domain.resample(context.rng)
        return explored

    def __repr__(self) -> str:
        return f"PB2(max_points={self.max_points}, min_points={self.min_points}, restarts={self.restarts})"
