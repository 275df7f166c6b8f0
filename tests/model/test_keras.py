"""Tests for pybt.model.KerasModelWrapper on the torch backend (set by conftest).

Tiny networks on a slice of scikit-learn's bundled digits keep each test to a few seconds.
``TestKerasContract`` runs the ModelWrapper contract every wrapper passes; other tests check
what is Keras's own: the optimizer's settings as hyperparameters, members built from Keras
configs (in this process and after pickling), and models without an Input layer. The file
skips itself where Keras is not installed.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pytest

from pybt import PyBTError, Trainer
from pybt.executor import SerialExecutor
from pybt.model import KerasModelWrapper
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.space import Domain, IntUniform, LogUniform, Uniform
from tests.model.contract import ModelWrapperContract

# A NumPy-only environment skips the file here (importing pybt.model above needs no Keras).
keras = pytest.importorskip("keras")
load_digits = pytest.importorskip("sklearn.datasets").load_digits

LOSS = "sparse_categorical_crossentropy"


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = load_digits()
    x, y = (data.data / 16.0).astype("float32"), data.target.astype("int64")
    return x[:160], y[:160], x[160:240], y[160:240]


def tiny_model() -> Any:
    return keras.Sequential(
        [
            keras.Input(shape=(64,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def wrap(model: Any = None, **kwargs: Any) -> KerasModelWrapper:
    compile_args: dict[str, Any] = {
        "optimizer": keras.optimizers.Adam(learning_rate=1e-2),
        "loss": LOSS,
        "metrics": ["accuracy"],
    }
    compile_args.update(kwargs)
    return KerasModelWrapper(model if model is not None else tiny_model(), **compile_args)


def short_trainer(wrapper: KerasModelWrapper, digits: Any, **overrides: Any) -> Trainer:
    x_train, y_train, x_val, y_val = digits
    arguments: dict[str, Any] = {
        "model": wrapper,
        "population_size": 2,
        "stopping_criteria": StopAfter(1),
        "ready_strategy": ReadyAfter(1),
        "step_args": {"epochs_per_step": 1, "fit_args": {"x": x_train, "y": y_train}},
        "eval_args": {"x": x_val, "y": y_val},
        "seed": 0,
        "verbose": 0,
    }
    arguments.update(overrides)
    return Trainer(**arguments)


def test_train_returns_the_best_keras_model(digits: Any) -> None:
    trainer = short_trainer(wrap(), digits, stopping_criteria=StopAfter(2))
    best, score = trainer.train()
    assert isinstance(best, keras.Model)
    predictions = best.predict(digits[2], verbose=0)
    assert predictions.shape == (80, 10)
    assert np.mean(predictions.argmax(axis=1) == digits[3]) == pytest.approx(score, abs=1e-6)
    # The default metric is the first compiled one, maximized.
    assert (trainer.metric, trainer.mode) == ("accuracy", "max")
    assert set(trainer.history[0]["metrics"]) == {"accuracy", "loss", "train_accuracy", "train_loss"}
    # Member 0 starts from what the user gave: the optimizer's learning rate, fit's batch size.
    first = next(row for row in trainer.history if row["member"] == 0)
    assert first["hyperparameters"]["learning_rate"] == pytest.approx(1e-2)
    assert first["hyperparameters"]["batch_size"] == 32


def test_without_compiled_metrics_the_validation_loss_is_minimized(digits: Any) -> None:
    trainer = short_trainer(wrap(metrics=None), digits)
    trainer.train()
    assert (trainer.metric, trainer.mode) == ("loss", "min")
    assert all(row["score"] == row["metrics"]["loss"] for row in trainer.history)


def test_members_get_their_own_initial_weights_unless_kept() -> None:
    wrapper = wrap()
    first, second, first_again = wrapper.spawn(1), wrapper.spawn(2), wrapper.spawn(1)
    assert not np.array_equal(first.unwrap().get_weights()[0], second.unwrap().get_weights()[0])
    for a, b in zip(first.unwrap().get_weights(), first_again.unwrap().get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    template = tiny_model()
    kept = wrap(template, keep_weights=True)
    for member in (kept.spawn(1), kept.spawn(2)):
        assert member.unwrap() is not template
        for a, b in zip(member.unwrap().get_weights(), template.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


def test_learning_rate_and_beta_1_reach_the_optimizer(digits: Any) -> None:
    template = tiny_model()
    trainer = short_trainer(
        wrap(template, keep_weights=True),
        digits,
        hyperparameters={"learning_rate": Uniform(0.0, 0.1), "beta_1": Uniform(0.0, 0.99)},
        initial_hyperparameters=[
            {"learning_rate": 0.0, "beta_1": 0.5},
            {"learning_rate": 0.05, "beta_1": 0.8},
        ],
        exploit_strategy=None,
    )
    trainer.train()
    frozen, trained = trainer.executor.model(0), trainer.executor.model(1)
    assert float(frozen.optimizer.learning_rate) == 0.0
    assert float(trained.optimizer.learning_rate) == pytest.approx(0.05)
    assert (frozen.optimizer.beta_1, trained.optimizer.beta_1) == (0.5, 0.8)
    # A learning rate of 0 really leaves the weights where they started; 0.05 moves them.
    for a, b in zip(frozen.get_weights(), template.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(trained.get_weights()[0], template.get_weights()[0])


def test_beta_1_changes_the_adam_update(digits: Any) -> None:
    x_train, y_train, *_ = digits
    fit_args = {"x": x_train, "y": y_train, "batch_size": len(y_train), "shuffle": False}
    momenta = {}
    for beta_1 in (0.0, 0.5):
        member = wrap(keep_weights=False).spawn(7)  # the same seed: the same weights and data
        member.fit({"learning_rate": 1e-3, "beta_1": beta_1}, 1, fit_args)
        variables = member.unwrap().optimizer.variables
        momenta[beta_1] = [v.numpy() for v in variables if v.name.endswith("_momentum")]
    # After one step Adam's first moment is (1 - beta_1) * gradient.
    assert momenta[0.0]
    for zero, half in zip(momenta[0.0], momenta[0.5], strict=True):
        np.testing.assert_allclose(half, 0.5 * zero, rtol=1e-4, atol=1e-8)


class StepsRecorder(keras.callbacks.Callback):
    """Records how many batches each fit runs (Keras derives it from batch_size)."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []

    def on_train_begin(self, logs: Any = None) -> None:
        self.steps.append(self.params["steps"])


