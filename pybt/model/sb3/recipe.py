"""How a member is made from the user's agent: its recipe, its environments, and its random streams.

A *recipe* is the agent's settings without anything live in it: the algorithm's attributes as
Stable-Baselines3 keeps them (the ones ``agent.save`` pickles), minus networks, buffers,
environments and counters. A member is built the way ``PPO.load`` rebuilds an agent: the
algorithm's constructor with ``_init_setup_model=False``, the recipe over its attributes, then
``_setup_model()`` under the member's seed — what ``PPO(..., seed=member_seed)`` would build.

Environments are described by an :class:`EnvSource` (the agent's gymnasium ``EnvSpec``, an id or
a factory; keyword arguments; how many copies) and made with ``make_vec_env``, so a member can
be rebuilt in any process. The spec keeps what ``gym.make`` was given (``max_episode_steps``,
the environment's keyword arguments) and names the class to build, so an environment registered
only in the driver still builds on a Ray actor that can import it.

Nothing here imports Stable-Baselines3, gymnasium or torch when imported: the modules come in
as arguments.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import random
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from pybt._imports import require
from pybt.errors import PyBTError, invalid_argument

# Attributes that are not settings: live objects, counters and episode bookkeeping. The
# constructor (with _init_setup_model=False) and _setup_model() make them fresh for a member.
_NOT_SETTINGS = frozenset(
    {
        "policy", "device", "env", "replay_buffer", "rollout_buffer", "_vec_normalize_env", "_logger",
        "_custom_logger", "n_envs", "observation_space", "action_space", "seed", "num_timesteps",
        "_total_timesteps", "_num_timesteps_at_start", "_episode_num", "_n_updates", "_n_calls",
        "_last_obs", "_last_episode_starts", "_last_original_obs", "ep_info_buffer",
        "ep_success_buffer", "start_time", "_current_progress_remaining", "exploration_rate",
    }
)  # fmt: skip
# Wrappers make_vec_env adds itself, or SB3 adds when it takes an environment.
_OWN_WRAPPERS = frozenset({"Monitor"})


@dataclass(frozen=True)
class EnvSource:
    """Where a member's environments come from: ``make_vec_env(env, n_envs, env_kwargs=kwargs)``.

    ``env`` is an id, a function that makes one environment, or a gymnasium ``EnvSpec``."""

    env: Any
    n_envs: int = 1
    kwargs: dict[str, Any] = field(default_factory=dict)
    subprocess: bool = False

    def make(self, sb3: ModuleType, n_envs: int | None = None, subprocess: bool | None = None) -> Any:
        vec_env = sb3.common.vec_env
        use_subprocess = self.subprocess if subprocess is None else subprocess
        env = self.env
        if not isinstance(env, str) and not callable(env):  # an EnvSpec: gym.make takes it whole
            env = functools.partial(require("gymnasium", "sb3", "gymnasium").make, env)
        return sb3.common.env_util.make_vec_env(
            env,
            n_envs=n_envs or self.n_envs,
            env_kwargs=dict(self.kwargs),
            vec_env_cls=vec_env.SubprocVecEnv if use_subprocess else vec_env.DummyVecEnv,
        )

    def describe(self) -> str:
        if isinstance(self.env, str):
            return self.env
        return getattr(self.env, "__name__", None) or getattr(self.env, "id", None) or repr(self.env)


def recipe_of(torch: ModuleType, agent: Any) -> dict[str, Any]:
    """The agent's settings, deep-copied: what every member is built from."""
    recipe = {}
    for name, value in vars(agent).items():
        if name in _NOT_SETTINGS or _holds_torch(torch, value):
            continue
        recipe[name] = value
    try:
        return copy.deepcopy(recipe)
    except Exception as error:  # a setting (a noise object, a schedule) that cannot be copied
        raise invalid_argument(
            "SB3ModelWrapper(agent)",
            type(agent).__name__,
            "an agent whose settings can be copied (copy.deepcopy), one copy per member",
            f"Copying them failed: {error}",
        ) from error


def _holds_torch(torch: ModuleType, value: Any) -> bool:
    """A network, tensor or optimizer (or a list of them): built by _setup_model, never copied."""
    if isinstance(value, (list, tuple)) and value:
        return all(_holds_torch(torch, item) for item in value)
    return isinstance(value, (torch.nn.Module, torch.Tensor, torch.optim.Optimizer))


