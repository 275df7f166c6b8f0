"""Tests for pybt.executor.vectorized.VectorizedExecutor: the Executor contract with PyTorch members,
and the same results as the in-process executor.

The contract tests of ``tests/executor/contract.py`` train FunctionModel members, which a
stacked PyTorch population cannot run; ``TestVectorizedContract`` checks the same promises with
a tiny TorchModelWrapper template, taking the in-process executor's results as the expected
ones. The other tests compare weights after training with the in-process executor's (several
optimizers, mixed batch sizes, exploit, BatchNorm, a CNN on the generic vmap path), resume a
run folder across the two executors, and check what is refused up front.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from pybt import PyBTError
from pybt.executor.base import Executor, StepResult
from pybt.executor.serial import SerialExecutor
from pybt.model import FunctionModel, TorchModelWrapper
from tests.executor.contract import drain

torch = pytest.importorskip("torch")
load_digits = pytest.importorskip("sklearn.datasets").load_digits
nn = torch.nn

from pybt.executor.vectorized import VectorizedExecutor  # noqa: E402  (after the skip: needs torch)

Data = tuple[dict[str, Any], dict[str, Any]]


@pytest.fixture(scope="module")
def data() -> Data:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return {"x": x[:240], "y": y[:240]}, {"x": x[240:360], "y": y[240:360]}


def mlp(hidden: int = 16) -> nn.Module:
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def wrapper(module: nn.Module | None = None, optimizer: Any = None, **kwargs: Any) -> TorchModelWrapper:
    return TorchModelWrapper(
        module if module is not None else mlp(),
        optimizer or torch.optim.SGD,
        kwargs.pop("loss", nn.CrossEntropyLoss()),
        optimizer_kwargs=kwargs or {"lr": 0.1},
    )


Round = Sequence[tuple[int, Mapping[str, Any], int]]


def run(
    executor: Executor,
    template: TorchModelWrapper,
    data: Data,
    rounds: Sequence[Round | list[tuple[int, int]]],
    members: int = 3,
) -> tuple[list[dict[str, np.ndarray]], list[StepResult]]:
    """Place ``members``, then run each round (steps to submit, or ``(donor, member)`` copies)."""
    results: list[StepResult] = []
    with executor:
        executor.start(template, *data)
        for member in range(members):
            executor.place(member, seed=100 + member)
        for steps in rounds:
            if steps and len(steps[0]) == 2:
                executor.copy_states(steps)  # type: ignore[arg-type]
                continue
            for member, hp, epochs in steps:  # type: ignore[misc]
                executor.submit(member, hp, epochs)
            results += sorted(drain(executor), key=lambda result: result.member)
        return [executor.get_state(member) for member in range(members)], results


def assert_states_close(
    got: dict[str, np.ndarray], expected: dict[str, np.ndarray], atol: float = 1e-5
) -> None:
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        np.testing.assert_allclose(got[key], value, atol=atol, rtol=1e-5, err_msg=key)


def assert_same_as_in_process(
    template: Callable[[], TorchModelWrapper], data: Data, rounds: Any, **kw: Any
) -> None:
    expected_states, expected = run(SerialExecutor(), template(), data, rounds, **kw)
    states, results = run(VectorizedExecutor(), template(), data, rounds, **kw)
    for got, want in zip(states, expected_states, strict=True):
        assert_states_close(got, want)
    assert [(r.member, r.epochs, r.error) for r in results] == [
        (r.member, r.epochs, r.error) for r in expected
    ]
    for got_result, want in zip(results, expected, strict=True):
        for metrics, wanted in (
            (got_result.train_metrics, want.train_metrics),
            (got_result.eval_metrics, want.eval_metrics),
        ):
            assert metrics.keys() == wanted.keys()
            np.testing.assert_allclose(list(metrics.values()), list(wanted.values()), rtol=1e-4, atol=1e-6)


# ---- the executor contract, with PyTorch members -------------------------------------------------
class TestVectorizedContract:
    """The promises of ``tests/executor/contract.py::ExecutorContract``, for stacked members."""

    @pytest.fixture
    def executor(self, data: Data) -> Iterator[VectorizedExecutor]:
        executor = VectorizedExecutor()
        executor.start(wrapper(), *data)
        yield executor
        executor.close()

    def test_each_submitted_step_completes_once_with_its_results(self, data: Data) -> None:
        rounds = [[(0, {"lr": 0.1}, 2), (1, {"lr": 0.2}, 2), (2, {"lr": 0.05}, 2)], [(0, {"lr": 0.1}, 1)]]
        assert_same_as_in_process(wrapper, data, rounds)  # a member goes on from where its step ended

    def test_steps_come_back_in_submission_order(self, executor: VectorizedExecutor) -> None:
        for member in range(4):
            executor.place(member, seed=member)
        for member in (2, 0, 3, 1):
            executor.submit(member, {"lr": 0.1, "batch_size": 16 * (1 + member % 2)}, 1)
        assert executor.pending == 4
        assert [result.member for result in drain(executor)] == [2, 0, 3, 1]

    def test_a_failing_step_is_a_failed_result_not_an_exception(self, data: Data) -> None:
        rounds = [[(0, {"lr": 0.1, "bogus": 1.0}, 1), (1, {"lr": 1e30}, 1), (2, {"lr": 0.1}, 1)]]
        _, results = run(VectorizedExecutor(), wrapper(), data, rounds)
        _, expected = run(SerialExecutor(), wrapper(), data, rounds)
        assert [result.error for result in results] == [result.error for result in expected]
        assert results[0].error and "bogus" in results[0].error and results[0].eval_metrics == {}
        # A diverged member is not an error here, as in process: its NaN score is the trainer's to judge.
        assert np.isnan(results[1].train_metrics["loss"]) and np.isnan(expected[1].train_metrics["loss"])
        assert results[1].error is None and results[2].error is None

    def test_copy_states_reads_every_donor_before_overwriting(self, data: Data) -> None:
        rounds = [[(0, {"lr": 0.1}, 1), (1, {"lr": 0.3}, 2)], [(0, 1), (1, 0)], [(0, {"lr": 0.0}, 1)]]
        assert_same_as_in_process(wrapper, data, rounds, members=2)

    def test_a_member_never_stepped_hands_on_its_seed_state(self, executor: VectorizedExecutor) -> None:
        template = wrapper()
        for member in (0, 1):
            executor.place(member, seed=20 + member)
        assert_states_close(executor.get_state(1), template.spawn(21).get_state(), atol=0)
        executor.copy_states([(1, 0)])
        assert_states_close(executor.get_state(0), template.spawn(21).get_state(), atol=0)

    def test_get_state_and_set_state_round_trip(self, executor: VectorizedExecutor) -> None:
        for member in (0, 1):
            executor.place(member, seed=member)
        executor.submit(0, {"lr": 0.2}, 2)
        drain(executor)
        state = executor.get_state(0)
        assert all(isinstance(value, np.ndarray) for value in state.values())
        executor.set_state(1, state)
        assert_states_close(executor.get_state(1), state, atol=0)
        state["module/0.weight"][:] = 0.0  # the executor keeps its own copy
        assert executor.get_state(1)["module/0.weight"].any()
        executor.submit(1, {"lr": 0.2}, 1)
        [result] = drain(executor)
        assert result.error is None and int(executor.get_state(1)["pybt/fits"]) == 2

    def test_model_is_the_unwrapped_member_in_this_process(self, executor: VectorizedExecutor) -> None:
        for member in (0, 1):
            executor.place(member, seed=member)
        executor.submit(0, {"lr": 0.3}, 2)
        drain(executor)
        model = executor.model(0)
        assert isinstance(model, nn.Sequential) and not model.training
        np.testing.assert_array_equal(
            model[0].weight.detach().numpy(), executor.get_state(0)["module/0.weight"]
        )
        with torch.no_grad():
            model[0].weight.zero_()  # the model is a copy of the member's own
        assert executor.get_state(0)["module/0.weight"].any()

    def test_a_second_start_begins_a_new_run(self, executor: VectorizedExecutor, data: Data) -> None:
        for member in (0, 1, 2):
            executor.place(member, seed=member)
            executor.submit(member, {"lr": 0.1}, 1)
        drain(executor)
        executor.submit(0, {"lr": 0.1}, 1)  # left pending, as by an interrupted run
        executor.start(wrapper(mlp(hidden=8)), *data)
        assert executor.pending == 0
        for member in (0, 1):
            executor.place(member, seed=member)
        assert executor.get_state(1)["module/0.weight"].shape == (8, 64)
        executor.submit(1, {"lr": 0.1}, 2)
        assert [result.member for result in drain(executor)] == [1]

    def test_a_round_interrupted_midway_is_put_back_and_runs_again_whole(self, data: Data) -> None:
        calls = {"left": -1}  # forward calls until a Ctrl-C; -1: never

        def interrupt(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            calls["left"] -= 1
            if calls["left"] == 0:
                raise KeyboardInterrupt

        net = mlp()
        net.register_forward_hook(interrupt)

        def submitted() -> VectorizedExecutor:
            executor = VectorizedExecutor()
            executor.start(wrapper(net), *data)
            for member in (0, 1):
                executor.place(member, seed=member)
                executor.submit(member, {"lr": 0.1}, 2)
            return executor

        uninterrupted = submitted()
        drain(uninterrupted)
        executor = submitted()
        before = [executor.get_state(member) for member in (0, 1)]
        calls["left"] = 12  # in the first epoch
        with pytest.raises(KeyboardInterrupt):
            list(executor.completed())
        assert executor.pending == 2
        for member in (0, 1):
            assert_states_close(executor.get_state(member), before[member], atol=0)
        assert [result.error for result in drain(executor)] == [None, None]
        for member in (0, 1):  # ends as if never interrupted
            assert_states_close(executor.get_state(member), uninterrupted.get_state(member), atol=0)

    def test_a_context_manager_closed_on_exit_and_twice_is_fine(self, data: Data) -> None:
        executor = VectorizedExecutor()
        with executor as entered:
            assert entered is executor
            executor.start(wrapper(), *data)
            executor.place(0, seed=0)
            executor.submit(0, {"lr": 0.1}, 1)
            [result] = drain(executor)
            assert result.error is None
        executor.close()
        executor.shutdown()


# ---- the same weights as the in-process executor -------------------------------------------------
OPTIMIZERS = {
    "sgd-nesterov": (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    "adam": (torch.optim.Adam, {"lr": 0.01, "weight_decay": 1e-4}),
    "adamw-amsgrad": (torch.optim.AdamW, {"lr": 0.01, "amsgrad": True}),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_weights_match_the_in_process_executor(name: str, data: Data) -> None:
    optimizer, settings = OPTIMIZERS[name]
    lr = settings["lr"]
    sizes = [{"batch_size": 16}, {"batch_size": 32}, {"batch_size": 16}]  # two groups
    first = [(m, {"lr": lr * (1 + m), **sizes[m]}, 2) for m in range(3)]
    later = [(m, {"lr": lr / (1 + m), **sizes[2 - m]}, 1) for m in range(3)]
    rounds = [first, [(0, 2)], later]  # an exploit between rounds
    assert_same_as_in_process(lambda: wrapper(optimizer=optimizer, **settings), data, rounds)


def test_sgd_momentum_that_starts_later_starts_its_buffer_as_torch_does(data: Data) -> None:
    rounds = [
        [(0, {"lr": 0.1, "momentum": 0.0}, 1), (1, {"lr": 0.1, "momentum": 0.9}, 1)],
        [(0, {"lr": 0.1, "momentum": 0.5}, 1), (1, {"lr": 0.1, "momentum": 0.0}, 1)],
    ]
    assert_same_as_in_process(lambda: wrapper(lr=0.1, momentum=0.9), data, rounds, members=2)


def test_batchnorm_keeps_running_statistics_per_member(data: Data) -> None:
    # No bias before BatchNorm: its gradient is zero up to rounding, which Adam would amplify.
    def template() -> TorchModelWrapper:
        net = nn.Sequential(nn.Linear(64, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
        return wrapper(net, torch.optim.Adam, lr=0.01)

    rounds = [[(m, {"lr": 0.01, "batch_size": 16 * (1 + m)}, 2) for m in range(3)], [(1, 0)]]
    assert_same_as_in_process(template, data, rounds)


class Hooked(nn.Module):
    """A CNN with a forward hook and a loss function: the generic vmap path, not the fast one."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.head = nn.Linear(4 * 6 * 6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x.view(-1, 1, 8, 8))).flatten(1))


