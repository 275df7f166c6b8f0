"""VectorizedExecutor(compile=True): the compiled stacked update gives the in-process weights.

Kept to one group size (the update is compiled once per population shape), so the file costs
one compilation per optimizer kind, a few seconds each.
"""

from __future__ import annotations

import pytest

from pybt.executor.serial import SerialExecutor
from tests.executor.test_vectorized import assert_states_close, data, run, wrapper  # noqa: F401  (fixture)

torch = pytest.importorskip("torch")

from pybt.executor.vectorized import VectorizedExecutor  # noqa: E402  (after the skip: needs torch)


@pytest.mark.parametrize(
    "optimizer, settings",
    [
        (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
        (torch.optim.AdamW, {"lr": 0.01, "amsgrad": True}),
    ],
    ids=["sgd-nesterov", "adamw-amsgrad"],
)
def test_compiled_updates_match_the_in_process_executor(optimizer, settings, data) -> None:  # noqa: F811
    rounds = [[(m, {"lr": settings["lr"] * (1 + m)}, 2) for m in range(2)], [(0, 1)], [(1, {"lr": 0.05}, 1)]]
    expected, _ = run(SerialExecutor(), wrapper(optimizer=optimizer, **settings), data, rounds, members=2)
    got, results = run(
        VectorizedExecutor(compile=True), wrapper(optimizer=optimizer, **settings), data, rounds, members=2
    )
    assert all(result.error is None for result in results)
    for state, wanted in zip(got, expected, strict=True):
        assert_states_close(state, wanted)