def env_source_of(sb3: ModuleType, agent: Any) -> EnvSource:
    """The agent's training environments as their gymnasium spec and a count.

    Refuses what an id cannot rebuild: VecEnv wrappers (``VecNormalize`` keeps statistics no
    member state carries) and gymnasium wrappers added after ``gym.make``.
    """
    vec_env = sb3.common.vec_env
    venv = agent.get_env()
    if venv is None:
        raise invalid_argument(
            "SB3ModelWrapper(agent)",
            "an agent without an environment",
            "an agent built with its environment, e.g. PPO('MlpPolicy', 'CartPole-v1')",
            "Or pass env='CartPole-v1' (or a function that makes the environment).",
        )
    if isinstance(venv, vec_env.VecTransposeImage):  # SB3 adds it again when a member is built
        venv = venv.venv
    if isinstance(venv, vec_env.VecEnvWrapper):
        raise invalid_argument(
            "SB3ModelWrapper(agent)",
            f"an agent whose environment is wrapped in {type(venv).__name__}",
            "an environment PyBT can rebuild for each member from its id",
            "Pass env= a function that makes one (wrapped) gymnasium environment; VecEnv wrappers "
            "such as VecNormalize keep statistics that are not part of a member's state.",
        )
    spec = venv.get_attr("spec", indices=[0])[0]
    if spec is None:
        raise invalid_argument(
            "SB3ModelWrapper(agent)",
            "an agent whose environment has no gymnasium id",
            "an environment made by gymnasium.make or from an id",
            "Pass env= an id, or a function that makes the environment.",
        )
    extra = [w.name for w in spec.additional_wrappers if w.name not in _OWN_WRAPPERS]
    if extra:
        raise invalid_argument(
            "SB3ModelWrapper(agent)",
            f"{spec.id} wrapped in {extra}",
            "an environment PyBT can rebuild from its id",
            "Pass env= a function that makes the wrapped environment.",
        )
    subprocess = isinstance(venv, vec_env.SubprocVecEnv)
    # make_vec_env adds the Monitor itself; the spec's kwargs are passed by gym.make.
    spec = dataclasses.replace(spec, additional_wrappers=())
    return EnvSource(spec, int(venv.num_envs), {}, subprocess)


def build_agent(
    sb3: ModuleType,
    torch: ModuleType,
    algorithm: type,
    recipe: Mapping[str, Any],
    source: EnvSource,
    device: str,
    seed: int,
) -> Any:
    """A fresh agent from ``recipe`` on environments from ``source``, initialized under ``seed``.

    The global RNGs are left as they were (making gymnasium environments draws from NumPy's)."""
    with forked_rng(torch):
        venv = source.make(sb3)
        agent = algorithm(policy=recipe["policy_class"], env=venv, device=device, _init_setup_model=False)
        agent.__dict__.update(copy.deepcopy(dict(recipe)))
        agent.seed = int(seed)
        try:
            agent._setup_model()  # seeds python, NumPy, torch, the action space and the envs
        except Exception as error:
            raise PyBTError(
                f"{algorithm.__name__} could not be rebuilt for a member on {source.describe()} "
                f"({type(error).__name__}: {error}). PyBT rebuilds each member the way "
                f"{algorithm.__name__}.load does."
            ) from error
    if agent.tensorboard_log is None:
        # Without a logger of its own, SB3 makes a new folder under the temp dir at every
        # learn(): this one prints what SB3 would print (verbose=1) and writes no files.
        formats = [sb3.common.logger.HumanOutputFormat(sys.stdout)] if agent.verbose >= 1 else []
        agent.set_logger(sb3.common.logger.Logger(folder=None, output_formats=formats))
    return agent


def seed_of(*entropy: int) -> int:
    """A 32-bit seed from a few integers (a member's seed and a counter, say)."""
    return int(np.random.SeedSequence([int(value) for value in entropy]).generate_state(1)[0])


@contextlib.contextmanager
def forked_rng(torch: ModuleType, seed: int | None = None) -> Iterator[None]:
    """Python's, NumPy's and torch's global RNGs seeded with ``seed`` inside, restored after.

    SB3 draws from the global generators (action sampling, minibatch shuffling, replay
    sampling); seeding them per epoch from the member's own seed makes each member's training
    independent of the others and of the process it runs in.
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            if seed is not None:
                random.seed(seed)
                np.random.seed(seed)
                torch.manual_seed(seed)  # also seeds every CUDA device
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
