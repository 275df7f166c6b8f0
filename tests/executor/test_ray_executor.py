"""Tests for pybt.executor.ray.RayExecutor on a local Ray with 2 CPUs (started once per module).

FunctionModel, Keras and PyTorch members train as Ray actors; the results must be those of the
in-process run (each member's training is deterministic), and the asynchronous loop must copy
exactly the donor state the trainer recorded. ``TestRayExecutorContract`` runs the Executor
contract every executor passes; one executor serves several trainers in a row.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from pybt import PyBTError, Trainer
from pybt.callbacks import ProgressBar
from pybt.errors import TrainingError
from pybt.executor.ray import RayExecutor
from pybt.model import FunctionModel, KerasModelWrapper, TorchModelWrapper
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.space import LogUniform
from tests.executor import contract
from tests.executor.contract import ExecutorContract

# A NumPy-only environment skips the file here (importing pybt.executor.ray needs no Ray).
ray = pytest.importorskip("ray")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")
load_digits = pytest.importorskip("sklearn.datasets").load_digits
nn = torch.nn

TARGET = np.array([1.0, -2.0, 0.5])


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    # Ray workers cannot import this test module (pytest put tests/ on sys.path, not Ray):
    # send its functions by value, as for a user's script.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.cloudpickle.register_pickle_by_value(contract)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = (x[order] / 16.0).astype("float32"), y[order].astype("int64")
    return x[:400], y[:400], x[1400:], y[1400:]


# ---- a quadratic bowl: the state counts its own epochs, the metrics say where they ran ---------
def init(seed: int) -> dict[str, Any]:
    return {"w": np.random.default_rng(seed).normal(size=3), "epochs": 0}


def step(state: dict[str, Any], hp: dict[str, Any], target: np.ndarray, pause: float = 0.0) -> Any:
    # Members with a small learning rate are slower, so finishing order differs from submission.
    time.sleep(pause * (1.0 + 4.0 * (hp["lr"] < 0.05)))
    w = state["w"] - hp["lr"] * 2 * (state["w"] - target)
    metrics = {"data_address": float(target.ctypes.data), "data_writeable": float(target.flags.writeable)}
    return {"w": w, "epochs": state["epochs"] + 1}, metrics


def evaluate(state: dict[str, Any], target: np.ndarray) -> dict[str, float]:
    return {
        "score": -float(np.sum((state["w"] - target) ** 2)),
        "epochs": float(state["epochs"]),
        "pid": float(os.getpid()),
    }


def bowl_trainer(executor: Any, pause: float = 0.0, **overrides: Any) -> Trainer:
    arguments: dict[str, Any] = {
        "model": FunctionModel(init, step, evaluate),
        "population_size": 6,
        "hyperparameters": {"lr": LogUniform(1e-3, 0.5)},
        "stopping_criteria": StopAfter(9),
        "ready_strategy": ReadyAfter(3),
        "step_args": {"fit_args": {"target": TARGET, "pause": pause}},
        "eval_args": {"target": TARGET},
        "executor": executor,
        "seed": 3,
        "verbose": 0,
    }
    arguments.update(overrides)
    return Trainer(**arguments)


def trajectories(trainer: Trainer) -> dict[int, list[tuple[int, float, dict[str, Any]]]]:
    runs: dict[int, list[tuple[int, float, dict[str, Any]]]] = {}
    for row in trainer.history:
        runs.setdefault(row["member"], []).append((row["epoch"], row["score"], row["hyperparameters"]))
    return runs


def final_epochs(trainer: Trainer) -> dict[int, int]:
    """Each member's epoch at the end: from its last step, or from the donor it last copied."""
    events = sorted(
        (row["sequence"], row["member"], row["epoch"]) for row in trainer.history + trainer.exploits
    )
    return {member: epoch for _, member, epoch in events}


# ---- tests ---------------------------------------------------------------------------------------
def test_function_members_train_as_in_process_with_the_data_sent_once(monkeypatch: Any) -> None:
    puts: list[Any] = []
    real_put = ray.put
    monkeypatch.setattr(ray, "put", lambda value, **kw: puts.append(value) or real_put(value, **kw))
    # Without exploit and explore every member's training is deterministic, wherever and whenever
    # it runs.
    local = bowl_trainer(None, exploit_strategy=None, explore_strategy=None)
    local_best, local_score = local.train()
    with RayExecutor() as executor:
        remote = bowl_trainer(executor, exploit_strategy=None, explore_strategy=None)
        remote_best, remote_score = remote.train()

    assert trajectories(remote) == trajectories(local)
    assert remote_score == local_score
    np.testing.assert_array_equal(remote_best["w"], local_best["w"])
    assert remote_best["epochs"] == 9
    # Steps ran on the actors (at most two: one per CPU), not here.
    pids = {row["metrics"]["pid"] for row in remote.history}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids
    # The data went to the object store once, and each actor read the same read-only copy at
    # every step (a copy sent with each step would be a fresh, writeable array).
    assert sum(1 for value in puts if isinstance(value, dict) and "target" in value) == 2  # fit, eval
    for pid in pids:
        rows = [row["metrics"] for row in remote.history if row["metrics"]["pid"] == pid]
        assert {m["train_data_address"] for m in rows} == {rows[0]["train_data_address"]}
        assert {m["train_data_writeable"] for m in rows} == {0.0}