def test_a_cnn_on_the_generic_path_matches(data: Data) -> None:
    def template() -> TorchModelWrapper:
        net = Hooked()
        net.head.register_forward_hook(lambda module, inputs, output: output * 1.0)
        loss = lambda outputs, targets: nn.functional.cross_entropy(outputs, targets)  # noqa: E731
        return wrapper(net, torch.optim.Adam, lr=0.01, loss=loss)

    rounds = [[(m, {"lr": 0.01 * (1 + m)}, 1) for m in range(2)]]
    assert_same_as_in_process(template, data, rounds, members=2)


def test_the_fast_paths_are_used_for_a_plain_mlp_and_match(data: Data) -> None:
    executor = VectorizedExecutor()
    executor.start(wrapper(), *data)
    assert executor._engine._mlp is not None and executor._engine._batched_loss is not None
    executor.close()
    label_smoothing = lambda: wrapper(loss=nn.CrossEntropyLoss(label_smoothing=0.1))  # noqa: E731
    assert_same_as_in_process(label_smoothing, data, [[(m, {"lr": 0.1}, 1) for m in range(2)]], members=2)


def test_eval_step_metrics_and_unshuffled_data_match(data: Data) -> None:
    fit, evaluation = data
    unshuffled = ({**fit, "shuffle": False, "batch_size": 24}, evaluation)

    def top2(outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return float((outputs.topk(2, dim=1).indices == targets[:, None]).any(dim=1).float().mean())

    def eval_step(module: nn.Module, eval_args: dict[str, Any]) -> dict[str, float]:
        return {"mean_logit": float(module(torch.as_tensor(eval_args["x"])).mean())}

    def with_metrics() -> TorchModelWrapper:
        return TorchModelWrapper(mlp(), torch.optim.SGD, nn.CrossEntropyLoss(), metrics={"top2": top2})

    def with_eval_step() -> TorchModelWrapper:
        return TorchModelWrapper(mlp(), torch.optim.SGD, nn.CrossEntropyLoss(), eval_step=eval_step)

    rounds = [[(m, {"lr": 0.1 * (1 + m)}, 1) for m in range(2)]]  # lr 0.1 and 0.2 (SGD's default: 0.001)
    assert_same_as_in_process(with_metrics, unshuffled, rounds, members=2)
    assert_same_as_in_process(with_eval_step, unshuffled, rounds, members=2)


def test_dropout_trains_and_repeats_with_the_same_seeds(data: Data) -> None:
    """Dropout masks come from one seeded generator for the stack, not each member's own, so a
    member's weights differ from its in-process run; a vectorized run still repeats exactly."""
    net = lambda: nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 10))  # noqa: E731
    rounds = [[(m, {"lr": 0.1}, 2) for m in range(2)]]
    first, results = run(VectorizedExecutor(), wrapper(net()), data, rounds, members=2)
    second, _ = run(VectorizedExecutor(), wrapper(net()), data, rounds, members=2)
    assert all(result.error is None for result in results)
    for a, b in zip(first, second, strict=True):
        assert_states_close(a, b, atol=0)


