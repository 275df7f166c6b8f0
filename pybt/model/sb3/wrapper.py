"""SB3ModelWrapper: a Stable-Baselines3 agent (PPO, A2C, SAC, TD3, DQN, ...) as a PBT member.

The class reads as what a member does: it is built and checked once as a template from the
user's agent, spawned once per member (a fresh agent on its own environments), learns one
``steps_per_epoch`` chunk per epoch, scores itself on a separate evaluation environment, and
hands its state over as arrays. How a member is rebuilt (:mod:`.recipe`), which hyperparameters
each algorithm has (:mod:`.hyperparameters`) and the state's layout (:mod:`.state`) live beside it.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pybt._imports import require
from pybt._validate import check_integer
from pybt.errors import PyBTError, invalid_argument
from pybt.model.base import Metrics, ModelWrapper, State, numeric_metrics
from pybt.model.sb3 import hyperparameters as hp
from pybt.model.sb3.recipe import EnvSource, build_agent, env_source_of, forked_rng, recipe_of, seed_of
from pybt.model.sb3.state import export_state, import_state, torch_parts
from pybt.space import Domain

REPLAY_BUFFER_CHOICES = ("own", "copy")
EVALUATED = ("mean_return", "std_return", "mean_length")
# SB3's names for what PyBT reports (its logger's keys, and evaluate_policy's words).
_ALIASES = {
    "eval/mean_reward": "mean_return",
    "mean_reward": "mean_return",
    "eval/mean_ep_length": "mean_length",
    "rollout/ep_rew_mean": "train_return",
    "ep_rew_mean": "train_return",
}
_MAX_EVAL_ENVS = 8  # evaluation episodes run side by side, so the policy sees them as one batch
# Further streams from a member's seed and epoch count: the action space's sampler, and the
# environments of a member rebuilt from a state.
_ACTIONS_STREAM, _ENV_STREAM = 1, 2


def _modules() -> tuple[ModuleType, ModuleType]:
    # Imported when a wrapper is built or used, never when this module is: ``import pybt`` and
    # ``from pybt.model import SB3ModelWrapper`` work without Stable-Baselines3.
    sb3 = require("stable_baselines3", "sb3", "Stable-Baselines3")
    for module in ("common.env_util", "common.evaluation", "common.vec_env", "common.utils"):
        require(f"stable_baselines3.{module}", "sb3", "Stable-Baselines3")
    return sb3, require("torch", "sb3", "PyTorch")


class SB3ModelWrapper(ModelWrapper):
    """A Stable-Baselines3 agent; each member is a fresh copy with its own seed and environments.

    Args:
        agent: an SB3 algorithm built on its environment, e.g.
            ``PPO("MlpPolicy", "CartPole-v1", n_steps=256)``. Its settings (not its weights or
            counters) are what every member is built from, as ``PPO(..., seed=member_seed)``.
        steps_per_epoch: environment steps per epoch: one epoch is
            ``agent.learn(steps_per_epoch, reset_num_timesteps=False)``. A multiple of
            ``n_steps * n_envs`` (on-policy) or of ``train_freq * n_envs`` (off-policy), so every
            epoch takes exactly that many steps.
        eval_episodes: episodes per evaluation (``evaluate_policy``, deterministic actions).
        eval_env: the evaluation environment's id or a function that makes one; default: the
            training environment (a separate instance).
        env: the training environment's id or a function that makes one, for when the agent's
            own cannot be rebuilt from its gymnasium spec (wrappers added after ``gym.make``,
            ``VecNormalize``); ``env_kwargs`` and ``n_envs`` go with it (default: the agent's
            number of environments). By default members get the agent's environment, rebuilt
            from its spec (``gym.make`` options such as ``max_episode_steps`` included).
        replay_buffer: for off-policy algorithms, ``"own"`` (default): an exploit copies the
            networks, optimizers and counters, and the member keeps learning from its own
            replay buffer; ``"copy"``: the exploit copies the donor's replay buffer too (it is then
            part of the state: copied at every step and written to every checkpoint).
        eval_seed: where the evaluation episodes come from (see below).
        keep_weights: start every member from the agent's current weights instead of a fresh
            initialization.

    Seeding. A member's networks are initialized from its seed. Each epoch, the global Python,
    NumPy and torch generators (which SB3 draws actions, minibatches and replay samples from) and
    the action space's sampler are seeded from the member's seed and its epoch count, and put back
    afterwards: a member trains the same wherever it runs, whatever the others do, and after
    an exploit it draws its own samples, not its donor's. Its environments are seeded once, from
    its seed, and run on. Evaluation episodes are seeded from ``eval_seed`` and the epoch count:
    every member at the same epoch is scored on the same episodes (a fair comparison for exploit),
    and a copied state scores exactly like its donor.

    Environments are not state. After an exploit a member goes on with its own environments
    (and, with ``replay_buffer="own"``, its own replay buffer). A member rebuilt from a state in
    another process (a Ray actor taking it over, a resumed run) starts fresh environments
    seeded from its seed and epoch count, and an empty replay buffer unless it is copied.
    """

    def __init__(
        self,
        agent: Any,
        steps_per_epoch: int,
        eval_episodes: int = 10,
        eval_env: str | Callable[..., Any] | None = None,
        *,
        env: str | Callable[..., Any] | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        n_envs: int | None = None,
        replay_buffer: str = "own",
        eval_seed: int = 0,
        keep_weights: bool = False,
    ) -> None:
        sb3, torch = _modules()
        if not isinstance(agent, sb3.common.base_class.BaseAlgorithm):
            raise invalid_argument(
                "SB3ModelWrapper(agent)",
                type(agent).__name__,
                "a Stable-Baselines3 algorithm (PPO, A2C, SAC, TD3, DQN, ...)",
                "e.g. SB3ModelWrapper(PPO('MlpPolicy', 'CartPole-v1'), steps_per_epoch=4096).",
            )
        self.steps_per_epoch = check_integer("SB3ModelWrapper(steps_per_epoch)", steps_per_epoch, 1)
        self.eval_episodes = check_integer("SB3ModelWrapper(eval_episodes)", eval_episodes, 1)
        if replay_buffer not in REPLAY_BUFFER_CHOICES:
            raise invalid_argument("SB3ModelWrapper(replay_buffer)", replay_buffer, "'own' or 'copy'")
        self.replay_buffer = replay_buffer
        self._eval_seed = check_integer("SB3ModelWrapper(eval_seed)", eval_seed, 0)
        self._algorithm = type(agent)
        self._recipe = recipe_of(torch, agent)
        self._device = str(agent.device)
        self._source = self._training_source(sb3, agent, env, env_kwargs, n_envs)
        self._eval_source = self._source if eval_env is None else self._check_env("eval_env", eval_env)
        self._check_steps()
        # Build one member now, so an agent PyBT cannot rebuild fails here and not in every member.
        probe = self._build(sb3, torch, 0)
        probe.env.close()
        for space in ("observation_space", "action_space"):
            if getattr(probe, space) != getattr(agent, space):
                raise invalid_argument(
                    f"SB3ModelWrapper(env) {space}",
                    getattr(probe, space),
                    f"the agent's {getattr(agent, space)}",
                    "Give the environment the agent was built for.",
                )
        self._initial: State | None = None
        if keep_weights:
            weights = export_state(torch, agent, 0, False).items()
            self._initial = {key: value for key, value in weights if not key.startswith("count/")}
        self.agent: Any = None  # members only (set by spawn)
        self._seed = 0
        self._epochs = 0
        self._eval_env: Any = None

    # ---- checks made once, on the template ------------------------------------------------------
    def _training_source(
        self, sb3: ModuleType, agent: Any, env: Any, env_kwargs: Mapping[str, Any] | None, n_envs: int | None
    ) -> EnvSource:
        if env is None:
            if env_kwargs is not None or n_envs is not None:
                raise invalid_argument(
                    "SB3ModelWrapper(env_kwargs, n_envs)",
                    (env_kwargs, n_envs),
                    "None when env is None (the agent's own environment is rebuilt as it is)",
                )
            return env_source_of(sb3, agent)
        count = check_integer("SB3ModelWrapper(n_envs)", n_envs if n_envs is not None else agent.n_envs, 1)
        if env_kwargs is not None and not isinstance(env_kwargs, Mapping):
            raise invalid_argument("SB3ModelWrapper(env_kwargs)", env_kwargs, "a dict of keyword arguments")
        return EnvSource(self._check_env("env", env).env, count, dict(env_kwargs or {}))

    @staticmethod
    def _check_env(argument: str, env: Any) -> EnvSource:
        if not (isinstance(env, str) or callable(env)):
            raise invalid_argument(
                f"SB3ModelWrapper({argument})",
                env,
                "a gymnasium id such as 'CartPole-v1', or a function that makes one environment",
                "PyBT builds every member's environments itself, so they can be made in any process.",
            )
        return EnvSource(env)

    def _check_steps(self) -> None:
        name, n_envs = self._algorithm.__name__, self._source.n_envs
        if "rollout_buffer_class" in self._recipe:  # on-policy: rollouts of n_steps per env
            steps = int(self._recipe["n_steps"])
            chunk, what = steps * n_envs, f"n_steps * n_envs = {steps} * {n_envs}"
        else:
            freq = self._recipe.get("train_freq")
            unit = str(getattr(getattr(freq, "unit", None), "value", "step"))
            if freq is None or unit != "step":
                return  # episodes: no step count to match
            chunk, what = int(freq.frequency) * n_envs, f"train_freq * n_envs = {freq.frequency} * {n_envs}"
        if self.steps_per_epoch % chunk:
            fit = max(chunk, round(self.steps_per_epoch / chunk) * chunk)
            raise invalid_argument(
                "SB3ModelWrapper(steps_per_epoch)",
                self.steps_per_epoch,
                f"a multiple of {name}'s {what} = {chunk} (SB3 learns in chunks of that many steps)",
                f"Use steps_per_epoch={fit}.",
            )

    def _build(self, sb3: ModuleType, torch: ModuleType, seed: int) -> Any:
        return build_agent(sb3, torch, self._algorithm, self._recipe, self._source, self._device, seed)

    # ---- population -------------------------------------------------------------------------------
    def spawn(self, seed: int) -> SB3ModelWrapper:
        """A member: a fresh agent on its own environments, initialized from ``seed``."""
        sb3, torch = _modules()
        member = copy.copy(self)
        member.agent = self._build(sb3, torch, seed)
        member._seed, member._epochs, member._eval_env = int(seed), 0, None
        if self._initial is not None:
            import_state(torch, member.agent, self._initial)
        return member

    def unwrap(self) -> Any:
        """The member's SB3 agent (``agent.predict``, ``agent.save``, ``agent.learn`` as usual)."""
        return self.agent

    def _live(self) -> Any:
        if self.agent is None:
            raise PyBTError(
                "This SB3ModelWrapper is a template: call spawn(seed) for a member to train (the "
                "Trainer does this for you)."
            )
        return self.agent

    def __getstate__(self) -> dict[str, Any]:
        # A member travels as its template, seed and state (arrays), never as live environments:
        # the receiving process rebuilds the agent and loads the state (the envs start afresh).
        values = dict(vars(self))
        values["_moved"] = self.get_state() if self.agent is not None else None
        values["agent"] = values["_eval_env"] = None
        return values

    def __setstate__(self, values: dict[str, Any]) -> None:
        moved = values.pop("_moved", None)
        self.__dict__.update(values)
        if moved is not None:
            sb3, torch = _modules()
            self.agent = self._build(sb3, torch, self._seed)
            self.set_state(moved)

    # ---- hyperparameters and arguments ---------------------------------------------------------------
    def default_space(self) -> dict[str, Domain]:
        """``learning_rate`` (LogUniform(1e-5, 1e-2)) and, where the algorithm has them,
        ``ent_coef`` (LogUniform(1e-5, 0.1)), PPO's ``clip_range`` (Uniform(0.1, 0.4)), the soft
        update rate ``tau`` (LogUniform(1e-3, 0.1)) of SAC/TD3 and DQN's
        ``exploration_final_eps`` (Uniform(0.01, 0.2))."""
        return hp.default_space(self._recipe)

    def tunable_hyperparameters(self) -> list[str]:
        """The names this agent's algorithm takes as hyperparameters."""
        return hp.tunable_names(self._recipe)

    def check_hyperparameters(self, space: Mapping[str, Domain]) -> None:
        """Refuse names the algorithm does not have (the error lists the ones it has) and
        domains with values SB3 cannot take. Changes nothing."""
        hp.check_space(space, self._recipe, self._algorithm.__name__)

    def check_args(self, fit_args: Mapping[str, Any], eval_args: Mapping[str, Any]) -> None:
        """Refuse ``fit_args``/``eval_args``: the wrapper's constructor takes every setting."""
        for argument, given in (("step_args['fit_args']", fit_args), ("eval_args", eval_args)):
            if given:
                raise invalid_argument(
                    argument,
                    dict(given),
                    "nothing (SB3ModelWrapper takes its settings when it is built)",
                    "Use SB3ModelWrapper(agent, steps_per_epoch=..., eval_episodes=..., eval_env=...).",
                )

    def given_hyperparameters(self, space: Mapping[str, Domain]) -> dict[str, Any]:
        """The agent's own values (a constant schedule read as its number), for member 0."""
        return hp.given_values(space, self._recipe)

    def default_metric(self, metrics: Metrics) -> str:
        """``mean_return``: the mean return over the evaluation episodes."""
        return "mean_return" if "mean_return" in metrics else next(iter(metrics))

    def known_metrics(self) -> list[str]:
        """The evaluated metrics, ``train_timesteps`` and (once an episode has ended) ``train_return``."""
        return [*EVALUATED, "train_timesteps", "train_return"]

    def metric_alias(self, name: str) -> str:
        """SB3's names (``eval/mean_reward``, ``rollout/ep_rew_mean``, ...) for PyBT's metrics."""
        return _ALIASES.get(name, name)

    # ---- training -----------------------------------------------------------------------------------
    def fit(self, hyperparameters: Mapping[str, Any], epochs: int, fit_args: Mapping[str, Any]) -> Metrics:
        """``epochs`` times ``agent.learn(steps_per_epoch, reset_num_timesteps=False)``.

        Returns ``timesteps`` (the member's environment steps so far) and, once an episode has
        ended, ``return`` (SB3's ``rollout/ep_rew_mean``: the mean of the last 100 training
        episodes); the trainer records them as ``train_timesteps`` and ``train_return``.
        """
        sb3, torch = _modules()
        agent = self._live()
        hp.check_values(hyperparameters, self._recipe, self._algorithm.__name__)
        _, optimizers, _ = torch_parts(torch, agent)
        hp.apply(sb3, torch, agent, hyperparameters, list(optimizers.values()))
        for _ in range(epochs):
            seed = seed_of(self._seed, self._epochs)
            with forked_rng(torch, seed):
                agent.action_space.seed(seed_of(self._seed, self._epochs, _ACTIONS_STREAM))
                agent.learn(self.steps_per_epoch, reset_num_timesteps=False, progress_bar=False)
            self._epochs += 1
        metrics: dict[str, Any] = {"timesteps": agent.num_timesteps}
        if agent.ep_info_buffer:
            metrics["return"] = np.mean([info["r"] for info in agent.ep_info_buffer])
        return numeric_metrics(metrics, "SB3ModelWrapper training")

    def evaluate(self, eval_args: Mapping[str, Any]) -> Metrics:
        """``mean_return``, ``std_return`` and ``mean_length`` over ``eval_episodes`` episodes."""
        sb3, torch = _modules()
        agent = self._live()
        seed = seed_of(self._eval_seed, self._epochs)
        with forked_rng(torch, seed):
            if self._eval_env is None:
                count = min(self.eval_episodes, _MAX_EVAL_ENVS)
                self._eval_env = self._eval_source.make(sb3, n_envs=count, subprocess=False)
            self._eval_env.seed(seed)  # applied by the reset evaluate_policy starts with
            returns, lengths = sb3.common.evaluation.evaluate_policy(
                agent,
                self._eval_env,
                n_eval_episodes=self.eval_episodes,
                deterministic=True,
                return_episode_rewards=True,
                warn=False,
            )
        values = {
            "mean_return": np.mean(returns),
            "std_return": np.std(returns),
            "mean_length": np.mean(lengths),
        }
        return numeric_metrics(values, "SB3ModelWrapper evaluation")

    # ---- state ----------------------------------------------------------------------------------------
    export_suffix = ".zip"

    def export(self, path: str | os.PathLike[str]) -> Path:
        """The agent as SB3 saves it (``agent.save``): ``PPO.load(path)`` reads it back."""
        target = Path(path).with_suffix(self.export_suffix)
        self._live().save(target)
        return target

    def get_state(self) -> State:
        """Copies of the networks, optimizer slots and counters (and, with ``replay_buffer="copy"``,
        the replay buffer's filled part); see :mod:`.state`."""
        _, torch = _modules()
        return export_state(torch, self._live(), self._epochs, self.replay_buffer == "copy")

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Take over another member's state; keep this member's hyperparameters and environments.

        A member rebuilt from a state (on another Ray actor, or when a run resumes) has fresh
        environments: they start from a seed of its own seed and epoch count, not from the
        episodes it began with."""
        _, torch = _modules()
        agent = self._live()
        epochs = import_state(torch, agent, state)
        if epochs is not None:
            self._epochs = epochs
        if agent._last_obs is None:  # not stepped yet: seed the reset its next learn() makes
            agent.env.seed(seed_of(self._seed, self._epochs, _ENV_STREAM))
