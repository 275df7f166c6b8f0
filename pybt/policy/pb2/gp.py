"""PB2's model: a small Gaussian process over (time, inputs), in NumPy and SciPy.

The kernel is the paper's time-varying squared exponential (Parker-Holder et al. 2020, after
Bogunovic et al. 2016)::

    k((t, x), (t', x')) = σ² · exp(−‖x − x′‖² / ℓ) · (1 − ε)^{|t − t′| / 2}

where x is a point of the unit box. Inputs may also carry context coordinates c that the
acquisition does not move (PB2 puts the score the weights start from there); they get their
own length scale, a factor exp(−‖c − c′‖² / ℓ_c), so that how fast a score rises at each level
does not force the hyperparameters' length scale down with it.

so what was learnt about a point fades as training moves on (ε is the forgetting per unit of
time). Its parameters, with the noise variance, are fitted by maximizing the log marginal
likelihood with L-BFGS-B (analytic gradients, log-scale bounds), as scikit-learn does, from
one fixed start (ℓ = 1, ε = 0.1 as Ray Tune starts; noise 10 % of the signal).

Why not scikit-learn's ``GaussianProcessRegressor`` with a custom kernel (Ray Tune's way)?
Each call validates, clones and refits; the pending points of a batch would need a second
fitted model; and the acquisition's gradient is not exposed. Fitting and predicting here is a
hundred lines whose cost is a few small Cholesky factorizations, which keeps a decision within
its budget (``benchmarks/pb2.py`` prints it).
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pybt._imports import require

# (low, high) and start of the fitted parameters: ℓ and ℓ_c in squared units of the unit box,
# ε per step of time, the noise as a ratio λ of the signal's variance (σ² is solved for).
BOUNDS = {
    "lengthscale": (0.01, 50.0),
    "context_lengthscale": (0.01, 50.0),
    "epsilon": (1e-5, 0.5),
    "ratio": (1e-4, 10.0),
}
START = {"lengthscale": 1.0, "context_lengthscale": 1.0, "epsilon": 0.1, "ratio": 0.1}
_JITTER = 1e-8
_LOG_2PI = math.log(2 * math.pi)


def _scipy() -> tuple[Any, Any]:
    require("scipy", "pb2", "scipy")
    import scipy.linalg
    import scipy.optimize

    return scipy.linalg, scipy.optimize


def _lapack() -> Any:
    return _scipy()[0].lapack


@functools.cache
def _threadpools() -> Any:
    _scipy()  # loaded first, so the controller sees SciPy's BLAS as well as NumPy's
    return require("threadpoolctl", "pb2").ThreadpoolController()


def one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """A context in which BLAS runs on one thread. The matrices here have a few hundred rows at
    most: threads gain nothing on them, and on a busy machine their hand-offs cost more than
    the work (a 100-row Cholesky inverse measured 4 ms on two threads, 0.6 ms on one)."""
    return _threadpools().limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class Kernel:
    """The kernel's parameters (see the module's docstring)."""

    variance: float
    lengthscale: float  # of the box's coordinates
    context_lengthscale: float  # of the context's
    epsilon: float
    noise: float

    def __call__(self, a: Inputs, b: Inputs) -> np.ndarray:
        """The covariance matrix between two sets of inputs (noise excluded)."""
        exponent = _squared_distances(a.points, b.points) * (-1.0 / self.lengthscale)
        exponent -= _squared_distances(a.contexts, b.contexts) / self.context_lengthscale
        exponent += 0.5 * np.abs(a.times[:, None] - b.times[None, :]) * math.log1p(-self.epsilon)
        return self.variance * np.exp(exponent)


@dataclass(frozen=True)
class Inputs:
    """The GP's inputs: times [n], context coordinates [n, c] and points of the box [n, d]."""

    times: np.ndarray
    contexts: np.ndarray
    points: np.ndarray

    def __len__(self) -> int:
        return len(self.times)

    def __add__(self, other: Inputs) -> Inputs:
        return Inputs(
            np.concatenate([self.times, other.times]),
            np.vstack([self.contexts, other.contexts]),
            np.vstack([self.points, other.points]),
        )


def _cholesky(matrix: np.ndarray) -> np.ndarray | None:
    """The lower Cholesky factor of a symmetric matrix, or None when it is not positive definite."""
    factor, info = _lapack().dpotrf(matrix, lower=1, clean=1)
    return factor if info == 0 else None


