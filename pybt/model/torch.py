"""PyTorch modules as PBT members.

``TorchModelWrapper(module, optimizer, loss)`` wraps an ``nn.Module``, the optimizer to train
it with and a loss::

    wrapper = TorchModelWrapper(
        net,
        torch.optim.SGD,                      # a class (with optimizer_kwargs=...) or a factory:
        nn.CrossEntropyLoss(),                # lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9)
        optimizer_kwargs={"lr": 0.1, "momentum": 0.9},
    )
    Trainer(model=wrapper, step_args={"fit_args": {"x": x, "y": y}}, eval_args={"x": x_val, "y": y_val})

Data. ``fit_args`` and ``eval_args`` are either arrays (NumPy arrays or tensors) that PyBT
batches itself, ``{"x": x, "y": y, "batch_size": 32, "shuffle": True}``, or an iterable of
``(inputs, targets)`` batches such as a ``DataLoader``, ``{"loader": loader}``. ``x`` may be a
tuple of arrays (passed to the module as positional arguments) or a dict (keyword arguments).
Floating arrays are cast to the module's floating dtype and integer targets to ``int64``; every
batch is moved to the module's device. When the supervised loop does not fit, give
``train_step(module, optimizer, batch, hyperparameters) -> metrics`` (called once per batch,
after the optimizer's hyperparameters are set) and/or ``eval_step(module, eval_args) -> metrics``
(called in eval mode under ``torch.no_grad()``, with ``eval_args`` as given).

Hyperparameters. A name found in the optimizer's param groups (``lr``, ``momentum``,
``weight_decay``, ``betas``, ...) is written into *every* param group at the start of every
fit, so a member's explored value wins over the one it copied in an exploit; ``batch_size``
sizes the batches PyBT makes. With a ``train_step``, other names are passed through to it.

Members. ``spawn(seed)`` deep-copies the template module and re-initializes it by calling each
submodule's ``reset_parameters()`` under ``torch.manual_seed(seed)`` (``keep_weights=True``
keeps the template's weights), then builds a fresh optimizer on the copy. Randomness during a
fit (shuffling, dropout) is seeded from the member's seed and its fit count inside
``torch.random.fork_rng``, so a seeded run repeats exactly and the global RNG is left alone.

State. ``get_state`` returns copies as ``{name: ndarray}``: ``module/<state_dict key>`` and
``optimizer/state/<param index>/<key>`` for tensors, ``optimizer/python/...`` for Python numbers
(0-d arrays) and ``optimizer/none/...`` for ``None``. Tensors of a dtype NumPy lacks
(``bfloat16``, ...) are stored as their raw bits, with the dtype after ``@`` in the key. Param
group settings are not part of the state: they are the member's hyperparameters.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pybt.errors import PyBTError, invalid_argument, missing_extra
from pybt.model._torch_tensors import (
    LOADER_KEY,
    _batch_len,
    _Batches,
    _call,
    _device_of,
    _export,
    _import,
    _is_classification,
    _length,
    _number,
    _seeded,
    _split,
    _to_device,
)
from pybt.model.base import Metrics, ModelWrapper, State, finite_metrics
from pybt.space import Domain, IntUniform, LogUniform

if TYPE_CHECKING:
    import torch

_DEFAULT_BATCH_SIZE = 32
_EVAL_BATCH_SIZE = 256
_FITS_KEY = "pybt/fits"
_ARRAY_KEYS = ("x", "y", "batch_size", "shuffle")
_ARGS_EXAMPLE = "{'x': x, 'y': y} (arrays or tensors) or {'loader': data_loader}"
# Integer views that carry the raw bits of tensors whose dtype NumPy cannot hold.


def _torch() -> Any:
    try:
        import torch
    except ModuleNotFoundError as error:
        if error.name == "torch":
            raise missing_extra("PyTorch", "torch") from error
        raise
    return torch


class TorchModelWrapper(ModelWrapper):
    """A ``torch.nn.Module``, the optimizer to train it with and its loss.

    Args:
        module: the network (the template; each member trains its own copy).
        optimizer: an optimizer class such as ``torch.optim.SGD`` or a factory
            ``lambda params: torch.optim.SGD(params, lr=0.1)``; called with the list of the
            member's parameters and ``**optimizer_kwargs``.
        loss: a module such as ``nn.CrossEntropyLoss()`` or a function
            ``(outputs, targets) -> scalar tensor``, averaged over the batch. Needed unless
            ``train_step`` (and ``eval_step`` or ``metrics``) are given.
        metrics: extra evaluation metrics, ``{name: fn(outputs, targets) -> float}`` (or a list of
            named functions), computed on the whole evaluation set's outputs and targets as CPU
            tensors.
        train_step: ``(module, optimizer, batch, hyperparameters) -> dict | None`` to replace the
            default supervised step; its metrics are averaged over the last epoch's batches.
        eval_step: ``(module, eval_args) -> dict`` to replace the default evaluation.
        keep_weights: start every member from the template's weights instead of re-initializing.
        device: where members live (``"cuda:0"``, ``"cpu"``, ...); default: the module's device.

    The default evaluation reports ``loss`` and, when the outputs are ``[N, C]`` logits and the
    targets integer classes, ``accuracy``, which is then the default score. The default search
    space is ``{"lr": LogUniform(1e-5, 1e-1), "batch_size": IntUniform(8, 512, log=True)}``.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        loss: Callable[..., Any] | None = None,
        *,
        optimizer_kwargs: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Callable[..., Any]] | Sequence[Callable[..., Any]] | None = None,
        train_step: Callable[..., Any] | None = None,
        eval_step: Callable[..., Any] | None = None,
        keep_weights: bool = False,
        device: str | torch.device | None = None,
    ) -> None:
        torch = _torch()
        if not isinstance(module, torch.nn.Module):
            raise invalid_argument(
                "TorchModelWrapper(module)",
                type(module).__name__,
                "a torch.nn.Module",
                "Wrap your network, e.g. TorchModelWrapper(nn.Sequential(...), torch.optim.SGD, loss).",
            )
        if isinstance(optimizer, torch.optim.Optimizer) or not callable(optimizer):
            raise invalid_argument(
                "TorchModelWrapper(optimizer)",
                _received_optimizer(torch, optimizer),
                "an optimizer class or a function params -> optimizer (each member builds its own)",
                "e.g. optimizer=torch.optim.SGD, optimizer_kwargs={'lr': 0.1}, or "
                "optimizer=lambda params: torch.optim.SGD(params, lr=0.1).",
            )
        if optimizer_kwargs is not None and not isinstance(optimizer_kwargs, Mapping):
            raise invalid_argument(
                "TorchModelWrapper(optimizer_kwargs)", optimizer_kwargs, "a dict or None", "e.g. {'lr': 0.1}."
            )
        for name, function in (("train_step", train_step), ("eval_step", eval_step)):
            if function is not None and not callable(function):
                raise invalid_argument(f"TorchModelWrapper({name})", function, "a function or None")
        if not isinstance(keep_weights, bool):
            raise invalid_argument("TorchModelWrapper(keep_weights)", keep_weights, "True or False")
        self._loss = _checked_loss(loss, train_step, eval_step, metrics)
        self._metrics = _checked_metrics(metrics)
        if self._metrics and eval_step is not None:
            raise invalid_argument(
                "TorchModelWrapper(metrics)",
                sorted(self._metrics),
                "None when eval_step is given",
                "metrics= feeds the default evaluation; compute them in your eval_step instead.",
            )
        self._device = _checked_device(torch, device)

        self._template = module
        self._optimizer = optimizer
        self._optimizer_kwargs = dict(optimizer_kwargs or {})
        self._train_step, self._eval_step = train_step, eval_step
        self._keep_weights = keep_weights
        # Build one optimizer now, so a bad optimizer fails here and not in every member; keep
        # only its plain settings (not the optimizer, so the template pickles small and clean).
        probe = self._build_optimizer(module)
        group = probe.param_groups[0]
        self._settings = {key: _plain(value) for key, value in group.items() if key != "params"}
        self._tunable = sorted(key for key, value in self._settings.items() if _is_tunable(value))
        del probe
        if not keep_weights:
            _warn_unresettable(module)

        self._given_batch_size = _DEFAULT_BATCH_SIZE
        self._space_names: frozenset[str] = frozenset()
        self.module: Any = None  # members only (set by spawn)
        self.optimizer: Any = None
        self._seed = 0
        self._fits = 0

    def _build_optimizer(self, module: torch.nn.Module) -> torch.optim.Optimizer:
        torch = _torch()
        params = list(module.parameters())
        try:
            optimizer = self._optimizer(params, **self._optimizer_kwargs)
        except Exception as error:  # the user's class or factory: any failure means "cannot build"
            raise invalid_argument(
                "TorchModelWrapper(optimizer, optimizer_kwargs)",
                (self._optimizer, self._optimizer_kwargs),
                "an optimizer that can be built on the module's parameters",
                f"Building it failed with {type(error).__name__}: {error}",
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
                self._optimizer,
                "an optimizer over the parameters it is given",
                "The factory built its optimizer on other parameters (does it use net.parameters() "
                "instead of its argument?). Write lambda params: torch.optim.SGD(params, ...).",
            )
        return optimizer

    # ---- population ---------------------------------------------------------------------
    def spawn(self, seed: int) -> TorchModelWrapper:
        torch = _torch()
        member = copy.copy(self)
        try:
            module = copy.deepcopy(self._template)
        except Exception as error:  # a module holding something that cannot be copied
            raise PyBTError(
                f"TorchModelWrapper could not copy the module for a member ({type(error).__name__}: "
                f"{error}). Every member trains its own copy: make the module deep-copyable."
            ) from error
        if not self._keep_weights:
            with _seeded(torch, seed, _device_of(torch, module)):
                for submodule in module.modules():
                    reset = _reset_function(submodule)
                    if reset is not None:
                        reset()
        if self._device is not None:
            try:
                module.to(self._device)
            except (RuntimeError, AssertionError) as error:
                raise invalid_argument(
                    "TorchModelWrapper(device)",
                    str(self._device),
                    "a device this process can use",
                    f"Moving the module there failed: {error}",
                ) from error
        member.module = module
        member.optimizer = self._build_optimizer(module)
        member._seed, member._fits = int(seed), 0
        return member

    def unwrap(self) -> Any:
        """The member's ``nn.Module``, trained, in eval mode (call ``.train()`` to train it more)."""
        if self.module is not None:
            self.module.eval()
        return self.module

    def _live(self) -> tuple[Any, Any]:
        if self.module is None:
            raise PyBTError(
                "This TorchModelWrapper is a template: call spawn(seed) for a member to train (the "
                "Trainer does this for you)."
            )
        return self.module, self.optimizer

    # ---- hyperparameters ----------------------------------------------------------------------
    def default_space(self) -> dict[str, Domain]:
        """``lr: LogUniform(1e-5, 1e-1)`` and ``batch_size: IntUniform(8, 512, log=True)``."""
        space: dict[str, Domain] = {}
        if "lr" in self._tunable:
            space["lr"] = LogUniform(1e-5, 1e-1)
        space["batch_size"] = IntUniform(8, 512, log=True)
        return space

    def check_hyperparameters(self, space: Mapping[str, Domain]) -> None:
        self._space_names = frozenset(space)
        if self._train_step is None:
            self._check_names(space)
        # A value must have the shape of the setting it replaces: betas=(0.9, 0.999) takes
        # pairs (a Choice of tuples), lr takes numbers.
        rng = np.random.default_rng(0)
        for name in space:
            if name not in self._tunable:
                continue
            current, value = self._settings[name], space[name].sample(rng)
            if isinstance(current, tuple):
                fits = isinstance(value, (tuple, list)) and len(value) == len(current)
                fits = fits and all(_is_tunable(item) for item in value)
                expected = f"a domain of {len(current)}-tuples like {current} (e.g. a Choice of tuples)"
            else:
                fits, expected = _is_tunable(value), "a domain of numbers"
            if not fits:
                raise invalid_argument(
                    f"hyperparameters[{name!r}]", space[name], expected, f"It samples {value!r}."
                )

    def _check_names(self, names: Iterable[str]) -> None:
        for name in names:
            if name != "batch_size" and name not in self._tunable:
                raise invalid_argument(
                    "hyperparameters",
                    name,
                    f"'batch_size' or a setting of the {self._optimizer_name()} optimizer's param groups",
                    f"The tunable keys are {['batch_size', *self._tunable]}. (With train_step=, any "
                    f"other name is passed to your step.)",
                )

    def _optimizer_name(self) -> str:
        return getattr(self._optimizer, "__name__", type(self._optimizer).__name__)

    def given_hyperparameters(self, space: Mapping[str, Domain]) -> dict[str, Any]:
        given: dict[str, Any] = {}
        for name in space:
            if name == "batch_size":
                given[name] = self._given_batch_size
            elif name in self._tunable:
                given[name] = self._settings[name]
        return given

    def check_args(self, fit_args: Mapping[str, Any], eval_args: Mapping[str, Any]) -> None:
        _check_data("step_args['fit_args']", fit_args, needs_y=self._train_step is None)
        if self._eval_step is None:
            _check_data("eval_args", eval_args, needs_y=True)
        if LOADER_KEY in fit_args and "batch_size" in self._space_names:
            raise _loader_batch_size_error()
        self._given_batch_size = int(fit_args.get("batch_size") or _DEFAULT_BATCH_SIZE)

    def default_metric(self, metrics: Metrics) -> str:
        """``accuracy`` if evaluated, else ``loss``, else the first metric."""
        for name in ("accuracy", "loss"):
            if name in metrics:
                return name
        return next(iter(metrics))

    def _apply(self, hyperparameters: Mapping[str, Any]) -> None:
        """Write the optimizer settings among ``hyperparameters`` into every param group."""
        torch = _torch()
        if self._train_step is None:
            self._check_names(hyperparameters)
        for name, value in hyperparameters.items():
            if name not in self._tunable:
                continue
            for group in self.optimizer.param_groups:
                current = group.get(name)
                if isinstance(current, torch.Tensor):
                    current.fill_(value)  # a tensor setting (e.g. a capturable lr) stays a tensor
                elif isinstance(current, tuple):
                    group[name] = tuple(value)
                else:
                    group[name] = value

    # ---- training -------------------------------------------------------------------------
    def fit(self, hyperparameters: Mapping[str, Any], epochs: int, fit_args: Mapping[str, Any]) -> Metrics:
        torch = _torch()
        module, _ = self._live()
        if LOADER_KEY in fit_args and "batch_size" in hyperparameters:
            raise _loader_batch_size_error()
        self._apply(hyperparameters)
        batch_size = int(hyperparameters.get("batch_size", fit_args.get("batch_size") or _DEFAULT_BATCH_SIZE))
        self._fits += 1
        fit_seed = int(np.random.SeedSequence([self._seed, self._fits]).generate_state(1)[0])
        device = _device_of(torch, module)
        batches = _Batches(torch, fit_args, batch_size, bool(fit_args.get("shuffle", True)), module, device)
        generator = torch.Generator().manual_seed(fit_seed)
        module.train()
        metrics: Metrics = {}
        with _seeded(torch, fit_seed, device):
            for _ in range(epochs):
                if self._train_step is None:
                    metrics = self._supervised_epoch(batches.iterate(generator))
                else:
                    metrics = self._custom_epoch(batches.iterate(generator), hyperparameters)
        return metrics

    def _supervised_epoch(self, batches: Iterator[Any]) -> Metrics:
        torch = _torch()
        module, optimizer = self.module, self.optimizer
        total: Any = 0.0
        count = 0
        for batch in batches:
            inputs, targets = _split(batch)
            optimizer.zero_grad(set_to_none=True)
            loss = self._loss_value(_call(module, inputs), targets)
            loss.backward()
            optimizer.step()
            size = _batch_len(torch, targets)
            total = total + loss.detach() * size  # stays on the device: no sync per batch
            count += size
        if count == 0:
            raise invalid_argument("step_args['fit_args']", "no batches", "at least one training batch")
        return finite_metrics({"loss": _number(torch, total) / count}, "fit")

    def _custom_epoch(self, batches: Iterator[Any], hyperparameters: Mapping[str, Any]) -> Metrics:
        torch = _torch()
        sums: dict[str, Any] = {}
        counts: dict[str, int] = {}
        for batch in batches:
            result = self._train_step(self.module, self.optimizer, batch, dict(hyperparameters))
            if result is None:
                continue
            if not isinstance(result, Mapping):
                raise invalid_argument("train_step's return value", result, "a dict {metric: number} or None")
            for name, value in result.items():
                if isinstance(value, torch.Tensor):
                    value = value.detach().float().mean()  # stays on the device: no sync per batch
                elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
                    value = float(value)
                else:
                    raise invalid_argument(f"train_step metric {name!r}", value, "a number or a tensor")
                sums[name] = sums.get(name, 0.0) + value
                counts[name] = counts.get(name, 0) + 1
        means = {name: _number(torch, sums[name]) / counts[name] for name in sums}
        return finite_metrics(means, "train_step")

    def _loss_value(self, outputs: Any, targets: Any) -> Any:
        torch = _torch()
        value = self._loss(outputs, targets)
        if not isinstance(value, torch.Tensor):
            raise invalid_argument("TorchModelWrapper(loss)", value, "a loss that returns a tensor")
        return value.mean() if value.ndim > 0 else value

    def evaluate(self, eval_args: Mapping[str, Any]) -> Metrics:
        torch = _torch()
        module, _ = self._live()
        module.eval()
        with torch.no_grad():
            if self._eval_step is not None:
                result = self._eval_step(module, eval_args)
                values = result if isinstance(result, Mapping) else {"score": result}
                metrics = finite_metrics({k: _number(torch, v) for k, v in values.items()}, "eval_step")
                if not metrics:
                    raise invalid_argument("eval_step's return value", result, "a dict with a metric")
                return metrics
            return self._default_evaluation(torch, module, eval_args)

    def _default_evaluation(self, torch: Any, module: Any, eval_args: Mapping[str, Any]) -> Metrics:
        device = _device_of(torch, module)
        batch_size = int(eval_args.get("batch_size") or _EVAL_BATCH_SIZE)
        batches = _Batches(torch, eval_args, batch_size, False, module, device)
        loss_total: Any = 0.0
        correct: Any = 0
        count = 0
        classification = True
        outputs_seen, targets_seen = [], []
        for batch in batches.iterate(None):
            inputs, targets = _split(batch)
            outputs = _call(module, inputs)
            size = _batch_len(torch, targets)
            count += size
            if self._loss is not None:
                loss_total = loss_total + self._loss_value(outputs, targets) * size
            classification = classification and _is_classification(torch, outputs, targets)
            if classification:
                correct = correct + (outputs.argmax(dim=1) == targets).sum()
            if self._metrics:
                outputs_seen.append(_to_device(torch, outputs, torch.device("cpu")))
                targets_seen.append(_to_device(torch, targets, torch.device("cpu")))
        if count == 0:
            raise invalid_argument("eval_args", "no batches", "at least one batch of evaluation data")
        metrics: dict[str, Any] = {}
        if self._loss is not None:
            metrics["loss"] = _number(torch, loss_total) / count
        if classification:
            metrics["accuracy"] = _number(torch, correct) / count
        if self._metrics:
            outputs_all, targets_all = torch.cat(outputs_seen), torch.cat(targets_seen)
            for name, function in self._metrics.items():
                metrics[name] = _number(torch, function(outputs_all, targets_all))
        return finite_metrics(metrics, "evaluate")

    # ---- state ----------------------------------------------------------------------------
    def get_state(self) -> State:
        torch = _torch()
        module, optimizer = self._live()
        # The fit count seeds each fit's shuffling and dropout: part of the state, so a member
        # resumed from a checkpoint draws what it would have drawn without the interruption.
        state: State = {_FITS_KEY: np.array(self._fits, dtype=np.int64)}
        for name, tensor in module.state_dict().items():
            if not isinstance(tensor, torch.Tensor):
                raise PyBTError(
                    f"The module's state_dict holds {name!r} of type {type(tensor).__name__}; PyBT can "
                    f"copy tensors only. Keep extra state in buffers (register_buffer)."
                )
            key, array = _export(torch, f"module/{name}", tensor)
            state[key] = array
        for index, values in optimizer.state_dict()["state"].items():
            for name, value in values.items():
                where = f"{index}/{name}"
                if isinstance(value, torch.Tensor):
                    key, array = _export(torch, f"optimizer/state/{where}", value)
                    state[key] = array
                elif value is None:
                    state[f"optimizer/none/{where}"] = np.zeros(0, dtype=np.int8)
                elif isinstance(value, (bool, int, float)):
                    state[f"optimizer/python/{where}"] = np.array(value)
                else:
                    raise PyBTError(
                        f"The {type(optimizer).__name__} optimizer keeps {name!r} as a "
                        f"{type(value).__name__}; PyBT can copy optimizer state made of tensors, numbers "
                        f"and None only. Use an optimizer with such state."
                    )
        return state

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        torch = _torch()
        module, optimizer = self._live()
        module_state: dict[str, Any] = {}
        optimizer_state: dict[int, dict[str, Any]] = {}
        for full_key, array in state.items():
            if full_key == _FITS_KEY:
                continue
            key, _, dtype = full_key.partition("@")
            section, _, rest = key.partition("/")
            if section == "module":
                module_state[rest] = _import(torch, array, dtype, full_key)
                continue
            kind, _, where = rest.partition("/")
            index, _, name = where.partition("/")
            if section != "optimizer" or kind not in ("state", "python", "none") or not index.isdigit():
                raise invalid_argument("state key", full_key, "a key made by TorchModelWrapper.get_state()")
            if kind == "state":
                value = _import(torch, array, dtype, full_key)
            else:
                value = None if kind == "none" else np.asarray(array).item()
            optimizer_state.setdefault(int(index), {})[name] = value
        try:
            module.load_state_dict(module_state, strict=True)
        except RuntimeError as error:
            raise PyBTError(
                f"The state does not fit this member's module; it must come from a member of the same "
                f"template. PyTorch said: {error}"
            ) from error
        n_params = sum(len(group["params"]) for group in optimizer.param_groups)
        stray = sorted(index for index in optimizer_state if index >= n_params)
        if stray:
            raise PyBTError(
                f"The optimizer state names parameters {stray}, but this member's optimizer has "
                f"{n_params}: the state comes from a different model or optimizer."
            )
        # Keep this member's own param groups (its hyperparameters); take the donor's slots.
        groups = optimizer.state_dict()["param_groups"]
        try:
            optimizer.load_state_dict({"state": optimizer_state, "param_groups": groups})
        except (ValueError, RuntimeError, KeyError) as error:
            raise PyBTError(f"The optimizer state does not fit this member's optimizer: {error}") from error
        if _FITS_KEY in state:
            self._fits = int(np.asarray(state[_FITS_KEY]))


