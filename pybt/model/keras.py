"""Keras 3 models as PBT members, on whichever backend Keras runs on.

PyBT never picks a backend: Keras reads ``KERAS_BACKEND`` (or its config file) as usual.
Each member is a clone of the user's model with its own fresh initialization (or the given
weights, with ``keep_weights=True``), compiled with fresh copies of the compile arguments.
Hyperparameters that name an optimizer attribute (``learning_rate``, ``momentum``,
``beta_1``, ``weight_decay``, ...) are set on the live optimizer before each step, without
recompiling; ``batch_size`` goes to ``fit``.

For reproducible runs, PyBT seeds Keras's global random state
(``keras.utils.set_random_seed``) from the member's seed before it builds and trains each
member.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from pybt.errors import MissingDependencyError, PyBTError, invalid_argument, missing_extra
from pybt.model.base import Metrics, ModelWrapper, State, finite_metrics
from pybt.space import Domain, IntUniform, LogUniform

_FIT_KEYS_PYBT_OWNS = ("epochs", "initial_epoch")
_DEFAULT_BATCH_SIZE = 32  # what keras.Model.fit uses when given none
_FITS_KEY = "pybt/fits"


def _keras() -> Any:
    try:
        import keras
    except ModuleNotFoundError as error:
        if error.name == "keras":
            raise missing_extra("Keras", "keras") from error
        raise MissingDependencyError(
            f"Keras is installed but could not load its backend ({error}). Install a backend "
            f"(tensorflow, jax or torch) and select it with the KERAS_BACKEND environment variable."
        ) from error
    if not hasattr(keras, "Model") or int(keras.__version__.split(".")[0]) < 3:
        raise MissingDependencyError(
            f"PyBT needs Keras 3, found {keras.__version__}. Upgrade it: pip install -U 'pybt[keras]'"
        )
    return keras


def _fresh(value: Any) -> Any:
    """A new copy of a compile argument, so members never share optimizer or metric state."""
    if isinstance(value, (list, tuple)):
        return type(value)(_fresh(item) for item in value)
    if isinstance(value, dict):
        return {key: _fresh(item) for key, item in value.items()}
    if hasattr(value, "get_config") and hasattr(type(value), "from_config"):
        return type(value).from_config(value.get_config())
    return value


def _first_rows(x: Any) -> Any:
    """The first row of array-like training inputs, to build a model; None for other inputs."""
    if isinstance(x, dict):
        rows = {key: _first_rows(value) for key, value in x.items()}
        return None if any(value is None for value in rows.values()) else rows
    if isinstance(x, (list, tuple)):
        rows = [_first_rows(value) for value in x]
        return None if any(value is None for value in rows) else type(x)(rows)
    if hasattr(x, "shape") and hasattr(x, "__getitem__") and len(getattr(x, "shape", ())) > 0:
        return x[:1]
    return None


class KerasModelWrapper(ModelWrapper):
    """A Keras 3 model and the arguments to compile it with.

    ``KerasModelWrapper(model, optimizer=keras.optimizers.Adam(1e-3), loss=..., metrics=[...])``
    takes any ``model.compile`` argument. ``keep_weights=True`` starts every member from the
    model's current weights instead of a fresh initialization.
    """

    def __init__(self, model: Any, *, keep_weights: bool = False, **compile_kwargs: Any) -> None:
        keras = _keras()
        if not isinstance(model, keras.Model):
            raise invalid_argument(
                "KerasModelWrapper(model)", type(model).__name__, "a keras.Model", "Wrap a Keras 3 model."
            )
        if keep_weights and not model.built:
            raise invalid_argument(
                "KerasModelWrapper(keep_weights=True)",
                "an unbuilt model",
                "a built model (its weights exist)",
                "Give the model an Input layer or call it on data first.",
            )
        self._template = model
        self._keep_weights = keep_weights
        self._compile_kwargs = dict(compile_kwargs)
        self._build_input: Any = None
        self._given_batch_size = _DEFAULT_BATCH_SIZE
        self._probe_optimizer = self._compiled_clone().optimizer
        self.model: Any = None  # set on members by spawn()
        self._seed = 0
        self._fits = 0

    def _compiled_clone(self) -> Any:
        keras = _keras()
        clone = keras.models.clone_model(self._template)
        if self._keep_weights:
            clone.set_weights(self._template.get_weights())
        try:
            clone.compile(**_fresh(self._compile_kwargs))
            loss = self._compile_kwargs.get("loss")
            if isinstance(loss, str):
                keras.losses.get(loss)
        except (ValueError, TypeError) as error:
            raise invalid_argument(
                "KerasModelWrapper(**compile_kwargs)",
                self._compile_kwargs,
                "arguments model.compile() accepts",
                f"Keras refused them: {error}",
            ) from error
        return clone

    # ---- population ---------------------------------------------------------------------
    def spawn(self, seed: int) -> KerasModelWrapper:
        _keras().utils.set_random_seed(seed)
        member = copy.copy(self)
        member.model = self._compiled_clone()
        member._seed, member._fits = seed, 0
        if member._build_input is not None and not member.model.built:
            member.model(member._build_input)
        return member

    def unwrap(self) -> Any:
        return self.model

    # ---- hyperparameters ------------------------------------------------------------------
    def default_space(self) -> dict[str, Domain]:
        return {"learning_rate": LogUniform(1e-7, 1e-1), "batch_size": IntUniform(8, 512, log=True)}

    def check_hyperparameters(self, space: Mapping[str, Domain]) -> None:
        optimizer = self._probe_optimizer
        schedule = getattr(optimizer, "_learning_rate", None)
        schedule_class = _keras().optimizers.schedules.LearningRateSchedule
        if "learning_rate" in space and isinstance(schedule, schedule_class):
            raise invalid_argument(
                "hyperparameters['learning_rate']",
                space["learning_rate"],
                "no learning_rate: this optimizer's learning rate is a schedule, which Keras cannot set",
                "Explore other hyperparameters (e.g. hyperparameters={'batch_size': IntUniform(8, 512, "
                "log=True)}), or give the optimizer a float learning rate.",
            )
        for name in space:
            if name != "batch_size" and not _is_tunable(optimizer, name):
                tunable = sorted(attr for attr in vars(optimizer) if _is_tunable(optimizer, attr))
                raise invalid_argument(
                    "hyperparameters",
                    name,
                    f"'batch_size' or an attribute of the {type(optimizer).__name__} optimizer",
                    f"Its tunable attributes are {['learning_rate', *tunable]}.",
                )

    def given_hyperparameters(self, space: Mapping[str, Domain]) -> dict[str, Any]:
        given: dict[str, Any] = {}
        for name in space:
            if name == "batch_size":
                given[name] = self._given_batch_size
            else:
                given[name] = _plain(getattr(self._probe_optimizer, name))
        return given

    def check_args(self, fit_args: Mapping[str, Any], eval_args: Mapping[str, Any]) -> None:
        if "x" not in fit_args:
            raise invalid_argument(
                "step_args['fit_args']",
                sorted(fit_args),
                "a dict with 'x' (and 'y')",
                "e.g. {'x': x, 'y': y}.",
            )
        if "x" not in eval_args:
            raise invalid_argument(
                "eval_args", sorted(eval_args), "a dict with 'x' (and 'y')", "e.g. {'x': x, 'y': y}."
            )
        owned = sorted(set(fit_args) & set(_FIT_KEYS_PYBT_OWNS))
        if owned:
            raise invalid_argument(
                "step_args['fit_args']", owned, "no epoch counts", "Set step_args['epochs_per_step'] instead."
            )
        self._given_batch_size = int(fit_args.get("batch_size") or _DEFAULT_BATCH_SIZE)
        self._build_input = _first_rows(fit_args["x"])

    def default_metric(self, metrics: Metrics) -> str:
        """The first compiled metric, else the loss."""
        return next((name for name in metrics if name != "loss"), "loss")

    def _apply(self, hyperparameters: Mapping[str, Any]) -> None:
        keras = _keras()
        optimizer = self.model.optimizer
        retrace = False
        for name, value in hyperparameters.items():
            if name == "batch_size":
                continue
            current = getattr(optimizer, name)
            if name == "learning_rate":
                optimizer.learning_rate = value
            elif isinstance(current, keras.Variable):
                current.assign(value)
            elif current != value:
                setattr(optimizer, name, value)
                retrace = True
        if retrace:
            # A compiled train step has the old Python values baked in; rebuild it (no recompile).
            self.model.train_function = None

    # ---- training -------------------------------------------------------------------------
    def fit(self, hyperparameters: Mapping[str, Any], epochs: int, fit_args: Mapping[str, Any]) -> Metrics:
        keras = _keras()
        self._apply(hyperparameters)
        args = {"verbose": 0, **fit_args}
        if "batch_size" in hyperparameters:
            args["batch_size"] = int(hyperparameters["batch_size"])
        self._fits += 1
        # Seeded once fit has set up, not before: Keras draws random numbers while it sets up a
        # model's first fit in this process (a member restored from a checkpoint has not had
        # one), so only then are the epochs' shuffling and dropout the same either way.
        seed = (self._seed + 7919 * self._fits) % 2**32
        args["callbacks"] = [*(args.get("callbacks") or []), _seed_callback(keras)(seed)]
        history = self.model.fit(epochs=epochs, **args)
        return finite_metrics({name: values[-1] for name, values in history.history.items() if values}, "fit")

    def evaluate(self, eval_args: Mapping[str, Any]) -> Metrics:
        values = self.model.evaluate(**{"verbose": 0, **eval_args, "return_dict": True})
        return finite_metrics(values, "evaluate")

    # ---- state ----------------------------------------------------------------------------
    def get_state(self) -> State:
        state: State = {
            f"weights/{i:04d}": np.array(w, copy=True) for i, w in enumerate(self.model.get_weights())
        }
        # The fit count seeds each fit (shuffling, dropout): kept with the weights, so a resumed
        # member draws what it would have drawn without the interruption.
        state[_FITS_KEY] = np.array(self._fits, dtype=np.int64)
        if self.model.optimizer.built:
            for i, variable in enumerate(self.model.optimizer.variables):
                state[f"optimizer/{i:04d}"] = np.array(variable.numpy(), copy=True)
        return state

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        weights = [state[key] for key in sorted(k for k in state if k.startswith("weights/"))]
        slots = [state[key] for key in sorted(k for k in state if k.startswith("optimizer/"))]
        model, optimizer = self.model, self.model.optimizer
        if not model.built:
            if self._build_input is None:
                raise PyBTError(
                    "This Keras model is not built, so its state cannot be set. Give the model an "
                    "Input layer (keras.Input(shape=...)) so PyBT can build it."
                )
            model(self._build_input)
        model.set_weights(weights)
        if slots:
            if not optimizer.built:
                optimizer.build(model.trainable_variables)
            if len(slots) != len(optimizer.variables):
                raise PyBTError(
                    f"The optimizer state has {len(slots)} variables, this member's optimizer "
                    f"{len(optimizer.variables)}: the state comes from a different model or optimizer."
                )
            for variable, value in zip(optimizer.variables, slots, strict=False):
                variable.assign(value)
        if _FITS_KEY in state:
            self._fits = int(np.asarray(state[_FITS_KEY]))

    # ---- pickling (to Ray actors and other processes) ------------------------------------------
    _KERAS_OBJECT = "__pybt_keras_object__"  # tags a Keras object sent as (class, config)

    def __copy__(self) -> KerasModelWrapper:
        # spawn() makes members with copy.copy: a plain shallow copy, not the pickling below.
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def __getstate__(self) -> dict[str, Any]:
        """Travel as the model's config and weights plus the compile arguments' configs.

        Live Keras objects hold backend variables; configs and NumPy arrays pickle on every
        backend and rebuild on whichever the receiving process runs. A member also carries its
        state (weights and optimizer slots) and comes back trained as far as it was.
        """
        state = dict(self.__dict__)
        state["_template"] = self._portable_model(self._template)
        state["_compile_kwargs"] = self._portable(self._compile_kwargs)
        state["_probe_optimizer"] = self._portable(self._probe_optimizer)
        state["model"] = None if self.model is None else self.get_state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        member_state = state.pop("model")
        self.__dict__.update(state)
        self._template = self._rebuilt_model(state["_template"])
        self._compile_kwargs = self._rebuilt(state["_compile_kwargs"])
        self._probe_optimizer = self._rebuilt(state["_probe_optimizer"])
        self.model = None
        if member_state is not None:
            self.model = self._compiled_clone()
            self.set_state(member_state)

    @classmethod
    def _portable(cls, value: Any) -> Any:
        """Keras objects (optimizers, losses, metrics) inside ``value`` as (class, config)."""
        if isinstance(value, (list, tuple)):
            return type(value)(cls._portable(item) for item in value)
        if isinstance(value, dict):
            return {key: cls._portable(item) for key, item in value.items()}
        if hasattr(value, "get_config") and hasattr(type(value), "from_config"):
            return (cls._KERAS_OBJECT, type(value), value.get_config())
        return value

    @classmethod
    def _rebuilt(cls, value: Any) -> Any:
        if isinstance(value, tuple) and len(value) == 3 and value[0] == cls._KERAS_OBJECT:
            return value[1].from_config(value[2])
        if isinstance(value, (list, tuple)):
            return type(value)(cls._rebuilt(item) for item in value)
        if isinstance(value, dict):
            return {key: cls._rebuilt(item) for key, item in value.items()}
        return value

    @classmethod
    def _portable_model(cls, model: Any) -> Any:
        try:
            config = model.get_config()
        except NotImplementedError:  # a subclassed model without get_config: Keras pickles it
            return model
        weights = [np.array(w) for w in model.get_weights()] if model.built else None
        return (cls._KERAS_OBJECT, type(model), config, weights)

    def _rebuilt_model(self, portable: Any) -> Any:
        if not (isinstance(portable, tuple) and portable and portable[0] == self._KERAS_OBJECT):
            return portable
        _, model_class, config, weights = portable
        model = model_class.from_config(config)
        if weights is not None:
            if not model.built and self._build_input is not None:
                model(self._build_input)
            if not model.built:
                raise PyBTError(
                    f"{model_class.__name__}.from_config() gave an unbuilt model, so its weights cannot "
                    f"be restored in this process. Give the model an Input layer (keras.Input(shape=...))."
                )
            model.set_weights(weights)
        return model


@functools.cache
def _seed_callback(keras: Any) -> Any:
    """The callback class that seeds Keras at the start of training (made once keras is imported)."""

    class SeedAtTrainBegin(keras.callbacks.Callback):
        def __init__(self, seed: int) -> None:
            super().__init__()
            self.seed = seed

        def on_train_begin(self, logs: Any = None) -> None:
            keras.utils.set_random_seed(self.seed)

    return SeedAtTrainBegin


def _is_tunable(optimizer: Any, name: str) -> bool:
    """An optimizer attribute PBT can set: the learning rate, or a number-valued setting."""
    if name.startswith("_"):
        return False
    if name == "learning_rate":
        return True
    value = getattr(optimizer, name, None)
    return (value is None and name in vars(optimizer)) or _is_number_like(value)


def _is_number_like(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return hasattr(value, "assign") and hasattr(value, "numpy") and np.ndim(value.numpy()) == 0


def _plain(value: Any) -> Any:
    """A Python number from an optimizer attribute (a float, or a Keras variable)."""
    if hasattr(value, "numpy"):
        return value.numpy().item()
    return value
