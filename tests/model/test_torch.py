"""Tests for pybt.model.TorchModelWrapper: PyTorch modules as PBT members.

They train small networks on sklearn's digits for real (through the Trainer and through the
serial executor), and check what exploit relies on: each member's own initialization,
hyperparameters written into every param group, and states that survive npz without pickle.
``TestTorchContract`` runs the ModelWrapper contract every wrapper passes. The file skips
itself where PyTorch is not installed (conftest runs torch on one thread).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pybt import PyBTError, Trainer
from pybt.errors import MissingDependencyError
from pybt.executor.serial import SerialExecutor
from pybt.model import ModelWrapper, TorchModelWrapper
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.space import Choice, Domain, IntUniform, LogUniform, Uniform
from tests.model.contract import ModelWrapperContract

# A NumPy-only environment skips the file here (importing pybt.model above needs no torch).
torch = pytest.importorskip("torch")
load_digits = pytest.importorskip("sklearn.datasets").load_digits
nn = torch.nn
DataLoader, TensorDataset = torch.utils.data.DataLoader, torch.utils.data.TensorDataset


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = (x[order] / 16.0), y[order]  # float64 on purpose: the wrapper casts to the module's dtype
    return x[:1300], y[:1300], x[1300:], y[1300:]


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def accuracy(module: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        predicted = module(torch.as_tensor(x, dtype=torch.float32)).argmax(dim=1).numpy()
    return float((predicted == y).mean())


class Recording(TorchModelWrapper):
    """Keeps the members it spawns (by seed), so a test can look at their optimizers."""

    members: dict[int, TorchModelWrapper]

    def spawn(self, seed: int) -> TorchModelWrapper:
        member = super().spawn(seed)
        self.members[seed] = member
        return member


def weights(module: nn.Module) -> list[torch.Tensor]:
    return [tensor.detach().clone() for tensor in module.state_dict().values()]


def same(first: list[torch.Tensor], second: list[torch.Tensor]) -> bool:
    return len(first) == len(second) and all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def run_digits(digits: Any, seed: int) -> tuple[Trainer, nn.Module, float]:
    x, y, x_val, y_val = digits
    trainer = Trainer(
        model=TorchModelWrapper(mlp(), torch.optim.Adam, nn.CrossEntropyLoss()),
        population_size=4,
        stopping_criteria=StopAfter(4),
        ready_strategy=ReadyAfter(2),
        step_args={"epochs_per_step": 2, "fit_args": {"x": x, "y": y}},
        eval_args={"x": x_val, "y": y_val},
        seed=seed,
        verbose=0,
    )
    model, score = trainer.train()
    return trainer, model, score


def without_seconds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]


# ---- the whole loop ---------------------------------------------------------------------------
def test_trainer_trains_an_mlp_on_digits_and_a_seeded_run_repeats_exactly(digits: Any) -> None:
    _, _, x_val, y_val = digits
    trainer, model, score = run_digits(digits, seed=0)
    assert isinstance(model, nn.Module) and not model.training, "unwrap gives the module in eval mode"
    assert trainer.metric == "accuracy" and trainer.mode == "max"
    measured = accuracy(model, x_val, y_val)
    assert measured > 0.85, measured
    assert measured == pytest.approx(score, abs=1e-9)
    assert {"loss", "accuracy", "train_loss"} <= set(trainer.history[0]["metrics"])
    assert trainer.exploits, "PBT copied at least one member"

    again, again_model, again_score = run_digits(digits, seed=0)
    assert without_seconds(again.history) == without_seconds(trainer.history)
    assert again.exploits == trainer.exploits and again_score == score
    assert same(weights(again_model), weights(model))


def test_hyperparameters_are_set_in_every_param_group_after_an_exploit(digits: Any) -> None:
    x, y, x_val, y_val = digits

    def two_groups(params: list[nn.Parameter]) -> torch.optim.Optimizer:
        groups = [{"params": params[:2]}, {"params": params[2:], "lr": 0.5, "momentum": 0.1}]
        return torch.optim.SGD(groups, lr=0.05, momentum=0.9)

    template = Recording(mlp(), two_groups, nn.CrossEntropyLoss())
    template.members = {}
    executor = SerialExecutor()
    executor.start(template, {"x": x[:512], "y": y[:512], "batch_size": 64}, {"x": x_val, "y": y_val})
    executor.place(0, 11)
    executor.place(1, 22)
    donor, member = template.members[11], template.members[22]
    executor.submit(0, {"lr": 0.05, "momentum": 0.9}, 1)
    executor.submit(1, {"lr": 0.02, "momentum": 0.3}, 1)
    assert all(result.error is None for result in executor.completed())
    assert [(g["lr"], g["momentum"]) for g in member.optimizer.param_groups] == [(0.02, 0.3)] * 2

    def buffers(wrapper: TorchModelWrapper) -> list[torch.Tensor]:
        return [wrapper.optimizer.state[p]["momentum_buffer"].clone() for p in wrapper.module.parameters()]

    assert not same(buffers(member), buffers(donor))
    executor.copy_states([(0, 1)])
    assert same(buffers(member), buffers(donor)), "exploit copies the optimizer's slots"
    assert same(weights(member.module), weights(donor.module))

    executor.submit(1, {"lr": 0.003, "momentum": 0.6}, 1)
    assert all(result.error is None for result in executor.completed())
    assert [(g["lr"], g["momentum"]) for g in member.optimizer.param_groups] == [(0.003, 0.6)] * 2
    assert [(g["lr"], g["momentum"]) for g in donor.optimizer.param_groups] == [(0.05, 0.9)] * 2


def test_fits_and_evaluates_from_data_loaders(digits: Any) -> None:
    x, y, x_val, y_val = digits
    loader = DataLoader(
        TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y)), 64, shuffle=True
    )
    val_loader = DataLoader(TensorDataset(torch.tensor(x_val, dtype=torch.float32), torch.tensor(y_val)), 128)
    wrapper = TorchModelWrapper(mlp(), torch.optim.Adam, nn.CrossEntropyLoss(), optimizer_kwargs={"lr": 3e-3})
    args = {"step_args": {"fit_args": {"loader": loader}}, "eval_args": {"loader": val_loader}}
    with pytest.raises(PyBTError, match="batch_size"):
        Trainer(model=wrapper, population_size=2, verbose=0, **args)  # the default space tunes it

    trainer = Trainer(
        model=wrapper,
        population_size=2,
        hyperparameters={"lr": LogUniform(1e-3, 1e-2)},
        stopping_criteria=StopAfter(4),
        ready_strategy=ReadyAfter(2),
        seed=3,
        verbose=0,
        **args,
    )
    model, score = trainer.train()
    assert score > 0.85 and accuracy(model, x_val, y_val) == pytest.approx(score, abs=1e-6)

    # The loader shuffles with torch's global RNG, which each fit seeds (and restores after).
    rng_before = torch.get_rng_state()
    first, second = wrapper.spawn(5), wrapper.spawn(5)
    for member in (first, second):
        member.fit({"lr": 3e-3}, 1, {"loader": loader})
    assert same(weights(first.module), weights(second.module))
    assert torch.equal(torch.get_rng_state(), rng_before), "the global RNG is left as it was"


def test_custom_train_step_and_eval_step(digits: Any) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(256, 3)).astype(np.float32)
    y = (x @ np.array([1.5, -2.0, 0.5], dtype=np.float32) + 0.1 * rng.normal(size=256)).astype(np.float32)
    seen: list[tuple[float, float, float]] = []
    eval_modes: list[tuple[bool, bool]] = []

    def train_step(module: nn.Module, optimizer: Any, batch: Any, hp: dict[str, Any]) -> dict[str, Any]:
        inputs, targets = batch
        optimizer.zero_grad()
        loss = ((module(inputs).squeeze(1) - targets) ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), hp["clip"])
        optimizer.step()
        seen.append((hp["clip"], optimizer.param_groups[0]["lr"], hp["lr"]))
        return {"mse": loss}

    def eval_step(module: nn.Module, eval_args: dict[str, Any]) -> dict[str, Any]:
        eval_modes.append((module.training, torch.is_grad_enabled()))
        predicted = module(torch.as_tensor(eval_args["x"])).squeeze(1)
        return {"mse": ((predicted - torch.as_tensor(eval_args["y"])) ** 2).mean()}

    wrapper = TorchModelWrapper(
        nn.Linear(3, 1),
        torch.optim.SGD,
        optimizer_kwargs={"lr": 0.01},
        train_step=train_step,
        eval_step=eval_step,
    )
    trainer = Trainer(
        model=wrapper,
        population_size=3,
        hyperparameters={"lr": LogUniform(1e-2, 3e-1), "clip": Uniform(0.5, 5.0)},
        stopping_criteria=StopAfter(6),
        ready_strategy=ReadyAfter(2),
        step_args={"epochs_per_step": 2, "fit_args": {"x": x, "y": y, "batch_size": 32}},
        eval_args={"x": x, "y": y},
        seed=1,
        verbose=0,
    )
    _, score = trainer.train()
    assert trainer.metric == "mse" and trainer.mode == "min"
    assert score < 0.05, score  # the noise's variance is 0.01
    assert "train_mse" in trainer.history[0]["metrics"]
    assert all(group_lr == hp_lr for _, group_lr, hp_lr in seen), "lr is set before the user's step"
    clips = {row["hyperparameters"]["clip"] for row in trainer.history}
    assert {clip for clip, _, _ in seen} == clips and len(clips) >= 3
    assert set(eval_modes) == {(False, False)}, "eval_step runs in eval mode without gradients"


# ---- hyperparameters ----------------------------------------------------------------------------
def test_tunable_hyperparameters_come_from_the_optimizer(digits: Any) -> None:
    x, y, x_val, y_val = digits
    wrapper = TorchModelWrapper(
        mlp(), torch.optim.Adam, nn.CrossEntropyLoss(), optimizer_kwargs={"lr": 0.002}
    )
    space = wrapper.default_space()
    assert isinstance(space["lr"], LogUniform) and (space["lr"].low, space["lr"].high) == (1e-5, 1e-1)
    assert isinstance(space["batch_size"], IntUniform) and space["batch_size"].log
    assert (space["batch_size"].low, space["batch_size"].high) == (8, 512)

    with pytest.raises(PyBTError, match=r"hyperparameters.*dropout.*'betas'.*'lr'"):
        wrapper.check_hyperparameters({"dropout": Uniform(0.0, 0.5)})

    tuned = {
        "lr": LogUniform(1e-4, 1e-2),
        "betas": Choice([(0.9, 0.999), (0.8, 0.99)]),
        "batch_size": Choice([16]),
    }
    wrapper.prepare(tuned, {"x": x, "y": y, "batch_size": 48}, {"x": x_val, "y": y_val})
    assert wrapper.given_hyperparameters(tuned) == {"lr": 0.002, "betas": (0.9, 0.999), "batch_size": 48}

    member = wrapper.spawn(0)
    member.fit({"lr": 0.001, "betas": (0.8, 0.99), "batch_size": 16}, 1, {"x": x[:64], "y": y[:64]})
    group = member.optimizer.param_groups[0]
    assert group["betas"] == (0.8, 0.99) and group["lr"] == 0.001
    with pytest.raises(PyBTError, match="dropout"):
        member.fit({"dropout": 0.1}, 1, {"x": x[:64], "y": y[:64]})


# ---- the ModelWrapper contract --------------------------------------------------------------------
# Module-level builders and data, so the template pickles with the standard pickle.
_CONTRACT_RNG = np.random.default_rng(7)
CONTRACT_X = _CONTRACT_RNG.normal(size=(48, 4)).astype(np.float32)
CONTRACT_Y = _CONTRACT_RNG.integers(0, 3, size=48)


def tiny_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


class TestTorchContract(ModelWrapperContract):
    def make_template(self) -> TorchModelWrapper:
        # Adam: optimizer slots and step counters for the state tests to carry.
        return TorchModelWrapper(
            tiny_mlp(), torch.optim.Adam, nn.CrossEntropyLoss(), optimizer_kwargs={"lr": 0.01}
        )

    def space(self) -> dict[str, Domain]:
        return {"lr": LogUniform(1e-3, 1e-1), "batch_size": IntUniform(8, 16)}

    def fit_args(self) -> dict[str, Any]:
        # In order: a member shuffles with its own seed, which a copy keeps through an exploit
        # (so copies explore apart), and "a copy trains on like its donor" holds for what the
        # state carries (weights, Adam's slots and step counts) only when nothing is drawn.
        return {"x": CONTRACT_X, "y": CONTRACT_Y, "shuffle": False}

    def eval_args(self) -> dict[str, Any]:
        return {"x": CONTRACT_X[:16], "y": CONTRACT_Y[:16]}


# ---- state ----------------------------------------------------------------------------------------
def test_state_round_trips_through_npz_without_pickle(digits: Any, tmp_path: Path) -> None:
    x, y, x_val, _ = digits
    net = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
    template = TorchModelWrapper(net, torch.optim.Adam, nn.CrossEntropyLoss())
    fit_args = {"x": x[:400], "y": y[:400], "batch_size": 50, "shuffle": False}
    trained, fresh = template.spawn(1), template.spawn(2)
    trained.fit({"lr": 0.01}, 2, fit_args)

    state = trained.get_state()
    assert any(key.startswith("optimizer/state/") and key.endswith("/exp_avg") for key in state)
    assert "module/1.running_mean" in state and "module/1.num_batches_tracked" in state
    np.savez(tmp_path / "state.npz", **state)
    with np.load(tmp_path / "state.npz", allow_pickle=False) as stored:
        loaded = {key: stored[key] for key in stored.files}
    fresh.set_state(loaded)  # a member that has not trained: its optimizer state is empty

    inputs = torch.as_tensor(x_val, dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(trained.unwrap()(inputs), fresh.unwrap()(inputs))
    saved, restored = trained.optimizer.state_dict()["state"], fresh.optimizer.state_dict()["state"]
    assert saved.keys() == restored.keys()
    for index in saved:
        assert saved[index].keys() == restored[index].keys()
        for key, value in saved[index].items():
            assert torch.equal(value, restored[index][key]), (index, key)

    # Same slots and step counts: one more identical epoch keeps them identical.
    for member in (trained, fresh):
        member.fit({"lr": 0.01}, 1, fit_args)
    assert same(weights(trained.module), weights(fresh.module))


def test_get_state_returns_copies(digits: Any) -> None:
    x, y, _, _ = digits
    member = TorchModelWrapper(
        mlp(), torch.optim.SGD, nn.CrossEntropyLoss(), optimizer_kwargs={"lr": 0.1}
    ).spawn(0)
    member.fit({}, 1, {"x": x[:128], "y": y[:128]})
    before = weights(member.module)
    state = member.get_state()
    snapshot = {key: value.copy() for key, value in state.items()}
    for value in state.values():
        value[...] = 0
    assert same(weights(member.module), before), "writing to the state leaves the module alone"
    state = member.get_state()
    member.fit({}, 1, {"x": x[:128], "y": y[:128]})
    assert not same(weights(member.module), before)
    assert all(np.array_equal(state[key], snapshot[key]) for key in snapshot), (
        "training leaves the state alone"
    )


class CountingSGD(torch.optim.SGD):
    """SGD that also keeps Python numbers and None in its state, like some optimizers do."""

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = super().step(closure)
        for group in self.param_groups:
            for param in group["params"]:
                state = self.state[param]
                state["count"] = state.get("count", 0) + 1
                state["scale"], state["flag"], state["nothing"] = 0.5 * state["count"], True, None
        return loss


def test_python_numbers_and_none_in_optimizer_state_round_trip(digits: Any, tmp_path: Path) -> None:
    x, y, _, _ = digits
    template = TorchModelWrapper(mlp(), CountingSGD, nn.CrossEntropyLoss(), optimizer_kwargs={"lr": 0.1})
    trained, fresh = template.spawn(0), template.spawn(1)
    trained.fit({}, 1, {"x": x[:96], "y": y[:96], "batch_size": 32})
    np.savez(tmp_path / "state.npz", **trained.get_state())
    with np.load(tmp_path / "state.npz", allow_pickle=False) as stored:
        fresh.set_state({key: stored[key] for key in stored.files})
    restored = next(iter(fresh.optimizer.state_dict()["state"].values()))
    assert restored["count"] == 3 and type(restored["count"]) is int
    assert restored["scale"] == 1.5 and type(restored["scale"]) is float
    assert restored["flag"] is True and restored["nothing"] is None


def test_bfloat16_weights_round_trip_bit_for_bit(tmp_path: Path) -> None:
    net = nn.Linear(4, 3).to(torch.bfloat16)
    template = TorchModelWrapper(net, torch.optim.SGD, nn.MSELoss(), optimizer_kwargs={"lr": 0.1})
    source, target = template.spawn(0), template.spawn(1)
    state = source.get_state()
    assert state["module/weight@bfloat16"].dtype == np.int16
    np.savez(tmp_path / "state.npz", **state)
    with np.load(tmp_path / "state.npz", allow_pickle=False) as stored:
        target.set_state({key: stored[key] for key in stored.files})
    assert target.module.weight.dtype == torch.bfloat16
    assert same(weights(target.module), weights(source.module))


def test_a_state_from_another_model_is_refused() -> None:
    small = TorchModelWrapper(nn.Linear(4, 3), torch.optim.SGD, nn.MSELoss(), optimizer_kwargs={"lr": 0.1})
    large = TorchModelWrapper(nn.Linear(5, 3), torch.optim.SGD, nn.MSELoss(), optimizer_kwargs={"lr": 0.1})
    with pytest.raises(PyBTError, match="same template"):
        small.spawn(0).set_state(large.spawn(0).get_state())
    with pytest.raises(PyBTError, match="state key"):
        small.spawn(0).set_state({"weights/0": np.zeros(3)})


# ---- members ---------------------------------------------------------------------------------
def test_members_get_their_own_initialization_unless_keep_weights() -> None:
    net = mlp()
    original = weights(net)
    template = TorchModelWrapper(net, torch.optim.SGD, nn.CrossEntropyLoss(), optimizer_kwargs={"lr": 0.1})
    rng_before = torch.get_rng_state()
    first, second, again = template.spawn(1), template.spawn(2), template.spawn(1)
    assert torch.equal(torch.get_rng_state(), rng_before), "spawning leaves the global RNG alone"
    assert not same(weights(first.module), weights(second.module))
    assert not same(weights(first.module), original)
    assert same(weights(first.module), weights(again.module)), "the same seed gives the same member"
    assert same(weights(net), original) and template.unwrap() is None, "the template is untouched"
    assert first.module is not second.module and first.optimizer is not second.optimizer
    assert {id(p) for g in first.optimizer.param_groups for p in g["params"]} == {
        id(p) for p in first.module.parameters()
    }

    keeping = TorchModelWrapper(
        net, torch.optim.SGD, nn.CrossEntropyLoss(), optimizer_kwargs={"lr": 0.1}, keep_weights=True
    )
    assert same(weights(keeping.spawn(1).module), original) and same(
        weights(keeping.spawn(2).module), original
    )


def test_parameters_no_reset_can_reach_are_named_in_a_warning() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(2, 2)
            self.scale = nn.Parameter(torch.ones(2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x) * self.scale

    with pytest.warns(UserWarning, match=r"\['scale'\]"):
        TorchModelWrapper(Scaled(), torch.optim.SGD, nn.MSELoss(), optimizer_kwargs={"lr": 0.1})


def test_without_torch_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # what an environment without torch looks like
    with pytest.raises(MissingDependencyError, match=re.escape("pip install 'pybt[torch]'")):
        TorchModelWrapper(object(), object())


def test_a_template_cannot_train() -> None:
    template = TorchModelWrapper(nn.Linear(2, 2), torch.optim.SGD, nn.MSELoss(), optimizer_kwargs={"lr": 0.1})
    with pytest.raises(PyBTError, match="spawn"):
        template.fit({}, 1, {"x": np.zeros((4, 2)), "y": np.zeros((4, 2))})


def test_device_argument_places_members() -> None:
    template = TorchModelWrapper(
        nn.Linear(2, 2), torch.optim.SGD, nn.MSELoss(), optimizer_kwargs={"lr": 0.1}, device="cpu"
    )
    member = template.spawn(0)
    member.fit({}, 1, {"x": torch.zeros(4, 2, dtype=torch.float64), "y": np.zeros((4, 2))})
    assert member.module.weight.device == torch.device("cpu") and member.module.weight.dtype == torch.float32


def test_the_template_pickles_with_cloudpickle_and_its_members_train(digits: Any) -> None:
    cloudpickle = pytest.importorskip("ray.cloudpickle")

    x, y, x_val, y_val = digits
    template = TorchModelWrapper(
        mlp(),
        lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
        nn.CrossEntropyLoss(),
        metrics={
            "top3": lambda outputs, targets: (
                (outputs.topk(3).indices == targets[:, None]).any(1).float().mean()
            )
        },
    )
    clone = cloudpickle.loads(cloudpickle.dumps(template))
    assert isinstance(clone, ModelWrapper)
    member = clone.spawn(7)
    before = member.evaluate({"x": x_val, "y": y_val})
    member.fit({"lr": 0.05, "batch_size": 32}, 2, {"x": x, "y": y})
    after = member.evaluate({"x": x_val, "y": y_val})
    assert set(after) == {"loss", "accuracy", "top3"}
    assert after["accuracy"] > before["accuracy"] + 0.3 and after["top3"] >= after["accuracy"]
    assert same(weights(clone.spawn(7).module), weights(template.spawn(7).module))


def test_a_trained_member_pickles_with_its_optimizer(digits: Any) -> None:
    import pickle

    x, y, x_val, y_val = digits
    member = TorchModelWrapper(mlp(), torch.optim.Adam, nn.CrossEntropyLoss()).spawn(3)
    member.fit({"lr": 0.01}, 1, {"x": x[:256], "y": y[:256]})
    moved = pickle.loads(pickle.dumps(member))
    assert moved.evaluate({"x": x_val, "y": y_val}) == member.evaluate({"x": x_val, "y": y_val})
    # The copy's optimizer steps the copy's own parameters, from the same slots and seed.
    for wrapper in (member, moved):
        wrapper.fit({"lr": 0.01}, 1, {"x": x[:256], "y": y[:256]})
    assert same(weights(moved.module), weights(member.module))


# ---- bad input -------------------------------------------------------------------------------------
def _net() -> nn.Module:
    return nn.Linear(3, 2)


def _ce() -> nn.Module:
    return nn.CrossEntropyLoss()


_OTHER = nn.Linear(3, 2)

BAD_CONSTRUCTIONS: list[tuple[str, Callable[[], Any]]] = [
    ("TorchModelWrapper(module)", lambda: TorchModelWrapper("net", torch.optim.SGD, _ce())),
    ("TorchModelWrapper(optimizer)", lambda: TorchModelWrapper(_net(), "sgd", _ce())),
    (
        "TorchModelWrapper(optimizer)",
        lambda: TorchModelWrapper(_net(), torch.optim.SGD(_OTHER.parameters(), lr=0.1), _ce()),
    ),
    (
        "TorchModelWrapper(optimizer, optimizer_kwargs)",
        lambda: TorchModelWrapper(_net(), torch.optim.SGD, _ce(), optimizer_kwargs={"lr": -1.0}),
    ),
    (
        "TorchModelWrapper(optimizer, optimizer_kwargs)",
        lambda: TorchModelWrapper(_net(), torch.optim.SGD, _ce(), optimizer_kwargs={"speed": 3}),
    ),
    (
        "TorchModelWrapper(optimizer_kwargs)",
        lambda: TorchModelWrapper(_net(), torch.optim.SGD, _ce(), optimizer_kwargs=[1]),
    ),
    ("TorchModelWrapper(optimizer)", lambda: TorchModelWrapper(_net(), lambda params: 3, _ce())),
    (
        "TorchModelWrapper(optimizer)",
        lambda: TorchModelWrapper(_net(), lambda params: torch.optim.SGD(_OTHER.parameters(), lr=0.1), _ce()),
    ),
    ("TorchModelWrapper(loss)", lambda: TorchModelWrapper(_net(), torch.optim.SGD)),
    ("TorchModelWrapper(loss)", lambda: TorchModelWrapper(_net(), torch.optim.SGD, nn.CrossEntropyLoss)),
    ("TorchModelWrapper(loss)", lambda: TorchModelWrapper(_net(), torch.optim.SGD, "cross_entropy")),
    ("TorchModelWrapper(loss)", lambda: TorchModelWrapper(_net(), torch.optim.SGD, train_step=lambda *a: {})),
    (
        "TorchModelWrapper(metrics)",
        lambda: TorchModelWrapper(_net(), torch.optim.SGD, _ce(), metrics={"acc": 3}),
    ),
    (
        "TorchModelWrapper(metrics)",
        lambda: TorchModelWrapper(_net(), torch.optim.SGD, _ce(), metrics=[lambda o, t: 0]),
    ),
    (
        "TorchModelWrapper(metrics)",
        lambda: TorchModelWrapper(_net(), torch.optim.SGD, _ce(), metrics={"loss": len}),
    ),
    (
        "TorchModelWrapper(train_step)",
        lambda: TorchModelWrapper(_net(), torch.optim.SGD, _ce(), train_step=5),
    ),
    (
        "TorchModelWrapper(device)",
        lambda: TorchModelWrapper(_net(), torch.optim.SGD, _ce(), device="warp-drive"),
    ),
    (
        "TorchModelWrapper(keep_weights)",
        lambda: TorchModelWrapper(_net(), torch.optim.SGD, _ce(), keep_weights="yes"),
    ),
]


@pytest.mark.parametrize(("argument", "build"), BAD_CONSTRUCTIONS)
def test_bad_construction_raises_an_error_naming_the_argument(
    argument: str, build: Callable[[], Any]
) -> None:
    with pytest.raises(PyBTError, match=re.escape(argument)):
        build()


X, Y = np.zeros((8, 3)), np.zeros(8, dtype=np.int64)
BAD_ARGS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("step_args['fit_args']", {"x": X}, {"x": X, "y": Y}),
    ("step_args['fit_args']", {"x": X, "y": Y[:5]}, {"x": X, "y": Y}),
    ("step_args['fit_args']", {"x": X, "y": Y, "epochs": 3}, {"x": X, "y": Y}),
    ("step_args['fit_args']", {"x": X, "y": Y, "batch_size": 0}, {"x": X, "y": Y}),
    ("step_args['fit_args']['loader']", {"loader": iter([(X, Y)])}, {"x": X, "y": Y}),
    ("step_args['fit_args']", {"loader": [(X, Y)], "batch_size": 4}, {"x": X, "y": Y}),
    ("eval_args", {"x": X, "y": Y}, {}),
]


@pytest.mark.parametrize(("argument", "fit_args", "eval_args"), BAD_ARGS)
def test_bad_data_arguments_raise_an_error_naming_them(argument: str, fit_args: Any, eval_args: Any) -> None:
    wrapper = TorchModelWrapper(_net(), torch.optim.SGD, _ce(), optimizer_kwargs={"lr": 0.1})
    with pytest.raises(PyBTError, match=re.escape(argument)):
        Trainer(
            model=wrapper,
            population_size=2,
            hyperparameters={"lr": LogUniform(1e-3, 1e-1)},
            step_args={"fit_args": fit_args},
            eval_args=eval_args,
            verbose=0,
        )


def test_prepare_keeps_the_batch_size_fit_args_give_and_the_checks_keep_nothing() -> None:
    wrapper = TorchModelWrapper(_net(), torch.optim.SGD, _ce(), optimizer_kwargs={"lr": 0.1})
    space = {"lr": LogUniform(1e-3, 1e-1), "batch_size": IntUniform(2, 8)}
    assert wrapper.given_hyperparameters(space) == {"lr": 0.1, "batch_size": 32}, "the default before prepare"
    wrapper.check_args({"x": X, "y": Y, "batch_size": 2}, {"x": X, "y": Y})
    assert wrapper.given_hyperparameters(space)["batch_size"] == 32, "check_args keeps nothing"
    wrapper.prepare(space, {"x": X, "y": Y, "batch_size": 4}, {"x": X, "y": Y})
    assert wrapper.given_hyperparameters(space) == {"lr": 0.1, "batch_size": 4}


def test_prepare_refuses_to_tune_the_batch_size_of_a_loader() -> None:
    wrapper = TorchModelWrapper(_net(), torch.optim.SGD, _ce(), optimizer_kwargs={"lr": 0.1})
    space, fit_args, eval_args = {"batch_size": IntUniform(2, 8)}, {"loader": [(X, Y)]}, {"x": X, "y": Y}
    wrapper.check_hyperparameters(space)  # each is fine alone: only together do they clash
    wrapper.check_args(fit_args, eval_args)
    with pytest.raises(PyBTError, match="the loader makes its own batches"):
        wrapper.prepare(space, fit_args, eval_args)
    wrapper.prepare({"lr": LogUniform(1e-3, 1e-1)}, fit_args, eval_args)


def test_importing_the_package_leaves_torch_unloaded() -> None:
    code = (
        "import sys; import pybt.model.torch; from pybt.model import TorchModelWrapper; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