# ---- construction checks ------------------------------------------------------------------------
def _checked_loss(loss: Any, train_step: Any, eval_step: Any, metrics: Any) -> Callable[..., Any] | None:
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


def _received_optimizer(torch: Any, optimizer: Any) -> Any:
    # An optimizer's repr lists every param group over many lines: name its class instead.
    if isinstance(optimizer, torch.optim.Optimizer):
        return f"a {type(optimizer).__name__} instance"
    return optimizer


def _checked_metrics(metrics: Any) -> dict[str, Callable[..., Any]]:
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
    return checked


def _checked_device(torch: Any, device: Any) -> Any:
    if device is None:
        return None
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise invalid_argument(
            "TorchModelWrapper(device)", device, "a torch device such as 'cpu', 'cuda' or 'cuda:1'"
        ) from error


def _check_data(argument: str, args: Mapping[str, Any], needs_y: bool) -> None:
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
    batch_size = args.get("batch_size")
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise invalid_argument(f"{argument}['batch_size']", batch_size, "an integer >= 1")
    lengths = {name: _length(args[name]) for name in ("x", "y") if name in args}
    if len(set(lengths.values())) > 1 or min(lengths.values()) < 1:
        raise invalid_argument(
            argument, lengths, "x and y with the same number (at least one) of samples along the first axis"
        )


