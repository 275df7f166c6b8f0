"""Stable-Baselines3 agents as PBT members: reinforcement learning on the library RL people use.

``SB3ModelWrapper(agent, steps_per_epoch, eval_episodes, eval_env)`` wraps an SB3 algorithm
(PPO, A2C, SAC, TD3, DQN, or another ``BaseAlgorithm``) built on its environment::

    agent = PPO("MlpPolicy", "CartPole-v1", n_steps=256, batch_size=64)
    wrapper = SB3ModelWrapper(agent, steps_per_epoch=4096, eval_episodes=10)
    trainer = Trainer(model=wrapper, population_size=8, hyperparameters={
        "learning_rate": LogUniform(1e-4, 3e-3), "ent_coef": LogUniform(1e-5, 1e-2)})
    best_agent, mean_return = trainer.train()      # a PPO instance

Members. Each member is a fresh agent with the user's settings, built as ``PPO.load`` rebuilds
one, with its own seed and its own environments made by ``make_vec_env`` from the environment's
id (or a factory given as ``env=``), so members can be rebuilt in Ray actors. One epoch is
``agent.learn(steps_per_epoch, reset_num_timesteps=False)``; the score, ``mean_return``, is the
mean return of ``evaluate_policy`` (deterministic actions) on a separate evaluation environment.

Hyperparameters. ``learning_rate`` (the agent's schedule and the live optimizers), ``gamma``,
and what the algorithm has: ``ent_coef``, ``vf_coef``, ``gae_lambda``, ``max_grad_norm`` (A2C,
PPO); ``clip_range``, ``n_epochs``, ``batch_size``, ``target_kl`` (PPO); ``tau``, ``batch_size``,
``gradient_steps`` (SAC, TD3, DQN); ``ent_coef`` when fixed or ``target_entropy`` when learned,
``target_update_interval`` (SAC); ``policy_delay``, ``target_policy_noise``,
``target_noise_clip`` (TD3); ``target_update_interval``, ``exploration_*`` (DQN). Other names are
refused with the list. A member's values are written before every epoch.

State. The networks (with their target networks), the optimizers' slots and SB3's counters, as
``{name: ndarray}``, without pickle; the replay buffer only with ``replay_buffer="copy"`` (by
default each member keeps its own: see :class:`SB3ModelWrapper`).

The package: :mod:`.wrapper` (the class), :mod:`.recipe` (rebuilding members, environments,
seeding), :mod:`.hyperparameters` (the tunable names, their checks, writing them) and
:mod:`.state` (state to arrays and back). None of them imports SB3, gymnasium or torch when
imported: they are loaded when a wrapper is built (``pip install 'pybt[sb3]'``).
"""

from __future__ import annotations

from pybt.model.sb3.wrapper import SB3ModelWrapper

__all__ = ["SB3ModelWrapper"]
