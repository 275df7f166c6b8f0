"""Training and evaluating a group of stacked members: one batched call per batch for all of them.

A *group* is the members of a round that share a batch size and a number of epochs (see
:mod:`.executor`). Each batch, every member's own batch (its own shuffled order, as
TorchModelWrapper draws it) goes through ``vmap(functional_call(module, ...))``; the sum of the
members' losses is differentiated once with autograd (members share no weights, so each
member's gradient is its own loss's gradient), and one stacked optimizer update follows.

With ``compile=True`` the stacked loss (forward and backward) and the update are compiled with
``torch.compile``. Settings are tensors, so new hyperparameters do not recompile; the last
partial batch and a new group size do once each (the second shape is compiled dynamic).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

from pybt.executor.vectorized.optim import update_function
from pybt.executor.vectorized.stack import Layout
from pybt.model.torch.batches import _take, is_classification, to_device
from pybt.model.torch.loops import loss_value


class Engine:
    """The stacked loss, step and evaluation for one template's members."""

    def __init__(
        self, torch: Any, layout: Layout, module: Any, loss: Callable[..., Any], compile: bool
    ) -> None:
        self.torch, self.layout, self.module, self.loss = torch, layout, module, loss
        self._losses: Callable[..., Any] = self._stacked_losses
        self._update: Callable[..., Any] = update_function(torch, layout.kind)
        if compile:
            # dynamic=None: a shape seen a second time (last batch, group size) is compiled
            # dynamic once, instead of one graph per shape up to the recompile limit.
            self._losses = torch.compile(self._stacked_losses)
            self._update = torch.compile(self._update)

    # ---- one member, as vmap sees it -----------------------------------------------------------
    def _call(self, tensors: Mapping[str, Any], inputs: Any) -> Any:
        functional_call = self.torch.func.functional_call
        if isinstance(inputs, Mapping):
            return functional_call(self.module, dict(tensors), (), dict(inputs))
        if isinstance(inputs, (tuple, list)):
            return functional_call(self.module, dict(tensors), tuple(inputs))
        return functional_call(self.module, dict(tensors), (inputs,))

    def _member_loss(self, tensors: Mapping[str, Any], inputs: Any, targets: Any) -> Any:
        return loss_value(self.torch, self.loss, self._call(tensors, inputs), targets)

    # ---- stacked -----------------------------------------------------------------------------
    def others(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        """The untrained parameters and the buffers, by module name."""
        found = {name: tensors[f"param:{name}"] for name in self.layout.frozen}
        found.update({name: tensors[f"buffer:{name}"] for name in self.layout.buffers})
        return found

    def member_losses(self, tensors: Mapping[str, Any], inputs: Any, targets: Any) -> Any:
        """Each member's mean loss on its own batch, ``[k]``."""
        vmap = self.torch.func.vmap
        return vmap(self._member_loss, randomness="different")(dict(tensors), inputs, targets)

    def _stacked_losses(self, trained: Any, others: Mapping[str, Any], inputs: Any, targets: Any) -> Any:
        return self.member_losses({**self.layout.views(trained), **others}, inputs, targets)

    def step(self, tensors: dict[str, Any], inputs: Any, targets: Any, hp: Mapping[str, Any]) -> Any:
        """One batch for every member: losses, one backward, one stacked update; returns the losses."""
        torch = self.torch
        # A leaf sharing the stack's storage: the update writes the stack in place, and the stack
        # itself never requires grad (so exploit's index copies stay plain tensor writes).
        trained = tensors["trained"].detach().requires_grad_()
        losses = self._losses(trained, self.others(tensors), inputs, targets)
        (grad,) = torch.autograd.grad(losses.sum(), trained)
        with torch.no_grad():
            self._update(trained, grad, tensors, hp)
        return losses.detach()

    def train(
        self,
        tensors: dict[str, Any],
        orders: Iterable[Any],
        x: Any,
        y: Any,
        batch_size: int,
        hp: Mapping[str, Any],
    ) -> list[Any]:
        """One epoch per ``[k, n]`` order; each epoch's mean training loss per member (``[k]`` tensors)."""
        torch = self.torch
        self.module.train()
        means = []
        for order in orders:
            k, n = order.shape
            total = torch.zeros(k, dtype=torch.float64, device=order.device)
            for start in range(0, n, batch_size):
                where = order[:, start : start + batch_size]
                losses = self.step(tensors, _take(x, where), _take(y, where), hp)
                total += losses * where.shape[1]  # stays on the device: no sync per batch
            means.append(total / n)
        return means

    # ---- evaluation ---------------------------------------------------------------------------
    def outputs(self, tensors: Mapping[str, Any], inputs: Any, batched: bool) -> Any:
        """Every member's outputs, ``[k, ...]``, on shared (or, ``batched``, per-member) inputs."""
        vmap = self.torch.func.vmap
        merged = {**self.layout.views(tensors["trained"]), **self.others(tensors)}
        return vmap(self._call, in_dims=(0, 0 if batched else None), randomness="different")(merged, inputs)

    def evaluate(
        self, tensors: Mapping[str, Any], batches: Iterable[Any], keep_outputs: bool
    ) -> dict[str, Any]:
        """TorchModelWrapper's default evaluation for every member at once.

        Returns ``count``, ``loss`` and ``accuracy`` (``[k]`` tensors; accuracy only for
        ``[N, C]`` logits of integer classes) and, with ``keep_outputs``, every member's outputs
        and the targets on the CPU (``outputs``: ``[k, N, ...]``), for the user's metrics.
        """
        torch = self.torch
        self.module.eval()
        k = tensors["trained"].shape[0]
        device = tensors["trained"].device
        loss_total = torch.zeros(k, dtype=torch.float64, device=device)
        correct = torch.zeros(k, dtype=torch.long, device=device)
        count, classification = 0, True
        seen_outputs: list[Any] = []
        seen_targets: list[Any] = []
        vmapped_loss = torch.func.vmap(partial(loss_value, torch, self.loss), in_dims=(0, None))
        with torch.no_grad():
            for inputs, targets in batches:
                outputs = self.outputs(tensors, inputs, batched=False)
                size = int(targets.shape[0]) if getattr(targets, "ndim", 0) > 0 else 1
                count += size
                if self.loss is not None:
                    loss_total += vmapped_loss(outputs, targets) * size
                classification = classification and is_classification(torch, outputs[0], targets)
                if classification:
                    correct += (outputs.argmax(dim=2) == targets).sum(dim=1)
                if keep_outputs:
                    seen_outputs.append(to_device(torch, outputs, torch.device("cpu")))
                    seen_targets.append(to_device(torch, targets, torch.device("cpu")))
        results: dict[str, Any] = {"count": count}
        if self.loss is not None:
            results["loss"] = loss_total / max(count, 1)
        if classification and count:
            results["accuracy"] = correct.double() / count
        if keep_outputs and count:
            results["outputs"] = torch.cat(seen_outputs, dim=1)
            results["targets"] = torch.cat(seen_targets)
        return results