def _loader_batch_size_error() -> PyBTError:
    return invalid_argument(
        "hyperparameters",
        "batch_size",
        "no 'batch_size' when fit_args gives a loader (the loader makes its own batches)",
        "Leave batch_size out, e.g. hyperparameters={'lr': LogUniform(1e-5, 1e-1)}, or pass x and y "
        "arrays so PyBT batches them.",
    )


def _is_tunable(value: Any) -> bool:
    """A number-valued param group setting (lr, momentum, betas, ...), not a switch."""
    if isinstance(value, tuple):
        return len(value) > 0 and all(_is_tunable(item) for item in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """A Python value from a param group setting (a tensor lr becomes a float)."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    return value


def _reset_function(module: Any) -> Callable[[], Any] | None:
    # nn.MultiheadAttention only has the private spelling.
    for name in ("reset_parameters", "_reset_parameters"):
        function = getattr(module, name, None)
        if callable(function):
            return function
    return None


def _warn_unresettable(module: Any) -> None:
    stuck = [
        f"{prefix}.{name}" if prefix else name
        for prefix, submodule in module.named_modules()
        if _reset_function(submodule) is None
        for name, _ in submodule.named_parameters(recurse=False)
    ]
    if stuck:
        warnings.warn(
            f"TorchModelWrapper: the parameters {stuck[:5]}{' ...' if len(stuck) > 5 else ''} belong to "
            f"modules without reset_parameters(), so every member starts them from the template's "
            f"values. Give those modules a reset_parameters() to initialize each member on its own.",
            UserWarning,
            stacklevel=3,
        )
