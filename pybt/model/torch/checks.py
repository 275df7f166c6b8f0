"""Checks of what users hand a TorchModelWrapper: its construction arguments and its data.

Each check raises a PyBTError that names the argument, the value received and the fix, so a
mistake surfaces when the wrapper is built or the Trainer prepared, not in a member's first fit.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from pybt._validate import check_integer
from pybt.errors import PyBTError, invalid_argument
from pybt.model.base import check_samples
from pybt.model.torch.batches import LOADER_KEY

_ARRAY_KEYS = ("x", "y", "batch_size", "shuffle")
_ARGS_EXAMPLE = "{'x': x, 'y': y} (arrays or tensors) or {'loader': data_loader}"


# ---- construction -------------------------------------------------------------------------------
def check_module(torch: Any, module: Any) -> None:
    if not isinstance(module, torch.nn.Module):
        raise invalid_argument(
            "TorchModelWrapper(module)",
            type(module).__name__,
            "a torch.nn.Module",
            "Wrap your network, e.g. TorchModelWrapper(nn.Sequential(...), torch.optim.SGD, loss).",
        )


def check_optimizer_factory(torch: Any, optimizer: Any) -> None:
    """An optimizer class or factory: each member builds its own, so an instance will not do."""
    if isinstance(optimizer, torch.optim.Optimizer) or not callable(optimizer):
        # An optimizer's repr lists every param group over many lines: name its class instead.
        received = (
            f"a {type(optimizer).__name__} instance"
            if isinstance(optimizer, torch.optim.Optimizer)
            else optimizer
        )
        raise invalid_argument(
            "TorchModelWrapper(optimizer)",
            received,
            "an optimizer class or a function params -> optimizer (each member builds its own)",
            "e.g. optimizer=torch.optim.SGD, optimizer_kwargs={'lr': 0.1}, or "
            "optimizer=lambda params: torch.optim.SGD(params, lr=0.1).",
        )


def check_steps(train_step: Any, eval_step: Any) -> None:
    for name, function in (("train_step", train_step), ("eval_step", eval_step)):
        if function is not None and not callable(function):
            raise invalid_argument(f"TorchModelWrapper({name})", function, "a function or None")


def check_keep_weights(keep_weights: Any) -> None:
    if not isinstance(keep_weights, bool):
        raise invalid_argument("TorchModelWrapper(keep_weights)", keep_weights, "True or False")


def checked_loss(loss: Any, train_step: Any, eval_step: Any, metrics: Any) -> Callable[..., Any] | None:
    """The loss, or None when ``train_step`` trains and ``eval_step`` or ``metrics`` scores."""
    if loss is None:
        if train_step is None:
            raise invalid_argument(
                "TorchModelWrapper(loss)",
                None,
                "a loss: a module like nn.CrossEntropyLoss() or a function (outputs, targets) -> loss",
                "Or give train_step= to train the module your own way.",
            )
        if eval_step is None and not metrics:
            raise invalid_argument(
                "TorchModelWrapper(loss)",
                None,
                "a loss, eval_step= or metrics= to score members with",
                "The default evaluation reports the loss; without one, give eval_step= or metrics=.",
            )
        return None
    if isinstance(loss, type):
        raise invalid_argument(
            "TorchModelWrapper(loss)",
            loss,
            "a loss instance or function, not a class",
            f"Create it: loss={loss.__name__}().",
        )
    if not callable(loss):
        raise invalid_argument(
            "TorchModelWrapper(loss)",
            loss,
            "a module like nn.CrossEntropyLoss() or a function (outputs, targets) -> loss",
        )
    return loss


def checked_metrics(metrics: Any, eval_step: Any) -> dict[str, Callable[..., Any]]:
    """``{name: fn(outputs, targets)}`` from a dict or a list of named functions."""
    if metrics is None:
        return {}
    if isinstance(metrics, Mapping):
        items = list(metrics.items())
    elif isinstance(metrics, Sequence) and not isinstance(metrics, (str, bytes)):
        items = [(getattr(function, "__name__", None), function) for function in metrics]
    else:
        raise invalid_argument(
            "TorchModelWrapper(metrics)", metrics, "a dict {name: fn(outputs, targets) -> float}"
        )
    checked: dict[str, Callable[..., Any]] = {}
    for name, function in items:
        if not callable(function):
            raise invalid_argument(f"TorchModelWrapper(metrics)[{name!r}]", function, "a function")
        if not isinstance(name, str) or not name or name.startswith("<") or name in checked:
            raise invalid_argument(
                "TorchModelWrapper(metrics)",
                name,
                "distinct metric names",
                "Give a dict {name: fn} (lambdas have no name).",
            )
        if name == "loss":
            raise invalid_argument("TorchModelWrapper(metrics)", name, "a name other than 'loss' (reserved)")
        checked[name] = function
    if checked and eval_step is not None:
        raise invalid_argument(
            "TorchModelWrapper(metrics)",
            sorted(checked),
            "None when eval_step is given",
            "metrics= feeds the default evaluation; compute them in your eval_step instead.",
        )
    return checked


def checked_device(torch: Any, device: Any) -> Any:
    """A ``torch.device``, or None to leave members where the module is."""
    if device is None:
        return None
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise invalid_argument(
            "TorchModelWrapper(device)", device, "a torch device such as 'cpu', 'cuda' or 'cuda:1'"
        ) from error


def reset_function(module: Any) -> Callable[[], Any] | None:
    """The submodule's own re-initialization, if it has one."""
    # nn.MultiheadAttention only has the private spelling.
    for name in ("reset_parameters", "_reset_parameters"):
        function = getattr(module, name, None)
        if callable(function):
            return function
    return None


