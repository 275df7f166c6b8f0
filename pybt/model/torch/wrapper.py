"""TorchModelWrapper: a ``torch.nn.Module``, its optimizer and its loss as a PBT member.

The class reads as what a member does: it is built and checked once as a template, prepared
with the run's space and data, spawned once per member, then trains, scores and hands its
state over. How data reaches the module (:mod:`.batches`), the loops (:mod:`.loops`), the
optimizer (:mod:`.optimizer`) and the state's layout (:mod:`.state`) live beside it.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from pybt._imports import require
from pybt._validate import check_mapping
from pybt.errors import PyBTError, describe_exception, invalid_argument
from pybt.model.base import Metrics, ModelWrapper, State
from pybt.model.torch import checks, loops
from pybt.model.torch.batches import LOADER_KEY, Batches, device_of, seeded
from pybt.model.torch.optimizer import (
    build_optimizer,
    check_names,
    check_values,
    group_settings,
    is_tunable,
    set_hyperparameters,
)
from pybt.model.torch.state import export_state, import_state
from pybt.space import Domain, IntUniform, LogUniform

if TYPE_CHECKING:
    import torch

DEFAULT_BATCH_SIZE = 32


def _torch() -> ModuleType:
    # Imported when a wrapper is built or used, never when this module is: ``import pybt`` and
    # ``from pybt.model import TorchModelWrapper`` work without PyTorch.
    return require("torch", "torch", "PyTorch")


@dataclass(frozen=True)
class TorchParts:
    """What a TorchModelWrapper is made of, read-only: for executors that train its members
    their own way (the vectorized executor stacks them)."""

    module: Any  # the template module
    optimizer: Callable[..., Any]
    optimizer_kwargs: Mapping[str, Any]
    optimizer_name: str
    tunable: tuple[str, ...]  # param-group settings PBT can set
    loss: Callable[..., Any] | None
    metrics: Mapping[str, Callable[..., Any]]
    train_step: Callable[..., Any] | None
    eval_step: Callable[..., Any] | None
    device: Any


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

    Order of calls: the trainer calls :meth:`prepare` once on the template (which checks the
    space and the data and keeps the batch size given in ``fit_args``), then
    :meth:`given_hyperparameters`, then :meth:`spawn` for each member. The ``check_*`` hooks are
    pure: they only raise.
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
        checks.check_module(torch, module)
        checks.check_optimizer_factory(torch, optimizer)
        self._optimizer_kwargs = check_mapping(
            "TorchModelWrapper(optimizer_kwargs)", optimizer_kwargs, "{'lr': 0.1}"
        )
        checks.check_steps(train_step, eval_step)
        checks.check_keep_weights(keep_weights)
        self._loss = checks.checked_loss(loss, train_step, eval_step, metrics)
        self._metrics = checks.checked_metrics(metrics, eval_step)
        self._device = checks.checked_device(torch, device)

        self._template = module
        self._optimizer = optimizer
        self._train_step, self._eval_step = train_step, eval_step
        self._keep_weights = keep_weights
        # Build one optimizer now, so a bad optimizer fails here and not in every member; keep
        # only its plain settings (not the optimizer, so the template pickles small and clean).
        self._settings = group_settings(build_optimizer(torch, optimizer, self._optimizer_kwargs, module))
        self._tunable = sorted(key for key, value in self._settings.items() if is_tunable(value))
        if not keep_weights:
            checks.warn_unresettable(module)

        # Set by prepare(): the batch size fit_args gives, which member 0 starts from.
        self._given_batch_size = DEFAULT_BATCH_SIZE
        self.module: Any = None  # members only (set by spawn)
        self.optimizer: Any = None
        self._seed = 0
        self._fits = 0

    # ---- population ---------------------------------------------------------------------
    def spawn(self, seed: int) -> TorchModelWrapper:
        """A member: a deep copy of the module, re-initialized under ``seed``, and its own optimizer."""
        torch = _torch()
        member = copy.copy(self)
        try:
            module = copy.deepcopy(self._template)
        except Exception as error:  # a module holding something that cannot be copied
            raise PyBTError(
                f"TorchModelWrapper could not copy the module for a member ({describe_exception(error)}). "
                f"Every member trains its own copy: make the module deep-copyable."
            ) from error
        if not self._keep_weights:
            with seeded(torch, seed, device_of(torch, module)):
                for submodule in module.modules():
                    reset = checks.reset_function(submodule)
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
        member.optimizer = build_optimizer(torch, self._optimizer, self._optimizer_kwargs, module)
        member._seed, member._fits = int(seed), 0
        return member

    def state_bytes(self) -> int | None:
        """The template's parameters and buffers, and about twice as much optimizer state."""
        tensors = [*self._template.parameters(), *self._template.buffers()]
        return 3 * sum(tensor.numel() * tensor.element_size() for tensor in tensors)

    @property
    def parts(self) -> TorchParts:
        """The module, optimizer, loss, steps and settings this wrapper was built with."""
        return TorchParts(
            module=self._template,
            optimizer=self._optimizer,
            optimizer_kwargs=MappingProxyType(dict(self._optimizer_kwargs)),
            optimizer_name=self._optimizer_name(),
            tunable=tuple(self._tunable),
            loss=self._loss,
            metrics=MappingProxyType(dict(self._metrics)),
            train_step=self._train_step,
            eval_step=self._eval_step,
            device=self._device,
        )

    def unwrap(self) -> Any:
        """The member's ``nn.Module``, trained, in eval mode (call ``.train()`` to train it more)."""
        if self.module is not None:
            self.module.eval()
        return self.module

    export_suffix = ".pt"

    def export(self, path: str | os.PathLike[str]) -> Path:
        """The module's ``state_dict`` as a ``.pt`` file: ``module.load_state_dict(torch.load(path))``."""
        torch = _torch()
        module, _ = self._live()
        target = Path(path).with_suffix(self.export_suffix)
        torch.save(module.state_dict(), target)
        return target

    def _live(self) -> tuple[Any, Any]:
        if self.module is None:
            raise PyBTError(
                "This TorchModelWrapper is a template: call spawn(seed) for a member to train (the "
                "Trainer does this for you)."
            )
        return self.module, self.optimizer

    # ---- hyperparameters and data -------------------------------------------------------------
    def default_space(self) -> dict[str, Domain]:
        """``lr: LogUniform(1e-5, 1e-1)`` and ``batch_size: IntUniform(8, 512, log=True)``."""
        space: dict[str, Domain] = {}
        if "lr" in self._tunable:
            space["lr"] = LogUniform(1e-5, 1e-1)
        space["batch_size"] = IntUniform(8, 512, log=True)
        return space

    def prepare(
        self, space: Mapping[str, Domain], fit_args: Mapping[str, Any], eval_args: Mapping[str, Any]
    ) -> None:
        """Check the space and the data, then keep the batch size ``fit_args`` gives.

        Besides the two checks, refuses a ``batch_size`` hyperparameter when ``fit_args`` gives a
        loader (which makes its own batches). The kept batch size is what
        :meth:`given_hyperparameters` reports for ``batch_size``.
        """
        super().prepare(space, fit_args, eval_args)
        if LOADER_KEY in fit_args and "batch_size" in space:
            raise checks.loader_batch_size_error()
        self._given_batch_size = int(fit_args.get("batch_size") or DEFAULT_BATCH_SIZE)

    def check_hyperparameters(self, space: Mapping[str, Domain]) -> None:
        """Refuse names the optimizer does not have (unless a ``train_step`` takes them) and
        domains whose values do not fit the setting they replace. Changes nothing."""
        if self._train_step is None:
            check_names(space, self._tunable, self._optimizer_name())
        check_values(space, self._settings, self._tunable)

    def check_args(self, fit_args: Mapping[str, Any], eval_args: Mapping[str, Any]) -> None:
        """Refuse data the default loops cannot batch. Changes nothing."""
        checks.check_data("step_args['fit_args']", fit_args, needs_y=self._train_step is None)
        if self._eval_step is None:
            checks.check_data("eval_args", eval_args, needs_y=True)

    def given_hyperparameters(self, space: Mapping[str, Domain]) -> dict[str, Any]:
        """The optimizer's settings and the batch size kept by :meth:`prepare` (called after it)."""
        given: dict[str, Any] = {}
        for name in space:
            if name == "batch_size":
                given[name] = self._given_batch_size
            elif name in self._tunable:
                given[name] = self._settings[name]
        return given

    def default_metric(self, metrics: Metrics) -> str:
        """``accuracy`` if evaluated, else ``loss``, else the first metric."""
        for name in ("accuracy", "loss"):
            if name in metrics:
                return name
        return next(iter(metrics))

    def _optimizer_name(self) -> str:
        return getattr(self._optimizer, "__name__", type(self._optimizer).__name__)

    # ---- training -------------------------------------------------------------------------
    def fit(self, hyperparameters: Mapping[str, Any], epochs: int, fit_args: Mapping[str, Any]) -> Metrics:
        """Train ``epochs`` epochs; returns the last epoch's metrics.

        The optimizer settings among ``hyperparameters`` are written into every param group
        first, so a member's explored values win over the ones it copied in an exploit.
        """
        torch = _torch()
        module, optimizer = self._live()
        if LOADER_KEY in fit_args and "batch_size" in hyperparameters:
            raise checks.loader_batch_size_error()
        if self._train_step is None:
            check_names(hyperparameters, self._tunable, self._optimizer_name())
        set_hyperparameters(torch, optimizer, hyperparameters, self._tunable)
        batch_size = int(hyperparameters.get("batch_size", fit_args.get("batch_size") or DEFAULT_BATCH_SIZE))
        self._fits += 1
        # Shuffling and dropout draw from the member's seed and fit count, inside fork_rng, so a
        # seeded run repeats exactly and the global RNG is left alone.
        fit_seed = int(np.random.SeedSequence([self._seed, self._fits]).generate_state(1)[0])
        device = device_of(torch, module)
        batches = Batches(torch, fit_args, batch_size, bool(fit_args.get("shuffle", True)), module, device)
        generator = torch.Generator().manual_seed(fit_seed)
        module.train()
        metrics: Metrics = {}
        with seeded(torch, fit_seed, device):
            for _ in range(epochs):
                if self._train_step is None:
                    metrics = loops.supervised_epoch(
                        torch, module, optimizer, self._loss, batches.iterate(generator)
                    )
                else:
                    metrics = loops.custom_epoch(
                        torch,
                        self._train_step,
                        module,
                        optimizer,
                        batches.iterate(generator),
                        hyperparameters,
                    )
        return metrics

    def evaluate(self, eval_args: Mapping[str, Any]) -> Metrics:
        """Score the member in eval mode, without gradients."""
        torch = _torch()
        module, _ = self._live()
        module.eval()
        with torch.no_grad():
            if self._eval_step is not None:
                return loops.custom_evaluation(torch, self._eval_step, module, eval_args)
            return loops.default_evaluation(torch, module, self._loss, self._metrics, eval_args)

    # ---- state ----------------------------------------------------------------------------
    def get_state(self) -> State:
        """Copies of the weights, buffers, optimizer slots and fit count (see :mod:`.state`)."""
        module, optimizer = self._live()
        return export_state(_torch(), module, optimizer, self._fits)

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Take over another member's weights and optimizer slots; keep this member's settings."""
        module, optimizer = self._live()
        fits = import_state(_torch(), module, optimizer, state)
        if fits is not None:
            self._fits = fits
