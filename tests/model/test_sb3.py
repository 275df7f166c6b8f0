"""Tests for pybt.model.SB3ModelWrapper: Stable-Baselines3 agents as PBT members.

``TestSB3Contract`` runs the ModelWrapper contract on TD3 in a tiny deterministic environment
(see there why), the other tests train PPO, A2C, SAC and DQN for a few hundred steps: through
the Trainer, hyperparameters written where SB3 reads them, refused names and settings, the
replay buffer's two modes, seeding and the members' independence. The file skips itself where
Stable-Baselines3 is not installed (conftest runs torch on one thread).
"""

from __future__ import annotations

import io
import random
import subprocess
import sys
from typing import Any, ClassVar

import numpy as np
import pytest

from pybt import PyBTError, Trainer
from pybt.model.sb3 import SB3ModelWrapper
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.space import Domain, IntUniform, LogUniform, Uniform
from tests.model.contract import ModelWrapperContract, states_equal

sb3 = pytest.importorskip("stable_baselines3")
gymnasium = pytest.importorskip("gymnasium")
torch = pytest.importorskip("torch")
PPO, A2C, SAC, TD3, DQN = sb3.PPO, sb3.A2C, sb3.SAC, sb3.TD3, sb3.DQN

POINT = "PyBTPoint-v0"