def _solve(factor: np.ndarray, right: np.ndarray) -> np.ndarray:
    return _lapack().dpotrs(factor, right, lower=1)[0]


def _inverse(factor: np.ndarray) -> np.ndarray:
    """The inverse from a Cholesky factor (LAPACK's potri: a third of the work of two solves)."""
    lower, _ = _lapack().dpotri(factor, lower=1)
    return lower + np.tril(lower, -1).T


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(squared, 0.0)


_FITTED = ("lengthscale", "context_lengthscale", "epsilon", "ratio")


def profile_likelihood(
    theta: np.ndarray,
    squared: np.ndarray,
    context_squared: np.ndarray,
    half_gaps: np.ndarray,
    targets: np.ndarray,
) -> tuple[float, np.ndarray, float]:
    """−log p(targets) with σ² at its best for ``theta`` = log (ℓ, ℓ_c, ε, λ), its gradient in
    ``theta``, and that σ². The arrays are the inputs' squared distances in the box and in the
    context, and half their time gaps.

    Written as σ² · (R + λI), with R the kernel at unit variance and λ the noise-to-signal
    ratio, the best σ² is yᵀ(R + λI)⁻¹y / n in closed form, so L-BFGS-B searches one
    parameter fewer, in fewer steps.
    """
    lengthscale, context_lengthscale, epsilon, ratio = np.exp(theta)
    count = len(targets)
    exponent = squared * (-1.0 / lengthscale) - context_squared / context_lengthscale
    base = np.exp(exponent + half_gaps * math.log1p(-epsilon))
    matrix = base.copy()
    matrix[np.diag_indices(count)] += ratio + _JITTER
    factor = _cholesky(matrix)
    if factor is None:
        return 1e25, np.zeros_like(theta), 1.0  # L-BFGS-B backs off from such a step
    alpha = _solve(factor, targets)
    variance = max(float(targets @ alpha) / count, 1e-12)
    likelihood = -0.5 * count * (math.log(variance) + 1.0 + _LOG_2PI) - np.log(np.diag(factor)).sum()
    # d log p / d log θ = ½ tr((ααᵀ/σ² − C⁻¹) ∂C/∂log θ), summed elementwise (all symmetric).
    weights = np.outer(alpha, alpha / variance)
    weights -= _inverse(factor)
    trace = float(np.trace(weights))
    weights *= base
    gradient = 0.5 * np.array(
        [
            np.vdot(weights, squared) / lengthscale,
            np.vdot(weights, context_squared) / context_lengthscale,
            -np.vdot(weights, half_gaps) * epsilon / (1.0 - epsilon),
            trace * ratio,
        ]
    )
    return -float(likelihood), -gradient, variance


def fit_kernel(inputs: Inputs, targets: np.ndarray, iterations: int = 40) -> Kernel:
    """The kernel that maximizes the log marginal likelihood of ``targets`` (L-BFGS-B over
    log (ℓ, ℓ_c, ε, λ) from ``START``, σ² solved for: see :func:`profile_likelihood`)."""
    _, optimize = _scipy()
    arrays = (
        _squared_distances(inputs.points, inputs.points),
        _squared_distances(inputs.contexts, inputs.contexts),
        0.5 * np.abs(inputs.times[:, None] - inputs.times[None, :]),
        targets,
    )
    start = np.log([START[name] for name in _FITTED])
    result = optimize.minimize(
        lambda theta: profile_likelihood(theta, *arrays)[:2],
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[tuple(np.log(BOUNDS[name])) for name in _FITTED],
        options={"maxiter": iterations},
    )
    theta = result.x if np.all(np.isfinite(result.x)) else start
    variance = profile_likelihood(theta, *arrays)[2]
    lengthscale, context_lengthscale, epsilon, ratio = (float(v) for v in np.exp(theta))
    return Kernel(variance, lengthscale, context_lengthscale, epsilon, variance * ratio)


