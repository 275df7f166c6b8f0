"""The Keras member: one compiled clone of the user's model, trained, scored and copied."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pybt._validate import check_integer
from pybt.errors import PyBTError, describe_exception, invalid_argument
from pybt.model.base import Metrics, ModelWrapper, State, check_samples, numeric_metrics
from pybt.model.keras.backend import load_keras, seed_callback
from pybt.model.keras.optimizer import is_tunable, plain_value
from pybt.model.keras.serialization import (
    custom_objects,
    deserialize,
    deserialize_model,
    serialize_model,
    split_compile_kwargs,
)
from pybt.space import Domain, IntUniform, LogUniform

_FIT_KEYS_PYBT_OWNS = ("epochs", "initial_epoch")
_DEFAULT_BATCH_SIZE = 32  # what keras.Model.fit uses when given none
_FITS_KEY = "pybt/fits"


def _first_rows(x: Any, count: int = 1) -> Any:
    """The first rows of array-like inputs (to build a model); None for other inputs."""
    if isinstance(x, dict):
        rows = {key: _first_rows(value, count) for key, value in x.items()}
        return None if any(value is None for value in rows.values()) else rows
    if isinstance(x, (list, tuple)):
        rows = [_first_rows(value, count) for value in x]
        return None if any(value is None for value in rows) else type(x)(rows)
    if hasattr(x, "shape") and hasattr(x, "__getitem__") and len(getattr(x, "shape", ())) > 0:
        return x[:count]
    return None


def _bytes_of(shape: Any, dtype: Any) -> int:
    return int(np.prod(shape)) * np.dtype(dtype).itemsize


class KerasModelWrapper(ModelWrapper):
    """A Keras 3 model and the arguments to compile it with.

    ``KerasModelWrapper(model, optimizer=keras.optimizers.Adam(1e-3), loss=..., metrics=[...])``
    takes any ``model.compile`` argument. ``keep_weights=True`` starts every member from the
    model's current weights instead of a fresh initialization.

    ``apply=fn`` explores hyperparameters beyond the optimizer: before each step PyBT calls
    ``fn(model, hyperparameters)`` on the member's live model (set a Dropout layer's ``rate``,
    a regularizer's factor, ...), then rebuilds Keras's traced train step when a value changed,
    so the new value is used. Names that are neither optimizer attributes nor ``batch_size``
    are then accepted as yours.
    """

    def __init__(
        self,
        model: Any,
        *,
        keep_weights: bool = False,
        apply: Callable[[Any, Mapping[str, Any]], Any] | None = None,
        **compile_kwargs: Any,
    ) -> None:
        keras = load_keras()
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
        if apply is not None and not callable(apply):
            raise invalid_argument(
                "KerasModelWrapper(apply)", apply, "a function (model, hyperparameters) -> None, or None"
            )
        self._template = model
        self._keep_weights = keep_weights
        self._apply_hook = apply
        # Keras finds only its own classes (and registered ones) by name when it deserializes;
        # the user's travel with the wrapper, so one defined in a script or notebook rebuilds too.
        self._custom_objects = custom_objects(keras, model, compile_kwargs)
        try:
            probe = self._clone()
        except (NotImplementedError, TypeError, ValueError) as error:  # no config Keras can rebuild it from
            name = type(model).__name__
            raise invalid_argument(
                "KerasModelWrapper(model)",
                name,
                "a model Keras can clone: Sequential, functional, or a subclass whose get_config() "
                "returns its constructor arguments",
                f"Implement {name}.get_config() (and from_config()); Keras's reason is chained below.",
            ) from error
        try:
            self._compile_configs, self._compile_as_given = split_compile_kwargs(keras, compile_kwargs)
            self._compile(probe)
        except (ValueError, TypeError, NotImplementedError) as error:
            raise invalid_argument(
                "KerasModelWrapper(**compile_kwargs)",
                compile_kwargs,
                "arguments model.compile() accepts",
                f"Keras refused them: {describe_exception(error)}",
            ) from error
        # The compiled optimizer (a name given to compile() resolved) as a config: the checks
        # read the settings of a fresh one, touching no member's.
        self._optimizer_config = keras.saving.serialize_keras_object(probe.optimizer)
        self._given_batch_size = _DEFAULT_BATCH_SIZE  # prepare() keeps the one fit_args give
        self._build_input: Any = None  # prepare() keeps the first rows of fit_args['x']
        self._known_metrics: list[str] | None = None  # known_metrics() scores a probe on a few rows
        self._metric_rows: dict[str, Any] = {}  # the rows it scores (kept by prepare())
        self._state_bytes: int | None = None
        self._applied: dict[str, Any] = {}  # a member's values apply= set last
        self.model: Any = None  # set on members by spawn()
        self._seed = 0
        self._fits = 0

    def _clone(self) -> Any:
        """A new model like the template: fresh weights, or the template's with keep_weights."""
        clone = load_keras().models.clone_model(self._template)
        if self._keep_weights:
            clone.set_weights(self._template.get_weights())
        return clone

    def _compile(self, model: Any) -> None:
        """Compile ``model`` with compile arguments of its own, rebuilt from their configs."""
        keras = load_keras()
        kwargs = {
            name: deserialize(keras, config, self._custom_objects)
            for name, config in self._compile_configs.items()
        }
        model.compile(**kwargs, **self._compile_as_given)
        loss = self._compile_as_given.get("loss")
        if isinstance(loss, str):
            keras.losses.get(loss)  # compile() takes any string; refuse an unknown loss now, not at fit

    def _compiled_clone(self) -> Any:
        clone = self._clone()
        self._compile(clone)
        return clone

    def _optimizer(self) -> Any:
        """A new optimizer like the members', to read its settings from."""
        return deserialize(load_keras(), self._optimizer_config, self._custom_objects)

    # ---- population ---------------------------------------------------------------------
    def prepare(
        self, space: Mapping[str, Domain], fit_args: Mapping[str, Any], eval_args: Mapping[str, Any]
    ) -> None:
        """Check the space and the data, then keep what members need from ``fit_args``.

        The batch size the user gave ``fit`` is member 0's (``given_hyperparameters``), and the
        first rows of ``x`` build a model that has no Input layer (in ``spawn``, ``set_state``
        and when a wrapper is unpickled).
        """
        super().prepare(space, fit_args, eval_args)
        self._given_batch_size = int(fit_args.get("batch_size") or _DEFAULT_BATCH_SIZE)
        self._build_input = _first_rows(fit_args["x"])
        self._metric_rows = {key: _first_rows(eval_args[key], 2) for key in ("x", "y") if key in eval_args}
        self._known_metrics = None
        weights = self._template.weights if self._template.built else None  # unbuilt: size unknown
        self._state_bytes = None if weights is None else sum(_bytes_of(w.shape, w.dtype) for w in weights)

    def known_metrics(self) -> list[str] | None:
        """The metric names evaluate() reports, from a probe member scored on two rows (array
        data only), found when first asked (a metric named by the user): a metric name that is
        not among them is refused before training."""
        rows = self._metric_rows
        if self._known_metrics is None and rows and all(value is not None for value in rows.values()):
            evaluated = list(
                self._compiled_clone().evaluate(**self._metric_rows, verbose=0, return_dict=True)
            )
            self._known_metrics = evaluated + [f"train_{name}" for name in evaluated]
        return self._known_metrics

    def metric_alias(self, name: str) -> str:
        """Keras names validation metrics ``val_<name>``; PyBT's evaluated metric is ``<name>``."""
        known = self.known_metrics() if name.startswith("val_") else None
        if name.startswith("val_") and (known is None or name[4:] in known):
            return name[4:]
        return name

    def state_bytes(self) -> int | None:
        # Weights, and about twice as much optimizer state (Adam's two moments).
        return None if self._state_bytes is None else 3 * self._state_bytes

    def spawn(self, seed: int) -> KerasModelWrapper:
        load_keras().utils.set_random_seed(seed)
        member = copy.copy(self)
        member.model = self._compiled_clone()
        member._applied = {}
        member._seed, member._fits = seed, 0
        if member._build_input is not None and not member.model.built:
            member.model(member._build_input)
        return member

    def unwrap(self) -> Any:
        return self.model

    export_suffix = ".keras"

    def export(self, path: str | os.PathLike[str]) -> Path:
        """The member as a ``.keras`` file (``keras.saving.load_model`` reads it back)."""
        target = Path(path).with_suffix(self.export_suffix)
        self.model.save(target)
        return target

    # ---- hyperparameters ------------------------------------------------------------------
    def default_space(self) -> dict[str, Domain]:
        return {"learning_rate": LogUniform(1e-7, 1e-1), "batch_size": IntUniform(8, 512, log=True)}

    def check_hyperparameters(self, space: Mapping[str, Domain]) -> None:
        optimizer = self._optimizer()
        # The config holds a float learning rate, or the serialized schedule (a dict) when the
        # optimizer was given one (or a function), which Keras cannot overwrite with a number.
        if "learning_rate" in space and isinstance(optimizer.get_config().get("learning_rate"), dict):
            raise invalid_argument(
                "hyperparameters['learning_rate']",
                space["learning_rate"],
                "no learning_rate: this optimizer's learning rate is a schedule, which Keras cannot set",
                "Explore other hyperparameters (e.g. hyperparameters={'batch_size': IntUniform(8, 512, "
                "log=True)}), or give the optimizer a float learning rate.",
            )
        for name in space:
            if name != "batch_size" and not is_tunable(optimizer, name) and self._apply_hook is None:
                tunable = sorted(attr for attr in vars(optimizer) if is_tunable(optimizer, attr))
                raise invalid_argument(
                    "hyperparameters",
                    name,
                    f"'batch_size' or an attribute of the {type(optimizer).__name__} optimizer",
                    f"Its tunable attributes are {['learning_rate', *tunable]}. For other hyperparameters "
                    f"(a Dropout rate, a regularizer), give KerasModelWrapper(..., apply=fn).",
                )

    def given_hyperparameters(self, space: Mapping[str, Domain]) -> dict[str, Any]:
        optimizer = self._optimizer()
        given: dict[str, Any] = {}
        for name in space:
            if name == "batch_size":
                given[name] = self._given_batch_size
            elif hasattr(optimizer, name):  # (names apply= handles have no given value)
                given[name] = plain_value(getattr(optimizer, name))
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
        if fit_args.get("batch_size") is not None:  # None is Keras's default, as absent
            check_integer("step_args['fit_args']['batch_size']", fit_args["batch_size"], 1)
        check_samples("step_args['fit_args']", fit_args)
        check_samples("eval_args", eval_args)

    def default_metric(self, metrics: Metrics) -> str:
        """The first compiled metric, else the loss."""
        return next((name for name in metrics if name != "loss"), "loss")

    def _apply(self, hyperparameters: Mapping[str, Any]) -> None:
        keras = load_keras()
        optimizer = self.model.optimizer
        retrace = False
        for name, value in hyperparameters.items():
            if name == "batch_size" or not hasattr(optimizer, name):
                continue
            current = getattr(optimizer, name)
            if name == "learning_rate":
                optimizer.learning_rate = value
            elif isinstance(current, keras.Variable):
                current.assign(value)
            elif current != value:
                setattr(optimizer, name, value)
                retrace = True
        if self._apply_hook is not None:
            values = dict(hyperparameters)
            self._apply_hook(self.model, values)
            retrace = retrace or values != self._applied
            self._applied = values
        if retrace:
            # A compiled train step has the old Python values baked in; rebuild it (no recompile).
            self.model.train_function = None

    # ---- training -------------------------------------------------------------------------
    def fit(self, hyperparameters: Mapping[str, Any], epochs: int, fit_args: Mapping[str, Any]) -> Metrics:
        keras = load_keras()
        self._apply(hyperparameters)
        args = {"verbose": 0, **fit_args}
        if "batch_size" in hyperparameters:
            args["batch_size"] = int(hyperparameters["batch_size"])
        self._fits += 1
        # Seeded once fit has set up, not before: Keras draws random numbers while it sets up a
        # model's first fit in this process (a member restored from a checkpoint has not had
        # one), so only then are the epochs' shuffling and dropout the same either way.
        seed = (self._seed + 7919 * self._fits) % 2**32
        args["callbacks"] = [*(args.get("callbacks") or []), seed_callback(keras)(seed)]
        history = self.model.fit(epochs=epochs, **args)
        return numeric_metrics(
            {name: values[-1] for name, values in history.history.items() if values}, "fit"
        )

    def evaluate(self, eval_args: Mapping[str, Any]) -> Metrics:
        values = self.model.evaluate(**{"verbose": 0, **eval_args, "return_dict": True})
        return numeric_metrics(values, "evaluate")

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

    # ---- copies and pickling (to Ray actors and other processes) ---------------------------------
    def __copy__(self) -> KerasModelWrapper:
        # spawn() makes members with copy.copy: a plain shallow copy, not the pickling below.
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def __getstate__(self) -> dict[str, Any]:
        """Everything but the live models as it is (configs, arrays, the user's classes); the
        template as its Keras config and weights; a member's model as its state."""
        state = dict(self.__dict__)
        state["_template"] = serialize_model(load_keras(), self._template)
        state["model"] = None if self.model is None else self.get_state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._template = deserialize_model(
            load_keras(), state["_template"], self._custom_objects, self._build_input
        )
        self.model = None
        if state["model"] is not None:
            self.model = self._compiled_clone()
            self.set_state(state["model"])