# ---- what is refused up front --------------------------------------------------------------------
class Branching(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        return out if out.sum() > 0 else -out  # data-dependent control flow: vmap cannot


REFUSED: dict[str, tuple[Callable[[], Any], str]] = {
    "not torch": (lambda: FunctionModel(lambda seed: {}, lambda s, h: s, lambda s: 0.0), "TorchModelWrapper"),
    "train_step": (
        lambda: TorchModelWrapper(mlp(), torch.optim.SGD, nn.CrossEntropyLoss(), train_step=lambda *a: None),
        "train_step",
    ),
    "rmsprop": (lambda: wrapper(optimizer=torch.optim.RMSprop, lr=0.01), "RMSprop"),
    "param groups": (
        lambda: TorchModelWrapper(
            mlp(),
            lambda params: torch.optim.SGD(
                [{"params": params[:2]}, {"params": params[2:], "lr": 0.5}], lr=0.1
            ),
            nn.CrossEntropyLoss(),
        ),
        "param groups",
    ),
    "control flow": (lambda: wrapper(Branching()), "functional_call"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refuses_what_it_cannot_stack_and_names_the_fix(case: str, data: Data) -> None:
    make, named = REFUSED[case]
    with pytest.raises(PyBTError, match=named) as raised:
        VectorizedExecutor().start(make(), *data)
    assert "executor=None" in str(raised.value) or "in-process" in str(raised.value)


def test_refuses_a_training_loader(data: Data) -> None:
    fit, evaluation = data
    dataset = torch.utils.data.TensorDataset(torch.as_tensor(fit["x"]), torch.as_tensor(fit["y"]))
    with pytest.raises(PyBTError, match="loader"):
        VectorizedExecutor().start(wrapper(), {"loader": torch.utils.data.DataLoader(dataset)}, evaluation)


def test_refuses_a_population_that_will_not_fit_with_the_numbers(data: Data, monkeypatch: Any) -> None:
    from pybt.executor.vectorized import checks

    executor = VectorizedExecutor()
    executor.start(wrapper(), *data)
    monkeypatch.setattr(checks, "available_bytes", lambda torch, device: 100_000)
    with pytest.raises(PyBTError, match=r"bytes of weights.*GiB are free") as raised:
        for member in range(20):
            executor.place(member, seed=member)
    assert "population_size" in str(raised.value)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(PyBTError, match="VectorizedExecutor\\(device\\)"):
        VectorizedExecutor(device="toaster")
    with pytest.raises(PyBTError, match="VectorizedExecutor\\(compile\\)"):
        VectorizedExecutor(compile="yes")  # type: ignore[arg-type]