class Point(gymnasium.Env):
    """A point on a line, pushed by the action; reward -x². Every episode starts at x = 1 (the
    seed changes nothing) and lasts 8 steps: nothing in it is random."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}  # how SB3 makes it from its id
    observation_space = gymnasium.spaces.Box(-10.0, 10.0, (2,), np.float32)
    action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.x, self.t = 1.0, 0
        return self._observation(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.x = float(np.clip(self.x + 0.5 * float(action[0]), -10.0, 10.0))
        self.t += 1
        return self._observation(), -(self.x**2), False, self.t >= 8, {}

    def _observation(self) -> np.ndarray:
        return np.array([self.x, self.t / 8], dtype=np.float32)


if POINT not in gymnasium.registry:
    gymnasium.register(POINT, entry_point=Point)


def ppo(**settings: Any) -> Any:
    return PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=2, device="cpu", **settings)


def sac(**settings: Any) -> Any:
    tiny = {"policy_kwargs": {"net_arch": [16]}, "learning_starts": 20, "batch_size": 16, "buffer_size": 500}
    return SAC("MlpPolicy", "Pendulum-v1", device="cpu", **{**tiny, **settings})


# ---- the contract ---------------------------------------------------------------------------------
class TestSB3Contract(ModelWrapperContract):
    """The contract on TD3 in a deterministic world, where it means what it says.

    An RL member's training draws from its own streams (actions, minibatches, its environment),
    so a copy trains on like its donor only where nothing is drawn: an environment that starts
    every episode alike, episodes that end with the epoch, TD3's deterministic actions without
    action noise, no target smoothing noise and no random warm-up, and a one-transition replay
    buffer (a sample can only be the newest transition). What remains is what the state carries:
    the networks with their targets, Adam's slots and step counts, and TD3's update counter,
    which decides when its actor learns (policy_delay).
    """

    def make_template(self) -> SB3ModelWrapper:
        agent = TD3(
            "MlpPolicy",
            POINT,
            buffer_size=1,
            learning_starts=0,
            batch_size=4,
            policy_delay=2,
            target_policy_noise=0.0,
            policy_kwargs={"net_arch": [16]},
            device="cpu",
        )
        return SB3ModelWrapper(agent, steps_per_epoch=16, eval_episodes=2)

    def space(self) -> dict[str, Domain]:
        return {"learning_rate": LogUniform(1e-3, 1e-2), "tau": Uniform(0.01, 0.1)}

    def fit_args(self) -> dict[str, Any]:
        return {}

    def eval_args(self) -> dict[str, Any]:
        return {}


def test_in_the_world_rl_members_live_in_a_copy_draws_its_own_samples() -> None:
    # Where the contract's deterministic set-up is lifted, a copy explores apart from its donor:
    # the same weights, but its own actions and minibatches (and its own environment).
    template = SB3ModelWrapper(ppo(), steps_per_epoch=64, eval_episodes=1)
    donor, member = template.spawn(1), template.spawn(2)
    donor.fit({}, 1, {})
    member.set_state(donor.get_state())
    assert states_equal(member.get_state(), donor.get_state())
    for trainee in (donor, member):
        trainee.fit({}, 1, {})
    assert not states_equal(member.get_state(), donor.get_state())
    assert member.agent.num_timesteps == donor.agent.num_timesteps == 128


# ---- the whole loop -------------------------------------------------------------------------------
def run_cartpole(seed: int) -> tuple[Trainer, Any, float]:
    trainer = Trainer(
        model=SB3ModelWrapper(ppo(), steps_per_epoch=128, eval_episodes=2),
        population_size=2,
        hyperparameters={"learning_rate": LogUniform(1e-4, 3e-3), "ent_coef": LogUniform(1e-4, 1e-2)},
        stopping_criteria=StopAfter(2),
        ready_strategy=ReadyAfter(1),
        seed=seed,
        verbose=0,
    )
    agent, score = trainer.train()
    return trainer, agent, score


def test_trainer_returns_the_sb3_agent_and_a_seeded_run_repeats_exactly() -> None:
    python_state, numpy_state = random.getstate(), np.random.get_state()
    trainer, agent, score = run_cartpole(seed=0)
    assert isinstance(agent, PPO) and agent.num_timesteps == 256
    assert trainer.metric == "mean_return" and trainer.mode == "max"
    first = trainer.history[0]["metrics"]
    assert {"mean_return", "std_return", "mean_length", "train_timesteps", "train_return"} <= set(first)
    assert first["train_timesteps"] == 128.0 and 8 <= score <= 500
    assert trainer.exploits, "the weaker member copied the stronger one"
    assert random.getstate() == python_state, "members leave the global RNGs as they found them"
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state, strict=True))

    again, again_agent, again_score = run_cartpole(seed=0)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in trainer.history]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in again.history]
    assert again_score == score and again.exploits == trainer.exploits
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            agent.policy.state_dict().values(), again_agent.policy.state_dict().values(), strict=True
        )
    )


def test_the_winner_exports_as_sb3_saves_it_and_sb3_metric_names_are_understood(tmp_path: Any) -> None:
    trainer = Trainer(
        model=SB3ModelWrapper(ppo(), steps_per_epoch=64, eval_episodes=1),
        population_size=2,
        hyperparameters={"learning_rate": LogUniform(1e-4, 3e-3)},
        stopping_criteria=StopAfter(1),
        metric="eval/mean_reward",
        seed=0,
        verbose=0,
    )
    agent, _ = trainer.train()
    assert trainer.metric == "mean_return"
    path = trainer.export(tmp_path / "winner")
    assert path.suffix == ".zip"
    loaded = PPO.load(path, device="cpu")
    for key, value in agent.policy.state_dict().items():
        assert torch.equal(loaded.policy.state_dict()[key], value)
    with pytest.raises(PyBTError, match=r"metric.*one of the metrics this model reports"):
        Trainer(model=SB3ModelWrapper(ppo(), steps_per_epoch=64), metric="accuracy")


def test_members_train_alike_whatever_order_they_run_in() -> None:
    template = SB3ModelWrapper(ppo(), steps_per_epoch=64, eval_episodes=1)

    def train(order: list[int]) -> dict[int, dict[str, np.ndarray]]:
        members = {seed: template.spawn(seed) for seed in order}
        for seed in order:
            members[seed].fit({"learning_rate": 1e-3}, 1, {})
        return {seed: member.get_state() for seed, member in members.items()}

    first, second = train([5, 6]), train([6, 5])
    assert states_equal(first[5], second[5]) and states_equal(first[6], second[6])
    assert not states_equal(first[5], first[6])


def test_members_write_no_logger_folders_and_print_what_a_verbose_agent_prints(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where SB3 makes its logger folders
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    quiet = SB3ModelWrapper(ppo(), steps_per_epoch=64, eval_episodes=1).spawn(1)
    quiet.fit({"learning_rate": 1e-3}, 2, {})
    assert capsys.readouterr().out == ""
    talkative = SB3ModelWrapper(ppo(verbose=1), steps_per_epoch=64, eval_episodes=1).spawn(1)
    talkative.fit({"learning_rate": 1e-3}, 1, {})
    assert "total_timesteps" in capsys.readouterr().out
    assert not list(tmp_path.glob("SB3-*"))


# ---- hyperparameters --------------------------------------------------------------------------------
def test_hyperparameters_are_written_where_sb3_reads_them() -> None:
    member = SB3ModelWrapper(ppo(), steps_per_epoch=64, eval_episodes=1).spawn(0)
    values = {"learning_rate": 2e-3, "clip_range": 0.3, "gamma": 0.95, "gae_lambda": 0.9, "n_epochs": 3}
    member.fit({**values, "batch_size": np.int64(16)}, 1, {})
    agent = member.unwrap()
    assert agent.lr_schedule(0.5) == 2e-3 and agent.clip_range(0.5) == 0.3
    assert [group["lr"] for group in agent.policy.optimizer.param_groups] == [2e-3]
    assert agent.rollout_buffer.gamma == 0.95 and agent.rollout_buffer.gae_lambda == 0.9
    assert agent.n_epochs == 3 and type(agent.batch_size) is int and agent.batch_size == 16
    assert agent._n_updates == 3, "the explored n_epochs is what the update ran"

    fixed = SB3ModelWrapper(sac(ent_coef=0.1), steps_per_epoch=40, eval_episodes=1).spawn(0)
    fixed.fit({"ent_coef": 0.02, "tau": 0.05}, 1, {})
    assert fixed.agent.ent_coef_tensor.item() == pytest.approx(0.02) and fixed.agent.tau == 0.05

    dqn = DQN("MlpPolicy", "CartPole-v1", learning_starts=10, device="cpu")
    member = SB3ModelWrapper(dqn, steps_per_epoch=40, eval_episodes=1).spawn(0)
    member.fit({"exploration_final_eps": 0.2, "target_update_interval": 7}, 1, {})
    assert member.agent.exploration_rate == pytest.approx(0.2), "the epsilon schedule is rebuilt"
    assert member.agent.target_update_interval == 7


def test_each_algorithm_offers_its_own_hyperparameters_and_defaults() -> None:
    wrappers = {
        "PPO": SB3ModelWrapper(ppo(), steps_per_epoch=64),
        "A2C": SB3ModelWrapper(A2C("MlpPolicy", "CartPole-v1", device="cpu"), steps_per_epoch=10),
        "SAC": SB3ModelWrapper(sac(), steps_per_epoch=10),
        "TD3": TestSB3Contract().make_template(),
        "DQN": SB3ModelWrapper(DQN("MlpPolicy", "CartPole-v1", device="cpu"), steps_per_epoch=8),
    }
    tunable = {name: wrapper.tunable_hyperparameters() for name, wrapper in wrappers.items()}
    assert {"clip_range", "n_epochs", "batch_size", "ent_coef", "gae_lambda"} <= set(tunable["PPO"])
    assert "clip_range" not in tunable["A2C"] and "ent_coef" in tunable["A2C"]
    assert "target_entropy" in tunable["SAC"] and "ent_coef" not in tunable["SAC"], "ent_coef='auto'"
    assert {"policy_delay", "target_policy_noise", "tau"} <= set(tunable["TD3"])
    assert {"target_update_interval", "exploration_final_eps"} <= set(tunable["DQN"])
    assert all("learning_rate" in names and "gamma" in names for names in tunable.values())
    defaults = {name: sorted(wrapper.default_space()) for name, wrapper in wrappers.items()}
    assert defaults["PPO"] == ["clip_range", "ent_coef", "learning_rate"]
    assert defaults["SAC"] == defaults["TD3"] == ["learning_rate", "tau"]
    assert defaults["DQN"] == ["exploration_final_eps", "learning_rate"]
    space = wrappers["PPO"].default_space()
    assert wrappers["PPO"].given_hyperparameters(space) == {
        "learning_rate": 3e-4,
        "ent_coef": 0.0,
        "clip_range": 0.2,
    }


def test_names_and_values_the_algorithm_cannot_take_are_refused_with_the_list() -> None:
    wrapper = SB3ModelWrapper(ppo(), steps_per_epoch=64)
    with pytest.raises(
        PyBTError, match=r"'tau'.*PPO's tunable hyperparameters are \['batch_size', 'clip_range'"
    ):
        wrapper.prepare({"tau": Uniform(0.01, 0.1)}, {}, {})
    with pytest.raises(PyBTError, match=r"hyperparameters\['gamma'\].*a number in \[0, 1\]"):
        wrapper.prepare({"gamma": Uniform(0.9, 1.5)}, {}, {})
    with pytest.raises(PyBTError, match=r"hyperparameters\['n_epochs'\].*an integer >= 1"):
        wrapper.prepare({"n_epochs": Uniform(1, 10)}, {}, {})
    with pytest.raises(PyBTError, match=r"hyperparameters\['batch_size'\].*an integer >= 2"):
        wrapper.prepare({"batch_size": IntUniform(1, 64)}, {}, {})  # advantages normalized per batch
    with pytest.raises(PyBTError, match=r"learns ent_coef='auto': explore target_entropy"):
        SB3ModelWrapper(sac(), steps_per_epoch=10).prepare({"ent_coef": Uniform(0.01, 0.1)}, {}, {})
    with pytest.raises(PyBTError, match=r"step_args\['fit_args'\].*SB3ModelWrapper takes its settings"):
        wrapper.prepare({}, {"x": 1}, {})
    with pytest.raises(PyBTError, match=r"'vf_coeff'"):
        wrapper.spawn(0).fit({"vf_coeff": 0.5}, 1, {})


def test_settings_pybt_cannot_honour_are_refused_when_the_wrapper_is_built() -> None:
    with pytest.raises(
        PyBTError, match=r"steps_per_epoch.*multiple of PPO's n_steps \* n_envs = 64 \* 1.*=128"
    ):
        SB3ModelWrapper(ppo(), steps_per_epoch=100)
    with pytest.raises(PyBTError, match=r"agent.*a Stable-Baselines3 algorithm"):
        SB3ModelWrapper(object(), steps_per_epoch=10)
    normalized = sb3.common.vec_env.VecNormalize(sb3.common.env_util.make_vec_env("CartPole-v1"))
    with pytest.raises(PyBTError, match=r"VecNormalize.*Pass env= a function"):
        SB3ModelWrapper(PPO("MlpPolicy", normalized, n_steps=64, device="cpu"), steps_per_epoch=64)
    with pytest.raises(PyBTError, match=r"observation_space"):
        SB3ModelWrapper(ppo(), steps_per_epoch=64, env="Acrobot-v1")
    with pytest.raises(PyBTError, match=r"replay_buffer.*'own' or 'copy'"):
        SB3ModelWrapper(sac(), steps_per_epoch=10, replay_buffer="shared")


def test_members_get_the_environment_the_agent_was_made_with_or_the_one_given() -> None:
    # What gym.make was given (here max_episode_steps) is part of the environment rebuilt.
    short = gymnasium.make("CartPole-v1", max_episode_steps=12)
    short = PPO("MlpPolicy", short, n_steps=64, device="cpu")
    member = SB3ModelWrapper(short, steps_per_epoch=64, eval_episodes=3).spawn(0)
    assert member.fit({}, 1, {})["return"] <= 12 and member.evaluate({})["mean_length"] <= 12

    def make() -> Any:
        return gymnasium.wrappers.TimeLimit(gymnasium.make("CartPole-v1"), max_episode_steps=20)

    member = SB3ModelWrapper(ppo(), steps_per_epoch=64, eval_episodes=3, env=make, eval_env=make).spawn(0)
    assert 12 < member.fit({}, 1, {})["return"] <= 20
    assert member.evaluate({})["mean_length"] <= 20
    wrapped = gymnasium.wrappers.TransformReward(gymnasium.make("CartPole-v1"), lambda reward: 2 * reward)
    with pytest.raises(PyBTError, match=r"wrapped in \['TransformReward'\].*Pass env= a function"):
        SB3ModelWrapper(PPO("MlpPolicy", wrapped, n_steps=64, device="cpu"), steps_per_epoch=64)


# ---- the replay buffer and the state ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["own", "copy"])
def test_an_exploit_copies_the_replay_buffer_only_when_asked(mode: str) -> None:
    template = SB3ModelWrapper(sac(), steps_per_epoch=40, eval_episodes=1, replay_buffer=mode)
    donor, member = template.spawn(1), template.spawn(2)
    donor.fit({}, 2, {})
    member.fit({}, 1, {})
    own = member.agent.replay_buffer.observations[:40].copy()
    buffer = io.BytesIO()
    np.savez(buffer, **donor.get_state())
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as stored:
        member.set_state({key: stored[key] for key in stored.files})
    replay, donors = member.agent.replay_buffer, donor.agent.replay_buffer
    assert states_equal(member.get_state(), donor.get_state())
    assert member.agent.num_timesteps == 80 and member.agent._n_updates == donor.agent._n_updates
    if mode == "copy":
        assert replay.pos == donors.pos == 80 and np.array_equal(replay.actions[:80], donors.actions[:80])
    else:
        assert not any(key.startswith("replay/") for key in donor.get_state())
        assert replay.pos == 40 and np.array_equal(replay.observations[:40], own), "its own experience"


def test_a_learned_entropy_coefficient_travels_with_the_state() -> None:
    template = SB3ModelWrapper(sac(), steps_per_epoch=40, eval_episodes=1)
    donor, member = template.spawn(1), template.spawn(2)
    donor.fit({}, 1, {})
    assert "var/log_ent_coef" in donor.get_state()
    member.set_state(donor.get_state())
    assert torch.equal(member.agent.log_ent_coef, donor.agent.log_ent_coef)


def test_keep_weights_starts_every_member_from_the_agents_weights(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path))  # the user's own learn() logs here
    agent = ppo()
    agent.learn(64)
    template = SB3ModelWrapper(agent, steps_per_epoch=64, keep_weights=True)
    member = template.spawn(3)
    for key, value in agent.policy.state_dict().items():
        assert torch.equal(member.agent.policy.state_dict()[key], value)
    assert member.agent.num_timesteps == 0, "the counters start afresh"


def test_importing_the_wrapper_imports_no_framework() -> None:
    code = (
        "import sys, pybt.model.sb3\n"
        "loaded = {'stable_baselines3', 'gymnasium', 'torch'} & set(sys.modules)\n"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
