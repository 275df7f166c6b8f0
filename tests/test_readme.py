"""The README's code examples run as written (on a small slice of the digits, for speed)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    """Every ```python block of the README, dedented."""
    blocks = re.findall(r"^( *)```python\n(.*?)^\1```", README.read_text(), flags=re.S | re.M)
    return ["\n".join(line[len(indent) :] for line in body.splitlines()) for indent, body in blocks]


def runnable(marker: str) -> str:
    """The one block that contains ``marker`` (blocks with ``...`` placeholders are fragments)."""
    matches = [block for block in python_blocks() if marker in block]
    assert len(matches) == 1, f"expected one README block with {marker!r}, found {len(matches)}"
    return matches[0]


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    x, y = (digits.data / 16).astype("float32"), digits.target
    return {"x_train": x[:300], "y_train": y[:300], "x_val": x[300:400], "y_val": y[300:400]}


def test_the_keras_example_returns_a_keras_model(data: dict[str, np.ndarray]) -> None:
    keras = pytest.importorskip("keras")

    namespace = dict(data)
    exec(runnable("wrapped_model = KerasModelWrapper("), namespace)
    assert isinstance(namespace["best_model"], keras.Model)
    assert 0.5 < namespace["score"] <= 1.0
    assert namespace["best_model"].predict(data["x_val"], verbose=0).shape == (100, 10)


def test_the_pytorch_example_returns_a_module(data: dict[str, np.ndarray]) -> None:
    nn = pytest.importorskip("torch.nn")

    namespace = {"Trainer": __import__("pybt").Trainer, **data}
    exec("from pybt import LogUniform, Uniform\n" + runnable("TorchModelWrapper("), namespace)
    assert isinstance(namespace["best_net"], nn.Module)
    assert 0.5 < namespace["accuracy"] <= 1.0


def test_the_function_example_solves_the_toy_problem() -> None:
    namespace: dict = {}
    exec(
        "from pybt.policy.done import StopAfter\nfrom pybt.policy.ready import ReadyAfter\n"
        + runnable("FunctionModel(init, step, evaluate)"),
        namespace,
    )
    assert namespace["q"] > 1.19  # grid search would end at 0.39


def test_the_custom_exploit_strategy_works_in_a_run() -> None:
    import pybt
    from pybt.model import FunctionModel

    namespace: dict = {}
    exec(runnable("class CopyTheBest"), namespace)
    trainer = pybt.Trainer(
        FunctionModel(lambda seed: 0.0, lambda s, h: s + h["x"], lambda s: s),
        population_size=4,
        hyperparameters={"x": pybt.Uniform(0, 1)},
        exploit_strategy=namespace["CopyTheBest"](),
        seed=0,
        verbose=0,
    )
    trainer.train()
    assert trainer.exploits and all(event["member"] != event["donor"] for event in trainer.exploits)
