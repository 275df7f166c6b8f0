"""Keras objects as configs and arrays (how a wrapper travels to other processes and clones
its compile arguments), and back, through ``keras.saving``'s own serialization."""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

import numpy as np

from pybt.errors import PyBTError


def deserialize(keras: Any, config: Any, custom_objects: Mapping[str, Any]) -> Any:
    # safe_mode=False rebuilds lambdas (a Lambda layer's, say): every config here was made from
    # the user's own objects in this run and came by pickle, which runs code anyway.
    return keras.saving.deserialize_keras_object(config, custom_objects=dict(custom_objects), safe_mode=False)


def serialize_model(keras: Any, model: Any) -> dict[str, Any]:
    """The model as its Keras config (layers, build shapes) and its weights when it has them."""
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)  # members are compiled from the wrapper's own arguments
    weights = [np.array(w) for w in model.get_weights()] if model.built else None
    return {"config": config, "weights": weights}


def deserialize_model(
    keras: Any, serialized: Mapping[str, Any], custom_objects: Mapping[str, Any], build_input: Any
) -> Any:
    model = deserialize(keras, serialized["config"], custom_objects)
    weights = serialized["weights"]
    if weights is not None:
        if not model.built and build_input is not None:
            model(build_input)
        if not model.built:
            raise PyBTError(
                f"{type(model).__name__} came back from its config unbuilt, so its weights cannot be "
                f"restored in this process. Give the model an Input layer (keras.Input(shape=...))."
            )
        model.set_weights(weights)
    return model


def split_compile_kwargs(keras: Any, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(configs, as_given)``: the compile arguments that hold Keras objects, serialized, and the rest.

    Keras objects (optimizers, losses, metrics) keep state, so each member deserializes its own.
    Strings, numbers and functions hold none: members share them and they pickle as they are.
    """
    configs: dict[str, Any] = {}
    as_given: dict[str, Any] = {}
    for name, value in kwargs.items():
        if holds_keras_object(value):
            configs[name] = keras.saving.serialize_keras_object(value)
        else:
            as_given[name] = value
    return configs, as_given


def holds_keras_object(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(holds_keras_object(item) for item in value)
    if isinstance(value, dict):
        return any(holds_keras_object(item) for item in value.values())
    return hasattr(value, "get_config")


def custom_objects(keras: Any, *roots: Any) -> dict[str, Any]:
    """``{registered name: class or function}`` for the user's own among ``roots``: Keras objects
    (a model's layers included), functions, and lists and dicts of them."""
    found: dict[str, Any] = {}
    pending = list(roots)
    while pending:
        item = pending.pop()
        if isinstance(item, (list, tuple)):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, types.FunctionType) or hasattr(item, "get_config"):
            if isinstance(item, keras.Model):
                pending.extend(item.layers)
            kind = item if isinstance(item, types.FunctionType) else type(item)
            # Keras finds its own; a lambda travels as its code, not by name.
            if kind.__module__.partition(".")[0] != "keras" and kind.__name__ != "<lambda>":
                found[keras.saving.get_registered_name(kind)] = kind
    return found