def test_batch_size_reaches_fit(digits: Any) -> None:
    x_train, y_train, *_ = digits
    recorder = StepsRecorder()
    trainer = short_trainer(
        wrap(),
        digits,
        hyperparameters={"batch_size": IntUniform(8, 160)},
        initial_hyperparameters=[{"batch_size": 16}, {"batch_size": 80}],
        step_args={"fit_args": {"x": x_train, "y": y_train, "callbacks": [recorder]}},
    )
    trainer.train()
    assert recorder.steps == [160 // 16, 160 // 80]


def test_copying_state_makes_a_member_equal_to_its_donor(digits: Any) -> None:
    x_train, y_train, x_val, y_val = digits
    executor = SerialExecutor()
    executor.start(wrap(), {"x": x_train, "y": y_train}, {"x": x_val, "y": y_val})
    executor.place(0, 11)
    executor.place(1, 22)
    executor.submit(0, {"learning_rate": 1e-2}, 1)
    executor.submit(1, {"learning_rate": 1e-3}, 1)
    assert [result.error for result in executor.completed()] == [None, None]

    donor, member = executor.get_state(0), executor.get_state(1)
    assert any(key.startswith("optimizer/") for key in donor)
    assert not np.array_equal(donor["weights/0000"], member["weights/0000"])

    executor.copy_states([(0, 1)])
    copied = executor.get_state(1)
    assert sorted(copied) == sorted(donor)
    for key in donor:
        np.testing.assert_array_equal(copied[key], donor[key], err_msg=key)
    np.testing.assert_array_equal(
        executor.model(1).predict(x_val, verbose=0), executor.model(0).predict(x_val, verbose=0)
    )
    # The copy is a copy: training the member on leaves the donor as it was.
    executor.submit(1, {"learning_rate": 1e-2}, 1)
    list(executor.completed())
    np.testing.assert_array_equal(executor.get_state(0)["weights/0000"], donor["weights/0000"])


# ---- the contract ---------------------------------------------------------------------------------
# Module-level builders and data, so the template pickles with the standard pickle.
_CONTRACT_RNG = np.random.default_rng(7)
CONTRACT_X = _CONTRACT_RNG.normal(size=(48, 4)).astype(np.float32)
CONTRACT_Y = _CONTRACT_RNG.integers(0, 3, size=48)


def contract_model() -> Any:
    return keras.Sequential(
        [keras.Input(shape=(4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    )


class TestKerasContract(ModelWrapperContract):
    def make_template(self) -> KerasModelWrapper:
        # Adam: optimizer slots and an iteration count for the state tests to carry.
        return KerasModelWrapper(
            contract_model(),
            optimizer=keras.optimizers.Adam(1e-2),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )

    def space(self) -> dict[str, Domain]:
        return {"learning_rate": LogUniform(1e-3, 1e-1), "batch_size": IntUniform(8, 16)}

    def fit_args(self) -> dict[str, Any]:
        # Unshuffled: each member shuffles from its own seed, which a state copy does not carry
        # (so a member trains on from its donor's state with its own draws).
        return {"x": CONTRACT_X, "y": CONTRACT_Y, "shuffle": False}

    def eval_args(self) -> dict[str, Any]:
        return {"x": CONTRACT_X[:16], "y": CONTRACT_Y[:16]}


# ---- what prepare keeps; checks that change nothing ----------------------------------------------------
def test_prepare_keeps_the_batch_size_fit_is_given(digits: Any) -> None:
    x_train, y_train, x_val, y_val = digits
    wrapper = wrap()
    space = {"learning_rate": LogUniform(1e-4, 1e-1), "batch_size": IntUniform(8, 64)}
    fit_args = {"x": x_train, "y": y_train, "batch_size": 48}
    wrapper.check_hyperparameters(space)
    wrapper.check_args(fit_args, {"x": x_val, "y": y_val})
    assert wrapper.given_hyperparameters(space)["batch_size"] == 32, "the checks keep nothing"
    wrapper.prepare(space, fit_args, {"x": x_val, "y": y_val})
    given = wrapper.given_hyperparameters(space)
    assert given["batch_size"] == 48
    assert given["learning_rate"] == pytest.approx(1e-2)
    with pytest.raises(PyBTError, match=r"step_args\['fit_args'\]\['batch_size'\].*0"):
        wrapper.check_args({**fit_args, "batch_size": 0}, {"x": x_val, "y": y_val})


def test_a_learning_rate_schedule_is_not_explored() -> None:
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9)
    wrapper = wrap(optimizer=keras.optimizers.SGD(schedule, momentum=0.5))
    with pytest.raises(PyBTError, match=r"hyperparameters\['learning_rate'\].*schedule"):
        wrapper.check_hyperparameters({"learning_rate": LogUniform(1e-3, 1e-1)})
    wrapper.check_hyperparameters({"momentum": Uniform(0.0, 0.9), "batch_size": IntUniform(8, 64)})
    assert wrapper.given_hyperparameters({"momentum": Uniform(0.0, 0.9)}) == {"momentum": 0.5}


def test_an_unknown_hyperparameter_names_what_can_be_tuned() -> None:
    with pytest.raises(PyBTError, match="momentum_decay") as error:
        wrap().check_hyperparameters({"momentum_decay": Uniform(0.0, 1.0)})
    assert "beta_1" in str(error.value) and "learning_rate" in str(error.value)


# ---- members built from Keras configs ---------------------------------------------------------------
def test_members_compile_with_their_own_keras_objects() -> None:
    optimizer = keras.optimizers.Adam(1e-2)
    loss = keras.losses.SparseCategoricalCrossentropy()
    wrapper = wrap(optimizer=optimizer, loss=loss)
    first, second = wrapper.spawn(1), wrapper.spawn(2)
    optimizers = [first.unwrap().optimizer, second.unwrap().optimizer]
    assert optimizers[0] is not optimizers[1] and optimizer not in optimizers
    assert all(type(each) is type(optimizer) for each in optimizers)
    assert first.unwrap().loss is not second.unwrap().loss and loss is not first.unwrap().loss
    assert float(optimizers[0].learning_rate) == pytest.approx(1e-2)


def crossentropy(y_true: Any, y_pred: Any) -> Any:
    """A user's own loss function: members share it as it is; it pickles by reference."""
    return keras.losses.sparse_categorical_crossentropy(y_true, y_pred)


class TwoLayers(keras.Model):
    """A subclassed model without get_config (Keras configures it from its constructor's
    arguments) and without an Input layer: unbuilt until it sees data."""

    def __init__(self, hidden: int = 8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(hidden, activation="relu")
        self.out = keras.layers.Dense(10, activation="softmax")

    def call(self, inputs: Any) -> Any:
        return self.out(self.hidden(inputs))


def unbuilt_sequential() -> Any:
    return keras.Sequential(
        [keras.layers.Dense(8, activation="relu"), keras.layers.Dense(10, activation="softmax")]
    )


@pytest.mark.parametrize("make_model", [TwoLayers, unbuilt_sequential], ids=["subclassed", "no-input"])
def test_a_model_without_input_layer_is_built_from_the_data_and_travels(digits: Any, make_model: Any) -> None:
    x_train, y_train, x_val, y_val = digits
    fit_args, eval_args = {"x": x_train, "y": y_train}, {"x": x_val, "y": y_val}
    model = make_model()
    assert not model.built
    template = wrap(
        model,
        loss=crossentropy,
        metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=3, name="top3")],
    )
    template.prepare({"learning_rate": LogUniform(1e-3, 1e-1)}, fit_args, eval_args)
    member = template.spawn(4)
    assert member.unwrap().built
    member.fit({"learning_rate": 1e-2}, 2, fit_args)

    copied = pickle.loads(pickle.dumps(template))
    assert_states_equal(copied.spawn(6).get_state(), template.spawn(6).get_state())
    moved = pickle.loads(pickle.dumps(member))
    assert_states_equal(moved.get_state(), member.get_state())
    assert moved.get_state()["pybt/fits"] == 1, "it comes back trained as far as it was"
    assert moved.evaluate(eval_args) == member.evaluate(eval_args)
    assert set(moved.evaluate(eval_args)) == {"loss", "accuracy", "top3"}
    # It trains on from there as the member itself does: same seed, same fit count.
    for wrapper in (member, moved):
        wrapper.fit({"learning_rate": 1e-2}, 1, fit_args)
    assert_states_equal(moved.get_state(), member.get_state())


def test_classes_keras_cannot_find_by_name_are_handed_to_it(digits: Any) -> None:
    x_train, y_train, x_val, y_val = digits

    # Local classes: Keras cannot import them from their module, so the wrapper passes them.
    class LocalModel(keras.Model):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(10, activation="softmax")

        def call(self, inputs: Any) -> Any:
            return self.dense(inputs)

    class LocalAccuracy(keras.metrics.SparseCategoricalAccuracy):
        pass

    template = wrap(LocalModel(), metrics=[LocalAccuracy(name="local")])
    template.prepare({}, {"x": x_train, "y": y_train}, {"x": x_val, "y": y_val})
    member = template.spawn(1)
    member.fit({}, 1, {"x": x_train, "y": y_train})
    # deepcopy goes through the same configs as pickle, without needing importable classes.
    twin = copy.deepcopy(member)
    assert isinstance(twin.unwrap(), LocalModel)
    assert twin.evaluate({"x": x_val, "y": y_val}) == member.evaluate({"x": x_val, "y": y_val})
    assert "local" in twin.evaluate({"x": x_val, "y": y_val})


class TakesALayer(keras.Model):
    """Its constructor takes a layer, so Keras has no config to rebuild it from."""

    def __init__(self, layer: Any) -> None:
        super().__init__()
        self.layer = layer

    def call(self, inputs: Any) -> Any:
        return self.layer(inputs)


def test_a_model_keras_cannot_clone_is_refused_up_front() -> None:
    with pytest.raises(PyBTError, match=r"KerasModelWrapper\(model\).*TakesALayer.*get_config"):
        wrap(TakesALayer(keras.layers.Dense(10)))


@pytest.mark.parametrize("argument", [{"optimizer": "no_such_optimizer"}, {"loss": "no_such_loss"}])
def test_compile_arguments_keras_refuses_are_refused_up_front(argument: dict[str, str]) -> None:
    with pytest.raises(PyBTError, match=r"KerasModelWrapper\(\*\*compile_kwargs\).*no_such_"):
        KerasModelWrapper(tiny_model(), **{"loss": LOSS, **argument})


def assert_states_equal(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> None:
    assert sorted(first) == sorted(second)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


# ---- beyond the optimizer: apply= ----------------------------------------------------------------
def dropout_model() -> Any:
    return keras.Sequential(
        [
            keras.Input(shape=(64,)),
            keras.layers.Dense(32, activation="relu"),
            # Built with a rate above 0: Keras makes a Dropout's random generator only then.
            keras.layers.Dropout(0.5, name="dropout"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def set_dropout(model: Any, hyperparameters: Any) -> None:
    model.get_layer("dropout").rate = hyperparameters["dropout"]


def test_apply_sets_a_dropout_rate_that_changes_training(digits: Any) -> None:
    x, y, x_val, y_val = digits
    wrapper = wrap(dropout_model(), apply=set_dropout)
    space = {"dropout": Uniform(0.0, 0.95), "learning_rate": LogUniform(1e-3, 1e-1)}
    wrapper.prepare(space, {"x": x, "y": y}, {"x": x_val, "y": y_val})
    losses = {}
    for rate in (0.0, 0.9, 0.0):
        member = wrapper.spawn(1)
        losses.setdefault(rate, []).append(
            member.fit({"dropout": rate, "learning_rate": 0.01}, 3, {"x": x, "y": y})["loss"]
        )
    assert losses[0.0][0] == losses[0.0][1], "the same rate trains the same"
    assert losses[0.9][0] > losses[0.0][0] * 1.2, "a rate of 0.9 visibly slows training down"
    # A member that changes its rate between steps rebuilds its train step and uses the new one.
    member = wrapper.spawn(1)
    member.fit({"dropout": 0.0, "learning_rate": 0.01}, 1, {"x": x, "y": y})
    member.fit({"dropout": 0.9, "learning_rate": 0.01}, 1, {"x": x, "y": y})
    assert member.model.get_layer("dropout").rate == 0.9


def test_apply_in_a_run_and_names_without_apply_are_refused(digits: Any) -> None:
    x, y, x_val, y_val = digits
    space = {"dropout": Uniform(0.0, 0.5), "learning_rate": LogUniform(1e-3, 1e-1)}
    arguments = {
        "population_size": 3,
        "hyperparameters": space,
        "stopping_criteria": StopAfter(2),
        "ready_strategy": ReadyAfter(1),
        "step_args": {"fit_args": {"x": x, "y": y}},
        "eval_args": {"x": x_val, "y": y_val},
        "seed": 0,
        "verbose": 0,
    }
    trainer = Trainer(wrap(dropout_model(), apply=set_dropout), **arguments)
    model, _ = trainer.train()
    best_rate = trainer.schedule()[-1]["hyperparameters"]["dropout"]
    assert model.get_layer("dropout").rate == best_rate, "the winner holds the rate it trained with"
    assert len({step.hyperparameters["dropout"] for step in trainer.history}) > 1
    with pytest.raises(PyBTError, match="apply=fn"):
        Trainer(wrap(dropout_model()), **arguments)


def test_float32_settings_are_recorded_as_the_user_gave_them(digits: Any) -> None:
    x, y, x_val, y_val = digits
    trainer = Trainer(
        wrap(optimizer=keras.optimizers.Adam(learning_rate=0.001)),
        population_size=2,
        hyperparameters={"learning_rate": LogUniform(1e-4, 1e-1)},
        stopping_criteria=StopAfter(1),
        step_args={"fit_args": {"x": x, "y": y}},
        eval_args={"x": x_val, "y": y_val},
        seed=0,
        verbose=0,
    )
    trainer.train()
    assert trainer.history[0].hyperparameters["learning_rate"] == 0.001  # not 0.0010000000474974513
