"""The hyperparameters PBT can change on a live SB3 agent, which algorithm has which, and their checks.

A name is tunable on an agent when the agent has the attribute (so PPO has ``clip_range`` and
``n_epochs``, SAC has ``tau``, DQN has ``target_update_interval``), with two exceptions that
follow how SAC uses its entropy coefficient: ``ent_coef`` only when it is a number (not learned,
``"auto"``), and ``target_entropy`` only when it is learned. Values are written before every
epoch, so a member's explored values win over what it copied in an exploit.

Writing a value means what SB3 would have done had the agent been built with it:
``learning_rate`` becomes a constant schedule (``lr_schedule``) and is written into every live
optimizer; ``clip_range`` becomes a constant schedule; ``gamma``/``gae_lambda`` reach the rollout
buffer, which computes the advantages; a fixed SAC ``ent_coef`` its tensor; the ``exploration_*``
settings rebuild DQN's epsilon schedule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from pybt._validate import is_finite_real, is_integer
from pybt.errors import invalid_argument
from pybt.space import Domain, LogUniform, Uniform


@dataclass(frozen=True)
class Tunable:
    """One hyperparameter: integer or real, and the values SB3 takes for it."""

    integer: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def accepts(self, value: Any) -> bool:
        if not (is_integer(value) if self.integer else is_finite_real(value)):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high

    def expected(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.low is None and self.high is None:
            return kind
        if self.high is None:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        return f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"


POSITIVE, NON_NEGATIVE, FRACTION = Tunable(low=0, low_open=True), Tunable(low=0), Tunable(low=0, high=1)
COUNT = Tunable(integer=True, low=1)
TUNABLES: dict[str, Tunable] = {
    # every algorithm
    "learning_rate": POSITIVE,
    "gamma": FRACTION,
    # on-policy (A2C, PPO)
    "gae_lambda": FRACTION,
    "ent_coef": NON_NEGATIVE,  # also SAC, when not learned
    "vf_coef": NON_NEGATIVE,
    "max_grad_norm": POSITIVE,  # also DQN
    # PPO
    "clip_range": POSITIVE,
    "n_epochs": COUNT,
    "batch_size": COUNT,  # also the off-policy algorithms
    "target_kl": POSITIVE,
    # off-policy (SAC, TD3, DQN)
    "tau": Tunable(low=0, high=1, low_open=True),
    "gradient_steps": COUNT,
    "target_update_interval": COUNT,  # DQN (env steps), SAC (gradient steps)
    "policy_delay": COUNT,  # TD3
    "target_policy_noise": NON_NEGATIVE,
    "target_noise_clip": NON_NEGATIVE,
    "target_entropy": Tunable(),  # SAC, when ent_coef is learned
    "exploration_initial_eps": FRACTION,  # DQN
    "exploration_final_eps": FRACTION,
    "exploration_fraction": Tunable(low=0, high=1, low_open=True),
}
_EXPLORATION = ("exploration_initial_eps", "exploration_final_eps", "exploration_fraction")

# The default space: the first names the algorithm has, in this order.
_DEFAULTS: dict[str, Domain] = {
    "learning_rate": LogUniform(1e-5, 1e-2),
    "ent_coef": LogUniform(1e-5, 1e-1),
    "clip_range": Uniform(0.1, 0.4),
    "tau": LogUniform(1e-3, 0.1),
    "exploration_final_eps": Uniform(0.01, 0.2),
}


def _learned_entropy(recipe: Mapping[str, Any]) -> bool:
    value = recipe.get("ent_coef")
    return isinstance(value, str) and value.startswith("auto")


def tunable_names(recipe: Mapping[str, Any]) -> list[str]:
    """The hyperparameters this agent's algorithm has, sorted."""
    names = {name for name in TUNABLES if name in recipe}
    if _learned_entropy(recipe):
        names.discard("ent_coef")
    elif "target_entropy" in recipe:
        names.discard("target_entropy")  # SAC with a fixed ent_coef does not use it
    return sorted(names)


def default_space(recipe: Mapping[str, Any]) -> dict[str, Domain]:
    """``learning_rate`` and what matters most for the algorithm: the entropy bonus and PPO's
    clip range; the soft-update rate of SAC/TD3; DQN's final exploration rate."""
    tunable = set(tunable_names(recipe))
    space = {name: domain for name, domain in _DEFAULTS.items() if name in tunable}
    if space.get("tau") is not None and float(recipe.get("tau", 1.0)) >= 1.0:
        del space["tau"]  # DQN copies its target network whole (tau=1): not a soft-update rate
    return space