def test_asynchronous_exploit_copies_the_state_the_trainer_recorded() -> None:
    log = io.StringIO()  # not a terminal: the progress prints a line every 10 %
    with RayExecutor() as executor:
        trainer = bowl_trainer(
            executor,
            pause=0.02,
            population_size=8,
            stopping_criteria=StopAfter(12),
            callbacks=[ProgressBar(log)],
        )
        _, score = trainer.train()
    last = log.getvalue().strip().splitlines()[-1]
    assert "96/96" in last and f"best now score {score:.4g}" in last, "the progress reaches the end on Ray"

    # The state counts its epochs: after every copy the member resumed from exactly the donor
    # epoch the trainer recorded, although donors were often training further meanwhile.
    for row in trainer.history:
        assert row["metrics"]["epochs"] == row["epoch"], row
    assert trainer.exploits, "nothing was exploited"
    assert len({row["metrics"]["pid"] for row in trainer.history}) == 2  # two actors, 8 members
    assert final_epochs(trainer) == dict.fromkeys(range(8), 12)

    # Asynchronous: members decided as their own steps ended, so at some moment one member was
    # more than a step ahead of another, but never beyond the trainer's run-ahead limit.
    epochs, gaps = dict.fromkeys(range(8), 0), []
    for _, member, epoch in sorted(
        (r["sequence"], r["member"], r["epoch"]) for r in trainer.history + trainer.exploits
    ):
        epochs[member] = epoch
        live = [e for e in epochs.values() if e < 12]
        if live:
            gaps.append(max(live) - min(live))
    assert max(gaps) > 1
    # The trainer lets a member start a step at most max(epochs_per_step, ready interval)
    # epochs ahead of the slowest live member, and a step adds epochs_per_step.
    max_lead = max(trainer.epochs_per_step, trainer.ready_strategy.epochs)
    assert max(gaps) <= max_lead + trainer.epochs_per_step


class TestRayExecutorContract(ExecutorContract):
    def make_executor(self) -> RayExecutor:
        return RayExecutor(max_concurrent=2)


def other_init(seed: int) -> dict[str, Any]:
    return {"w": np.random.default_rng(seed).normal(size=2), "epochs": 0}


def test_one_executor_serves_two_trainers_in_a_row_and_closes_its_actors() -> None:
    with RayExecutor(max_concurrent=2) as executor:
        first = bowl_trainer(executor, population_size=4, stopping_criteria=StopAfter(6))
        first_best, _ = first.train()
        # Another model, data and population: the same actors take them in.
        second = bowl_trainer(
            executor,
            model=FunctionModel(other_init, step, evaluate),
            population_size=3,
            stopping_criteria=StopAfter(4),
            step_args={"fit_args": {"target": np.zeros(2)}},
            eval_args={"target": np.zeros(2)},
        )
        second_best, _ = second.train()
        pids = [{int(row["metrics"]["pid"]) for row in trainer.history} for trainer in (first, second)]

    assert final_epochs(first) == dict.fromkeys(range(4), 6)
    assert final_epochs(second) == dict.fromkeys(range(3), 4)
    assert first_best["w"].shape == (3,) and second_best["w"].shape == (2,)
    # One pool of two actors served both runs (an actor may have run steps in only one of them).
    assert len(pids[0] | pids[1]) <= 2 and pids[0] & pids[1]
    # Closed on leaving the block: the actors' processes end; Ray, started here, runs on.
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in pids[0] | pids[1]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids[0] | pids[1])
    assert ray.is_initialized()
    with pytest.raises(TrainingError, match="closed"):
        executor.submit(0, {"lr": 0.1}, 1)


