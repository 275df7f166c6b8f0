"""What a member runs: one training epoch (the default supervised one or the user's
``train_step``) and one evaluation (the default one or the user's ``eval_step``).

Running totals stay on the module's device and are read once at the end, so a GPU member does
not wait for the device after every batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pybt._validate import is_real
from pybt.errors import invalid_argument
from pybt.model.base import Metrics, numeric_metrics
from pybt.model.torch.batches import (
    Batches,
    batch_len,
    call,
    device_of,
    is_classification,
    number,
    split,
    to_device,
)

EVAL_BATCH_SIZE = 256


def loss_value(torch: Any, loss: Callable[..., Any], outputs: Any, targets: Any) -> Any:
    """The loss as a scalar tensor (a per-sample loss is averaged)."""
    value = loss(outputs, targets)
    if not isinstance(value, torch.Tensor):
        raise invalid_argument("TorchModelWrapper(loss)", value, "a loss that returns a tensor")
    return value.mean() if value.ndim > 0 else value


# ---- training -----------------------------------------------------------------------------------
def supervised_epoch(
    torch: Any, module: Any, optimizer: Any, loss: Callable[..., Any], batches: Iterator[Any]
) -> Metrics:
    """One pass of zero_grad, loss, backward, step; returns the epoch's mean ``loss``."""
    total: Any = 0.0
    count = 0
    for batch in batches:
        inputs, targets = split(batch)
        optimizer.zero_grad(set_to_none=True)
        value = loss_value(torch, loss, call(module, inputs), targets)
        value.backward()
        optimizer.step()
        size = batch_len(torch, targets)
        total = total + value.detach() * size  # stays on the device: no sync per batch
        count += size
    if count == 0:
        raise invalid_argument("step_args['fit_args']", "no batches", "at least one training batch")
    return numeric_metrics({"loss": number(torch, total) / count}, "fit")


def custom_epoch(
    torch: Any,
    train_step: Callable[..., Any],
    module: Any,
    optimizer: Any,
    batches: Iterator[Any],
    hyperparameters: Mapping[str, Any],
) -> Metrics:
    """One pass of the user's ``train_step``; returns its metrics averaged over the batches."""
    sums: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for batch in batches:
        result = train_step(module, optimizer, batch, dict(hyperparameters))
        if result is None:
            continue
        if not isinstance(result, Mapping):
            raise invalid_argument("train_step's return value", result, "a dict {metric: number} or None")
        for name, value in result.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().float().mean()  # stays on the device: no sync per batch
            elif is_real(value):
                value = float(value)
            else:
                raise invalid_argument(f"train_step metric {name!r}", value, "a number or a tensor")
            sums[name] = sums.get(name, 0.0) + value
            counts[name] = counts.get(name, 0) + 1
    means = {name: number(torch, sums[name]) / counts[name] for name in sums}
    return numeric_metrics(means, "train_step")


# ---- evaluation ---------------------------------------------------------------------------------
def custom_evaluation(
    torch: Any, eval_step: Callable[..., Any], module: Any, eval_args: Mapping[str, Any]
) -> Metrics:
    """The user's ``eval_step`` (a dict of metrics, or one number named ``score``)."""
    result = eval_step(module, eval_args)
    values = result if isinstance(result, Mapping) else {"score": result}
    metrics = numeric_metrics({k: number(torch, v) for k, v in values.items()}, "eval_step")
    if not metrics:
        raise invalid_argument("eval_step's return value", result, "a dict with a metric")
    return metrics


def default_evaluation(
    torch: Any,
    module: Any,
    loss: Callable[..., Any] | None,
    metrics: Mapping[str, Callable[..., Any]],
    eval_args: Mapping[str, Any],
) -> Metrics:
    """``loss``, ``accuracy`` for ``[N, C]`` logits of integer classes, and the user's metrics."""
    device = device_of(torch, module)
    batch_size = int(eval_args.get("batch_size") or EVAL_BATCH_SIZE)
    batches = Batches(torch, eval_args, batch_size, False, module, device)
    loss_total: Any = 0.0
    correct: Any = 0
    count = 0
    classification = True
    outputs_seen, targets_seen = [], []
    for batch in batches.iterate(None):
        inputs, targets = split(batch)
        outputs = call(module, inputs)
        size = batch_len(torch, targets)
        count += size
        if loss is not None:
            loss_total = loss_total + loss_value(torch, loss, outputs, targets) * size
        classification = classification and is_classification(torch, outputs, targets)
        if classification:
            correct = correct + (outputs.argmax(dim=1) == targets).sum()
        if metrics:
            outputs_seen.append(to_device(torch, outputs, torch.device("cpu")))
            targets_seen.append(to_device(torch, targets, torch.device("cpu")))
    if count == 0:
        raise invalid_argument("eval_args", "no batches", "at least one batch of evaluation data")
    results: dict[str, Any] = {}
    if loss is not None:
        results["loss"] = number(torch, loss_total) / count
    if classification:
        results["accuracy"] = number(torch, correct) / count
    if metrics:
        outputs_all, targets_all = torch.cat(outputs_seen), torch.cat(targets_seen)
        for name, function in metrics.items():
            results[name] = number(torch, function(outputs_all, targets_all))
    return numeric_metrics(results, "evaluate")
