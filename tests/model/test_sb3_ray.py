"""SB3ModelWrapper members on Ray actors (a local Ray with 2 CPUs, started once for the module).

The template travels to the actor with cloudpickle and the actor rebuilds its members' agents
and environments from the environment's id. Without exploit and explore every member's
training is its own, so the actor must produce exactly what the same population does in
process; with PBT on, exploits load donors' states from the object store, and the run must
hand back a trained PPO agent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pybt import Trainer
from pybt.executor.ray import RayExecutor
from pybt.model.sb3 import SB3ModelWrapper
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.space import LogUniform

sb3 = pytest.importorskip("stable_baselines3")
ray = pytest.importorskip("ray")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def cartpole_trainer(executor: RayExecutor | None, pbt: bool) -> Trainer:
    agent = sb3.PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=2, device="cpu")
    policies: dict[str, Any] = {} if pbt else {"exploit_strategy": None, "explore_strategy": None}
    return Trainer(
        model=SB3ModelWrapper(agent, steps_per_epoch=64, eval_episodes=2),
        population_size=3,
        hyperparameters={"learning_rate": LogUniform(1e-4, 3e-3)},
        stopping_criteria=StopAfter(3),
        ready_strategy=ReadyAfter(1),
        executor=executor,
        seed=0,
        verbose=0,
        **policies,
    )


def trajectories(trainer: Trainer) -> dict[int, list[tuple[int, float, float]]]:
    rows: dict[int, list[tuple[int, float, float]]] = {}
    for row in sorted(trainer.history, key=lambda row: (row["member"], row["epoch"])):
        metrics = row["metrics"]
        rows.setdefault(row["member"], []).append(
            (row["epoch"], metrics["mean_return"], metrics["train_timesteps"])
        )
    return rows


def test_members_on_ray_actors_train_as_in_process_and_pbt_returns_a_trained_agent() -> None:
    local = cartpole_trainer(None, pbt=False)
    local_agent, local_score = local.train()
    # One actor serves both runs (it starts, and imports SB3, once). With one actor no member
    # moves: a member that moves to another actor goes on from its state with fresh
    # environments, so it would train on other episodes than in process.
    with RayExecutor(max_concurrent=1) as executor:
        remote = cartpole_trainer(executor, pbt=False)
        remote_agent, remote_score = remote.train()
        pbt = cartpole_trainer(executor, pbt=True)
        pbt_agent, pbt_score = pbt.train()

    assert trajectories(remote) == trajectories(local)
    assert remote_score == local_score
    assert isinstance(remote_agent, sb3.PPO) and remote_agent.num_timesteps == 192
    for key, value in local_agent.policy.state_dict().items():
        assert torch.equal(remote_agent.policy.state_dict()[key], value), key

    assert isinstance(pbt_agent, sb3.PPO) and 8 <= pbt_score <= 500
    assert pbt.exploits, "members took over states from the object store"
    assert {row["epoch"] for row in pbt.history} == {1, 2, 3}