def test_a_finished_run_outside_a_with_block_gives_its_actors_back(tmp_path: Any) -> None:
    # `Trainer(executor=RayExecutor())`, the trainer kept for its results: while its two actors
    # held both CPUs, another executor's actors (or Ray Tune's trials) waited for them forever.
    first = bowl_trainer(RayExecutor(), population_size=4, stopping_criteria=StopAfter(6))
    _, first_score = first.train()
    pids = {int(row["metrics"]["pid"]) for row in first.history}
    # Ray frees an actor's CPU at once and ends its process a moment later: wait for both.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        ray.available_resources().get("CPU", 0) < 2 or any(alive(pid) for pid in pids)
    ):
        time.sleep(0.1)
    assert ray.available_resources().get("CPU", 0) == 2
    assert not any(alive(pid) for pid in pids)

    second = bowl_trainer(RayExecutor(), population_size=4, stopping_criteria=StopAfter(6))
    second.train()
    assert final_epochs(second) == dict.fromkeys(range(4), 6)
    # The finished trainer still answers from the states in the object store ...
    assert first.export(tmp_path / "best").exists()
    assert first.executor.model(first.best_member)["w"].shape == (3,)
    # ... and its executor starts new actors for its next run.
    third = bowl_trainer(first.executor, population_size=4, stopping_criteria=StopAfter(6))
    assert third.train()[1] == pytest.approx(first_score)
    for trainer in (first, second, third):
        trainer.executor.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_keras_members_travel_as_config_and_weights(digits: Any) -> None:
    x, y, x_val, y_val = digits
    model = keras.Sequential(
        [keras.Input(shape=(64,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10)]
    )
    wrapper = KerasModelWrapper(
        model,
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    with RayExecutor() as executor:
        trainer = Trainer(
            model=wrapper,
            population_size=3,
            hyperparameters={"learning_rate": LogUniform(1e-3, 3e-2)},
            stopping_criteria=StopAfter(4),
            ready_strategy=ReadyAfter(2),
            step_args={"epochs_per_step": 2, "fit_args": {"x": x, "y": y}},
            eval_args={"x": x_val, "y": y_val},
            executor=executor,
            seed=0,
            verbose=0,
        )
        best, score = trainer.train()

    assert isinstance(best, keras.Model) and best is not model
    assert {row["member"] for row in trainer.history} == {0, 1, 2}
    # The model rebuilt in this process from the actor's state scores what the actor scored.
    assert best.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"] == pytest.approx(score)
    assert score > 0.5


def test_a_pickled_keras_template_spawns_members_that_train(digits: Any) -> None:
    x, y, x_val, y_val = digits
    model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(10, activation="softmax")])
    wrapper = KerasModelWrapper(
        model, optimizer=keras.optimizers.SGD(0.1, momentum=0.5), loss="sparse_categorical_crossentropy"
    )
    wrapper.check_args({"x": x, "y": y}, {"x": x_val, "y": y_val})
    copy = pickle.loads(pickle.dumps(wrapper))

    assert copy.given_hyperparameters({"momentum": None}) == {"momentum": 0.5}
    first, second = wrapper.spawn(5), copy.spawn(5)
    assert [w.tolist() for w in first.model.get_weights()] == [w.tolist() for w in second.model.get_weights()]
    losses = [member.fit({"learning_rate": 0.1}, 3, {"x": x, "y": y})["loss"] for member in (first, second)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    # A member travels with its trained state.
    moved = pickle.loads(pickle.dumps(second))
    assert moved.evaluate({"x": x_val, "y": y_val}) == pytest.approx(
        second.evaluate({"x": x_val, "y": y_val})
    )


def test_torch_members_train_on_ray(digits: Any) -> None:
    x, y, x_val, y_val = digits
    wrapper = TorchModelWrapper(
        nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
        torch.optim.Adam,
        nn.CrossEntropyLoss(),
    )
    with RayExecutor(num_cpus_per_member=1) as executor:
        trainer = Trainer(
            model=wrapper,
            population_size=4,
            hyperparameters={"lr": LogUniform(1e-3, 3e-2)},
            stopping_criteria=StopAfter(4),
            ready_strategy=ReadyAfter(2),
            step_args={"epochs_per_step": 1, "fit_args": {"x": x, "y": y}},
            eval_args={"x": x_val, "y": y_val},
            executor=executor,
            seed=1,
            verbose=0,
        )
        best, score = trainer.train()

    assert isinstance(best, nn.Module)
    with torch.no_grad():
        predicted = best(torch.as_tensor(x_val)).argmax(dim=1).numpy()
    assert float((predicted == y_val).mean()) == pytest.approx(score)
    assert score > 0.6
    assert final_epochs(trainer) == dict.fromkeys(range(4), 4)


def test_an_actor_that_cannot_load_the_model_is_a_clear_error(tmp_path: Any) -> None:
    # A model from a module that exists only on this machine's path, not on the workers'.
    (tmp_path / "only_here.py").write_text("def init(seed):\n    return {'w': float(seed)}\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import only_here

        model = FunctionModel(only_here.init, lambda s, hp: s, lambda s: s["w"])
        with RayExecutor() as executor:
            trainer = Trainer(
                model,
                population_size=2,
                hyperparameters={"lr": LogUniform(1e-3, 1.0)},
                executor=executor,
                verbose=0,
            )
            with pytest.raises(TrainingError, match="could not load the model") as raised:
                trainer.train()
        assert "only_here" in str(raised.value)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("only_here", None)


def test_arguments_are_checked() -> None:
    for arguments, named in (
        ({"num_cpus_per_member": 0}, "num_cpus_per_member"),
        ({"num_gpus_per_member": -1}, "num_gpus_per_member"),
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"address": 6379}, "address"),
    ):
        with pytest.raises(PyBTError, match=named):
            RayExecutor(**arguments)
    with RayExecutor(num_gpus_per_member=1) as executor, pytest.raises(PyBTError, match="0 GPUs"):
        executor.start(FunctionModel(init, step, evaluate), {}, {})  # this Ray has no GPU


def test_without_ray_the_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import pybt.executor.ray as module\n"  # importable without Ray
        "try:\n    module.RayExecutor()\n"
        "except ImportError as error:\n    print(type(error).__name__, error)\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.startswith("MissingDependencyError")
    assert "pip install 'pybt[ray]'" in output
