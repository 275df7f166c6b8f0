"""VectorizedExecutor: every submitted member's step in one stacked computation.

A round is what the trainer submitted before asking for results (the in-process loop submits
every live member). Its members are grouped by batch size and epochs; each group trains as
one stack (see :mod:`.engine`) and is evaluated as one. Results come back in submission order,
as from the in-process executor, so a seeded run decides exactly as it would there.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from pybt._imports import require
from pybt.errors import describe_exception, invalid_argument
from pybt.executor.base import Executor, StepResult
from pybt.executor.vectorized import checks
from pybt.executor.vectorized.engine import Engine, take
from pybt.executor.vectorized.optim import settings_tensors
from pybt.executor.vectorized.stack import Stack
from pybt.model.base import Metrics, numeric_metrics
from pybt.model.torch.batches import Batches, as_tensors, device_of, length, number, seeded, to_device
from pybt.model.torch.loops import EVAL_BATCH_SIZE, custom_evaluation
from pybt.model.torch.optimizer import check_names

DEFAULT_BATCH_SIZE = 32  # TorchModelWrapper's


def _torch() -> ModuleType:
    return require("torch", "torch", "PyTorch")


def fit_seed(seed: int, fits: int) -> int:
    """The seed of a member's ``fits``-th fit: TorchModelWrapper's, so the data orders match."""
    return int(np.random.SeedSequence([seed, fits]).generate_state(1)[0])


class VectorizedExecutor(Executor):
    """Trains a population of TorchModelWrapper members as one stack of tensors.

    Every member is a copy of one template (one architecture, one optimizer kind): parameters,
    buffers and optimizer state are stacked along a leading member dimension, each batch runs
    every member's own batch at once, and one update applies every member's own
    hyperparameters. Members keep their own data order (TorchModelWrapper's seeding), so with
    the same seed a member's weights equal its in-process ones up to float rounding; states
    have TorchModelWrapper's layout, so run folders move between the two executors.

    Args:
        device: where the whole population lives (``"cuda"``, ``"cuda:1"``, ``"cpu"``); default:
            the wrapper's ``device``, else its module's.
        compile: compile the optimizer's update with ``torch.compile`` into one pass over the
            weights. Worth it from a few dozen members on a CPU; the first round pays the
            compilation (seconds), and each new group size compiles once more.
        undo_interrupted_steps: keep a host copy of the stack before each round, so a round
            interrupted halfway (Ctrl-C) is put back and runs again whole on the next
            ``train()``, as with the in-process executor.

    Limits, checked in ``start()`` with a PyBTError that names the fix: the optimizer is
    ``torch.optim.SGD``, ``Adam`` or ``AdamW`` (one param group's settings); no ``train_step``
    (an ``eval_step`` runs member by member); training data are arrays, not a loader; the
    module runs under ``torch.func.functional_call`` and ``vmap`` (no data-dependent control
    flow, no ``.item()``); the stack fits in the device's free memory. BatchNorm keeps running
    statistics per member. Dropout masks come from one seeded generator for the whole stack,
    not from each member's own, so with dropout a run repeats, but a member's weights differ
    from its in-process run. Members are grouped by batch size: each group is one stack.
    """

    def __init__(
        self, device: Any = None, compile: bool = False, undo_interrupted_steps: bool = True
    ) -> None:
        torch = _torch()
        if device is not None:
            try:
                device = torch.device(device)
            except (RuntimeError, TypeError) as error:
                raise invalid_argument(
                    "VectorizedExecutor(device)", device, "a torch device such as 'cpu', 'cuda' or 'cuda:1'"
                ) from error
        for name, value in (("compile", compile), ("undo_interrupted_steps", undo_interrupted_steps)):
            if not isinstance(value, bool):
                raise invalid_argument(f"VectorizedExecutor({name})", value, "True or False")
        self.device, self.compile, self.undo_interrupted_steps = device, compile, undo_interrupted_steps
        self._torch = torch
        self._queue: deque[tuple[int, Mapping[str, Any], int]] = deque()
        self._done: deque[StepResult] = deque()  # trained, not yet handed out
        self._template: Any = None
        self._stack: Stack | None = None

    # ---- a run -------------------------------------------------------------------------------
    def start(self, template: Any, fit_args: Mapping[str, Any], eval_args: Mapping[str, Any]) -> None:
        torch = self._torch
        checks.check_template(template, fit_args)
        self._queue.clear()
        self._done.clear()
        self._template, self._fit_args, self._eval_args = template, fit_args, eval_args
        device = self.device or template.parts.device or device_of(torch, template.parts.module)
        scratch = template.spawn(0)  # the skeleton functional_call runs, and the door for states
        scratch.module.to(device)
        layout = checks.find_layout(torch, scratch, device)
        # Batches' conversion: floats in the module's floating dtype, integer targets as int64.
        dtype = next((p.dtype for p in scratch.module.parameters() if p.is_floating_point()), None)
        dtype = dtype or torch.get_default_dtype()
        self._x = to_device(torch, as_tensors(torch, fit_args["x"], dtype, "x", targets=False), device)
        self._y = to_device(torch, as_tensors(torch, fit_args["y"], dtype, "y", targets=True), device)
        self._n = length(fit_args["x"])
        self._eval_batches = None
        if template.parts.eval_step is None:  # arrays converted once, not at every evaluation
            size = int(eval_args.get("batch_size") or EVAL_BATCH_SIZE)
            self._eval_batches = Batches(torch, eval_args, size, False, scratch.module, device)
        self._engine = Engine(torch, layout, scratch.module, template.parts.loss, self.compile)

        probe_stack = Stack(torch, layout, scratch)
        for member in (0, 1):
            probe_stack.place(member, 0, scratch.module)
        probe_stack.materialize()
        samples = min(self._n, 4)
        where = torch.arange(samples, device=device).expand(2, samples)
        self._per_sample = checks.probe(
            torch,
            self._engine,
            layout,
            probe_stack.tensors,
            (take(self._x, where), take(self._y, where)),
            samples,
        )
        self._stack = Stack(torch, layout, scratch)
        trained = set(layout.trained)
        self._per_member = sum(
            tensor.numel() * tensor.element_size() * (1 + len(layout.kind.slots) * (name in trained))
            for name, tensor in [*scratch.module.named_parameters(), *scratch.module.named_buffers()]
        )

    def place(self, member_id: int, seed: int) -> None:
        stack = self._live()
        stack.place(member_id, seed, self._template.spawn(seed).module)
        self._check_memory(stack.size, self._default_batch_size())

    def submit(self, member_id: int, hyperparameters: Mapping[str, Any], epochs: int) -> None:
        self._queue.append((member_id, hyperparameters, epochs))

    @property
    def pending(self) -> int:
        return len(self._queue) + len(self._done)

    def completed(self) -> Iterator[StepResult]:
        while self._done or self._queue:
            if not self._done:
                self._run_round()
            yield self._done.popleft()

    # ---- states ------------------------------------------------------------------------------
    def copy_states(self, pairs: Sequence[tuple[int, int]]) -> None:
        if pairs:
            self._live().copy(pairs)

    def get_state(self, member_id: int) -> dict[str, np.ndarray]:
        return self._live().get_state(member_id)

    def set_state(self, member_id: int, state: Mapping[str, np.ndarray]) -> None:
        self._live().set_state(member_id, state)

    def model(self, member_id: int) -> Any:
        """A copy of the member's ``nn.Module``, on the executor's device, in eval mode."""
        module = copy.deepcopy(self._live().load_scratch(member_id, with_optimizer=False).module)
        return module.eval()

    def close(self) -> None:
        self._stack, self._engine, self._template = None, None, None  # type: ignore[assignment]
        self._queue.clear()
        self._done.clear()

    def _live(self) -> Stack:
        if self._stack is None:
            raise RuntimeError("VectorizedExecutor: start() comes before members are placed or used.")
        return self._stack

    # ---- a round ------------------------------------------------------------------------------
    def _run_round(self) -> None:
        """Train the queued steps (each member once; a second step of one member waits a round)."""
        steps: list[tuple[int, Mapping[str, Any], int]] = []
        later: deque[tuple[int, Mapping[str, Any], int]] = deque()
        for step in self._queue:
            (later if any(step[0] == taken[0] for taken in steps) else steps).append(step)
        stack = self._live()
        before = (stack.snapshot(), copy.deepcopy(stack.settings)) if self.undo_interrupted_steps else None
        try:
            results = self._train(steps)
        except BaseException:  # KeyboardInterrupt, SystemExit: _train keeps every Exception
            if before is not None:
                stack.restore(before[0])
                stack.settings[:] = before[1]
            raise
        self._queue = later
        self._done.extend(results)

    def _train(self, steps: list[tuple[int, Mapping[str, Any], int]]) -> list[StepResult]:
        results: dict[int, StepResult] = {}
        groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for position, (member, hyperparameters, epochs) in enumerate(steps):
            try:
                batch_size = self._begin_fit(member, hyperparameters)
            except Exception as error:  # as the member's fit would fail in process
                results[position] = _failed(member, epochs, error, 0.0)
                continue
            groups.setdefault((batch_size, epochs), []).append((position, member))
        for (batch_size, epochs), entries in groups.items():
            started = time.perf_counter()
            members = [member for _, member in entries]
            try:
                outcomes = self._train_group(members, batch_size, epochs)
            except Exception as error:  # the stacked step itself failed: every member of it fails
                outcomes = [error] * len(members)
            seconds = (time.perf_counter() - started) / len(members)  # each member's share
            for (position, member), outcome in zip(entries, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    results[position] = _failed(member, epochs, outcome, seconds)
                else:
                    results[position] = StepResult(member, epochs, outcome[0], outcome[1], seconds)
        return [results[position] for position in range(len(steps))]

    def _begin_fit(self, member: int, hyperparameters: Mapping[str, Any]) -> int:
        """What TorchModelWrapper.fit does before its first batch: checks, settings, fit count."""
        template, stack = self._template, self._live()
        check_names(hyperparameters, template.parts.tunable, template.parts.optimizer_name)
        row = stack.slots[member]
        settings = stack.settings[row]
        for name, value in hyperparameters.items():
            if name in template.parts.tunable:
                settings[name] = tuple(value) if isinstance(settings[name], tuple) else value
        stack.fits[row] += 1
        return max(1, int(hyperparameters.get("batch_size", self._default_batch_size())))

    def _default_batch_size(self) -> int:
        return int(self._fit_args.get("batch_size") or DEFAULT_BATCH_SIZE)

    def _train_group(self, members: list[int], batch_size: int, epochs: int) -> list[Any]:
        """Train and evaluate one group; per member ``(train_metrics, eval_metrics)`` or its error."""
        torch, stack, engine = self._torch, self._live(), self._engine
        rows = stack.rows(members)
        self._check_memory(stack.size, batch_size)
        device = stack.layout.device
        tensors = stack.gather(rows)
        hp = settings_tensors(torch, stack.layout.kind, [stack.settings[row] for row in rows], device)
        seeds = [fit_seed(stack.seeds[row], stack.fits[row]) for row in rows]
        orders = _orders(torch, seeds, self._n, epochs, bool(self._fit_args.get("shuffle", True)), device)
        dropout_seed = int(np.random.SeedSequence(seeds).generate_state(1)[0])
        with seeded(torch, dropout_seed, device):  # dropout masks: seeded, but not each member's own
            means = engine.train(tensors, orders, self._x, self._y, batch_size, hp)
        stack.scatter(rows, tensors)
        losses = torch.stack(means, dim=1).tolist()  # [k][epochs], one sync
        evaluate = self._evaluator(tensors)
        outcomes: list[Any] = []
        for index, (member, member_losses) in enumerate(zip(members, losses, strict=True)):
            try:
                # Checked epoch by epoch, as the in-process fit checks each epoch's metrics.
                train_metrics = [numeric_metrics({"loss": loss}, "fit") for loss in member_losses][-1]
                outcomes.append((train_metrics, evaluate(index, member)))
            except Exception as error:  # this member's failure, not its group's
                outcomes.append(error)
        return outcomes

    def _evaluator(self, tensors: Mapping[str, Any]) -> Callable[[int, int], Metrics]:
        """``evaluate(row in the group, member id)``: a member's evaluation metrics, raising what
        would fail its evaluation in process. The default evaluation runs once for the group."""
        torch, template = self._torch, self._template
        if self._eval_batches is None:  # the user's eval_step, on each member's own module

            def custom(_: int, member_id: int) -> Metrics:
                module = self._live().load_scratch(member_id, with_optimizer=False).module.eval()
                with torch.no_grad():
                    return custom_evaluation(torch, template.parts.eval_step, module, self._eval_args)

            return custom
        results = self._engine.evaluate(
            tensors, self._eval_batches.iterate(None), bool(template.parts.metrics)
        )
        shared = {name: results[name].tolist() for name in ("loss", "accuracy") if name in results}

        def default(index: int, _: int) -> Metrics:
            if results["count"] == 0:
                raise invalid_argument("eval_args", "no batches", "at least one batch of evaluation data")
            metrics = {name: values[index] for name, values in shared.items()}
            for name, function in template.parts.metrics.items():
                metrics[name] = number(torch, function(results["outputs"][index], results["targets"]))
            return numeric_metrics(metrics, "evaluate")

        return default

    def _check_memory(self, members: int, batch_size: int) -> None:
        stack = self._live()
        in_use = stack.stacked * self._per_member
        checks.check_memory(
            self._torch, stack.layout.device, members, self._per_member, self._per_sample, batch_size, in_use
        )


def _orders(torch: Any, seeds: list[int], n: int, epochs: int, shuffle: bool, device: Any) -> Iterator[Any]:
    """Each epoch's ``[k, n]`` sample order: each member's own, drawn as TorchModelWrapper draws it."""
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    for _ in range(epochs):
        if shuffle:
            yield torch.stack([torch.randperm(n, generator=generator) for generator in generators]).to(device)
        else:
            yield torch.arange(n, device=device).expand(len(seeds), n)


def _failed(member: int, epochs: int, error: Exception, seconds: float) -> StepResult:
    return StepResult(
        member=member, epochs=epochs, seconds=seconds, error=describe_exception(error), exception=error
    )