class Posterior:
    """The GP's prediction of the standardized gain, at time ``now`` and context ``context``,
    for points of the box (the acquisition moves the point only).

    The mean comes from the observations; the variance also counts ``pending`` points of the
    box (chosen for other members in this decision, their outcome unknown; at ``now`` and
    ``context``) as observed, which lowers it around them so that the next choice looks
    elsewhere (Desautels et al. 2014, GP-BUCB).
    """

    def __init__(
        self,
        kernel: Kernel,
        observed: Inputs,
        targets: np.ndarray,
        now: float,
        context: np.ndarray,
        pending: np.ndarray,
    ) -> None:
        self.kernel = kernel
        noise = kernel.noise + _JITTER
        factor = _cholesky(kernel(observed, observed) + noise * np.eye(len(observed)))
        if factor is None:
            raise np.linalg.LinAlgError("the GP's covariance is not positive definite")
        self.alpha = _solve(factor, targets)
        self.observed = len(observed)
        here = Inputs(np.full(len(pending), float(now)), np.tile(context, (len(pending), 1)), pending)
        inputs = observed + here if len(pending) else observed
        both = _cholesky(kernel(inputs, inputs) + noise * np.eye(len(inputs)))
        if both is None:
            raise np.linalg.LinAlgError("the GP's covariance is not positive definite")
        self.precision = _inverse(both)
        self.points = inputs.points
        # What does not move with the candidate: the time and context factors against each input.
        self._fixed = np.exp(
            0.5 * np.abs(inputs.times - float(now)) * math.log1p(-kernel.epsilon)
            - ((inputs.contexts - context) ** 2).sum(1) / kernel.context_lengthscale
        )

    def _covariances(self, candidates: np.ndarray) -> np.ndarray:
        squared = _squared_distances(candidates, self.points)
        return self.kernel.variance * np.exp(-squared / self.kernel.lengthscale) * self._fixed[None, :]

    def mean_and_deviation(self, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation at ``candidates`` [m, d] of the box."""
        covariances = self._covariances(candidates)
        mean = covariances[:, : self.observed] @ self.alpha
        variance = self.kernel.variance - ((covariances @ self.precision) * covariances).sum(1)
        return mean, np.sqrt(np.maximum(variance, 1e-12))

    def ucb(self, candidates: np.ndarray, root_beta: float) -> np.ndarray:
        mean, deviation = self.mean_and_deviation(candidates)
        return mean + root_beta * deviation

    def ucb_with_gradient(self, point: np.ndarray, root_beta: float) -> tuple[float, np.ndarray]:
        """UCB at one point of the box and its gradient there (for L-BFGS-B)."""
        covariance = self._covariances(point[None, :])[0]
        # ∂k_i/∂x = k_i · (−2 (x − x_i) / ℓ)
        derivative = covariance[:, None] * (-2.0 / self.kernel.lengthscale) * (point[None, :] - self.points)
        mean = covariance[: self.observed] @ self.alpha
        mean_gradient = self.alpha @ derivative[: self.observed]
        weighted = self.precision @ covariance
        variance = max(self.kernel.variance - covariance @ weighted, 1e-12)
        deviation = math.sqrt(variance)
        deviation_gradient = -(weighted @ derivative) / deviation
        return float(mean + root_beta * deviation), mean_gradient + root_beta * deviation_gradient


def root_beta(observations: int) -> float:
    """√β_t of UCB for ``observations`` data points: β_t = 0.2 + max(0, log(0.4·t)), the schedule
    of the PB2 authors' implementation (also Ray Tune's), which grows like the theory's log t
    without its constants that make UCB explore almost blindly on small runs."""
    return math.sqrt(0.2 + max(0.0, math.log(0.4 * max(observations, 1))))


def maximize_ucb(
    posterior: Posterior, starts: np.ndarray, root_beta: float, restarts: int, iterations: int = 60
) -> np.ndarray:
    """The point of the unit box with the highest UCB: the best of ``starts`` [m, d] screened
    at once, then L-BFGS-B from the ``restarts`` best of them."""
    _, optimize = _scipy()
    values = posterior.ucb(starts, root_beta)
    order = np.argsort(-values, kind="stable")[: max(1, restarts)]
    best_point, best_value = starts[order[0]], float(values[order[0]])
    bounds = [(0.0, 1.0)] * starts.shape[1]

    def negative(point: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = posterior.ucb_with_gradient(point, root_beta)
        return -value, -gradient

    for index in order:
        result = optimize.minimize(
            negative,
            starts[index],
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": iterations},
        )
        point = np.clip(result.x, 0.0, 1.0)
        value = float(posterior.ucb(point[None, :], root_beta)[0])
        if value > best_value:
            best_point, best_value = point, value
    return best_point