def check_names(names: Iterable[str], recipe: Mapping[str, Any], algorithm: str) -> None:
    """Refuse a name the algorithm does not have, listing the ones it has."""
    tunable = tunable_names(recipe)
    for name in names:
        if name not in tunable:
            why = ""
            if name == "ent_coef" and _learned_entropy(recipe):
                why = f" ({algorithm} learns ent_coef='auto': explore target_entropy, or give ent_coef=0.1)"
            raise invalid_argument(
                "hyperparameters",
                name,
                f"a hyperparameter {algorithm} has{why}",
                f"{algorithm}'s tunable hyperparameters are {tunable}.",
            )


def check_space(space: Mapping[str, Domain], recipe: Mapping[str, Any], algorithm: str) -> None:
    """Refuse unknown names and domains whose values SB3 cannot take (changes nothing)."""
    check_names(space, recipe, algorithm)
    rng = np.random.default_rng(0)
    for name, domain in space.items():
        rule = _rule(name, recipe)
        options = getattr(domain, "options", None)
        edges = [getattr(domain, bound) for bound in ("low", "high") if hasattr(domain, bound)]
        for value in options if options is not None else [*edges, domain.sample(rng)]:
            if not rule.accepts(_plain(value)):
                raise invalid_argument(
                    f"hyperparameters[{name!r}]",
                    domain,
                    f"a domain of values {algorithm} takes for {name}: {rule.expected()}",
                    f"It can give {value!r}.",
                )


def check_values(hyperparameters: Mapping[str, Any], recipe: Mapping[str, Any], algorithm: str) -> None:
    check_names(hyperparameters, recipe, algorithm)
    for name, value in hyperparameters.items():
        rule = _rule(name, recipe)
        if not rule.accepts(_plain(value)):
            raise invalid_argument(f"hyperparameters[{name!r}]", value, rule.expected())


def _rule(name: str, recipe: Mapping[str, Any]) -> Tunable:
    if name == "batch_size" and recipe.get("normalize_advantage") and "n_epochs" in recipe:
        return Tunable(integer=True, low=2)  # PPO normalizes advantages over each minibatch
    return TUNABLES[name]


def _plain(value: Any) -> Any:
    """An integer-valued float from a real domain stays a float; NumPy scalars become Python's."""
    return value.item() if isinstance(value, np.generic) else value


def given_values(space: Mapping[str, Domain], recipe: Mapping[str, Any]) -> dict[str, Any]:
    """The agent's own values for the names in ``space`` (constant schedules read as numbers)."""
    given: dict[str, Any] = {}
    tunable = set(tunable_names(recipe))
    for name in space:
        if name not in tunable:
            continue
        value = recipe.get(name)
        if callable(value):  # a schedule: its value when it is constant
            start, end = value(1.0), value(0.0)
            value = start if start == end else None
        if is_finite_real(value):
            given[name] = int(value) if TUNABLES[name].integer else float(value)
    return given


def apply(
    sb3: ModuleType, torch: ModuleType, agent: Any, hyperparameters: Mapping[str, Any], optimizers: list[Any]
) -> None:
    """Write ``hyperparameters`` into the live agent, where SB3 reads each of them."""
    schedule = getattr(sb3.common.utils, "FloatSchedule", None) or sb3.common.utils.get_schedule_fn
    for name, raw in hyperparameters.items():
        value = int(raw) if TUNABLES[name].integer else float(raw)
        setattr(agent, name, value)
        if name == "learning_rate":
            agent.lr_schedule = schedule(value)
            for optimizer in optimizers:  # SB3 also writes it before each update; now is clearer
                for group in optimizer.param_groups:
                    group["lr"] = value
        elif name == "clip_range":
            agent.clip_range = schedule(value)
        elif name in ("gamma", "gae_lambda"):
            for buffer in (getattr(agent, "rollout_buffer", None), getattr(agent, "replay_buffer", None)):
                if buffer is not None and hasattr(buffer, name):
                    setattr(buffer, name, value)
        elif name == "ent_coef" and getattr(agent, "ent_coef_optimizer", "none") is None:
            agent.ent_coef_tensor = torch.tensor(value, device=agent.device)  # SAC, fixed
    if any(name in hyperparameters for name in _EXPLORATION):
        linear = getattr(sb3.common.utils, "LinearSchedule", None) or sb3.common.utils.get_linear_fn
        agent.exploration_schedule = linear(
            agent.exploration_initial_eps, agent.exploration_final_eps, agent.exploration_fraction
        )