def warn_unresettable(module: Any) -> None:
    """Warn about parameters that every member would start from the template's values."""
    stuck = [
        f"{prefix}.{name}" if prefix else name
        for prefix, submodule in module.named_modules()
        if reset_function(submodule) is None
        for name, _ in submodule.named_parameters(recurse=False)
    ]
    if stuck:
        warnings.warn(
            f"TorchModelWrapper: the parameters {stuck[:5]}{' ...' if len(stuck) > 5 else ''} belong to "
            f"modules without reset_parameters(), so every member starts them from the template's "
            f"values. Give those modules a reset_parameters() to initialize each member on its own.",
            UserWarning,
            stacklevel=3,  # the user's TorchModelWrapper(...) line
        )


# ---- data ---------------------------------------------------------------------------------------
def check_data(argument: str, args: Mapping[str, Any], needs_y: bool) -> None:
    """``args`` (fit_args or eval_args) is arrays PyBT batches, or a loader alone."""
    if LOADER_KEY in args:
        extra = sorted(set(args) - {LOADER_KEY})
        if extra:
            raise invalid_argument(
                argument, sorted(args), "{'loader': ...} alone", f"Remove {extra}; the loader batches."
            )
        loader = args[LOADER_KEY]
        # Checked without iter(): that would start a DataLoader's worker processes.
        if not isinstance(loader, Iterable) or isinstance(loader, Iterator):
            raise invalid_argument(
                f"{argument}['loader']",
                type(loader).__name__,
                "a re-iterable of (inputs, targets) batches, such as a torch DataLoader",
                "An iterator or generator runs out after one epoch; wrap the data in a DataLoader.",
            )
        return
    if "x" not in args or (needs_y and "y" not in args):
        raise invalid_argument(argument, sorted(args), f"a dict {_ARGS_EXAMPLE}")
    unknown = sorted(set(args) - set(_ARRAY_KEYS))
    if unknown:
        raise invalid_argument(argument, unknown, f"only the keys {list(_ARRAY_KEYS)} (or 'loader' alone)")
    if args.get("batch_size") is not None:
        check_integer(f"{argument}['batch_size']", args["batch_size"], 1)
    check_samples(argument, args)


def loader_batch_size_error() -> PyBTError:
    return invalid_argument(
        "hyperparameters",
        "batch_size",
        "no 'batch_size' when fit_args gives a loader (the loader makes its own batches)",
        "Leave batch_size out, e.g. hyperparameters={'lr': LogUniform(1e-5, 1e-1)}, or pass x and y "
        "arrays so PyBT batches them.",
    )
