"""The member's optimizer: building one per member, its tunable settings, and writing explored
hyperparameters into its param groups.

A hyperparameter named like a param group setting (``lr``, ``momentum``, ``betas``, ...) is
*tunable* when the setting holds a number or a tuple of numbers; switches (``nesterov``,
``foreach``, ...) are not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from pybt._validate import is_real
from pybt.errors import describe_exception, invalid_argument
from pybt.space import Domain


def build_optimizer(torch: Any, factory: Callable[..., Any], kwargs: Mapping[str, Any], module: Any) -> Any:
    """``factory(list(module.parameters()), **kwargs)``, checked to be an optimizer over them."""
    params = list(module.parameters())
    try:
        optimizer = factory(params, **kwargs)
    except Exception as error:  # the user's class or factory: any failure means "cannot build"
        raise invalid_argument(
            "TorchModelWrapper(optimizer, optimizer_kwargs)",
            (factory, kwargs),
            "an optimizer that can be built on the module's parameters",
            f"Building it failed with {describe_exception(error)}",
        ) from error
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise invalid_argument(
            "TorchModelWrapper(optimizer)",
            f"a function that returned {type(optimizer).__name__}",
            "a function returning a torch.optim.Optimizer",
            "e.g. optimizer=lambda params: torch.optim.SGD(params, lr=0.1).",
        )
    own = {id(param) for param in params}
    if any(id(param) not in own for group in optimizer.param_groups for param in group["params"]):
        raise invalid_argument(
            "TorchModelWrapper(optimizer)",
            factory,
            "an optimizer over the parameters it is given",
            "The factory built its optimizer on other parameters (does it use net.parameters() "
            "instead of its argument?). Write lambda params: torch.optim.SGD(params, ...).",
        )
    return optimizer


def group_settings(optimizer: Any) -> dict[str, Any]:
    """The first param group's settings as plain Python values (without its parameters)."""
    return {key: _plain(value) for key, value in optimizer.param_groups[0].items() if key != "params"}


def is_tunable(value: Any) -> bool:
    """A number-valued param group setting (lr, momentum, betas, ...), not a switch."""
    if isinstance(value, tuple):
        return len(value) > 0 and all(is_tunable(item) for item in value)
    return is_real(value)


def _plain(value: Any) -> Any:
    """A Python value from a param group setting (a tensor lr becomes a float)."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    return value


def check_names(names: Iterable[str], tunable: list[str], optimizer_name: str) -> None:
    """Refuse a name that is neither ``batch_size`` nor a tunable setting (without a train_step)."""
    for name in names:
        if name != "batch_size" and name not in tunable:
            raise invalid_argument(
                "hyperparameters",
                name,
                f"'batch_size' or a setting of the {optimizer_name} optimizer's param groups",
                f"The tunable keys are {['batch_size', *tunable]}. (With train_step=, any "
                f"other name is passed to your step.)",
            )


def check_values(space: Mapping[str, Domain], settings: Mapping[str, Any], tunable: list[str]) -> None:
    """Refuse a domain whose values do not have the shape of the setting they replace."""
    # betas=(0.9, 0.999) takes pairs (a Choice of tuples), lr takes numbers. One sample tells.
    rng = np.random.default_rng(0)
    for name in space:
        if name not in tunable:
            continue
        current, value = settings[name], space[name].sample(rng)
        if isinstance(current, tuple):
            fits = isinstance(value, (tuple, list)) and len(value) == len(current)
            fits = fits and all(is_tunable(item) for item in value)
            expected = f"a domain of {len(current)}-tuples like {current} (e.g. a Choice of tuples)"
        else:
            fits, expected = is_tunable(value), "a domain of numbers"
        if not fits:
            raise invalid_argument(
                f"hyperparameters[{name!r}]", space[name], expected, f"It samples {value!r}."
            )


def set_hyperparameters(
    torch: Any, optimizer: Any, hyperparameters: Mapping[str, Any], tunable: list[str]
) -> None:
    """Write the tunable settings among ``hyperparameters`` into *every* param group."""
    for name, value in hyperparameters.items():
        if name not in tunable:
            continue
        for group in optimizer.param_groups:
            current = group.get(name)
            if isinstance(current, torch.Tensor):
                current.fill_(value)  # a tensor setting (e.g. a capturable lr) stays a tensor
            elif isinstance(current, tuple):
                group[name] = tuple(value)
            else:
                group[name] = value
