"""Training and evaluating a group of stacked members: one batched call per batch for all of them.

A *group* is the members of a round that share a batch size and a number of epochs (see
:mod:`.executor`). Each batch, every member's own batch (its own shuffled order, as
TorchModelWrapper draws it) goes through ``vmap(functional_call(module, ...))``; the sum of the
members' losses is differentiated once with autograd (members share no weights, so each
member's gradient is its own loss's gradient), and one stacked optimizer update follows.

The forward is the batched-matmul fast path of :mod:`.batched` where the probe found it
equal to the generic one. With ``compile=True`` the optimizer's elementwise pass is compiled
with ``torch.compile`` into one loop per parameter (see :mod:`.optim`); its inputs are
tensors, so new hyperparameters do not recompile, and neither does the last partial batch
(the update sees weights, not batches): a new group size does, once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pybt.executor.vectorized.batched import batched_loss, mlp_forward, mlp_layers
from pybt.executor.vectorized.optim import round_constants, update_functions
from pybt.executor.vectorized.stack import Layout
from pybt.model.torch.batches import is_classification, to_device
from pybt.model.torch.loops import loss_value


class Engine:
    """The stacked loss, step and evaluation for one template's members."""

    def __init__(
        self, torch: Any, layout: Layout, module: Any, loss: Callable[..., Any] | None, compile: bool
    ) -> None:
        self.torch, self.layout, self.module, self.loss = torch, layout, module, loss
        # Batched-matmul forward and batched loss, kept by verify() only where they match.
        self._mlp = mlp_layers(torch, module)
        self._batched_loss = batched_loss(torch, loss) if loss is not None else None
        self._losses: Callable[..., Any] = self._stacked_losses
        self._coefficients, self._apply = update_functions(torch, layout.kind, fused=compile)
        if compile:
            # Only the update's elementwise pass: fused, it reads each weight once instead of once
            # per operation. The forward and backward are batched matrix products either way.
            self._apply = torch.compile(self._apply)

    # ---- one member, as vmap sees it -----------------------------------------------------------
    def _call(self, tensors: Mapping[str, Any], inputs: Any) -> Any:
        functional_call = self.torch.func.functional_call
        if isinstance(inputs, Mapping):
            return functional_call(self.module, dict(tensors), (), dict(inputs))
        if isinstance(inputs, (tuple, list)):
            return functional_call(self.module, dict(tensors), tuple(inputs))
        return functional_call(self.module, dict(tensors), (inputs,))

    def _member_loss(self, outputs: Any, targets: Any) -> Any:
        return loss_value(self.torch, self.loss, outputs, targets)

    # ---- stacked -----------------------------------------------------------------------------
    def others(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        """The untrained parameters and the buffers, by module name."""
        found = {name: tensors[f"param:{name}"] for name in self.layout.frozen}
        found.update({name: tensors[f"buffer:{name}"] for name in self.layout.buffers})
        return found

    def forward(self, tensors: Mapping[str, Any], inputs: Any, batched: bool, generic: bool = False) -> Any:
        """Every member's outputs ``[k, ...]`` from ``{name: [k, ...]}`` parameters and buffers, on
        per-member (``batched``) or shared inputs."""
        torch = self.torch
        if self._mlp is not None and not generic and isinstance(inputs, torch.Tensor):
            return mlp_forward(torch, self._mlp, tensors, inputs, shared=not batched)
        in_dims = (0, 0 if batched else None)
        return torch.func.vmap(self._call, in_dims=in_dims, randomness="different")(dict(tensors), inputs)

    def losses(self, outputs: Any, targets: Any, batched: bool, generic: bool = False) -> Any:
        """Each member's mean loss, ``[k]``, on per-member (``batched``) or shared targets."""
        torch = self.torch
        if self._batched_loss is not None and not generic and isinstance(targets, torch.Tensor):
            if not batched:
                targets = targets.expand(outputs.shape[0], *targets.shape)
            return self._batched_loss(outputs, targets)
        in_dims = (0, 0 if batched else None)
        return torch.func.vmap(self._member_loss, in_dims=in_dims, randomness="different")(outputs, targets)

    def member_losses(self, tensors: Mapping[str, Any], inputs: Any, targets: Any) -> Any:
        """Each member's mean loss on its own batch, ``[k]``."""
        return self.losses(self.forward(tensors, inputs, batched=True), targets, batched=True)

    def verify(self, tensors: Mapping[str, Any], inputs: Any, targets: Any) -> None:
        """Keep a fast path only if it gives what the generic path gives on this batch."""
        torch = self.torch

        def close(fast: Callable[[], Any], generic: Any) -> bool:
            try:
                value = fast()
            except Exception:  # a shape or an argument the fast path does not take
                return False
            return bool(value.shape == generic.shape and torch.allclose(value, generic, rtol=1e-4, atol=1e-5))

        with torch.no_grad():
            outputs = self.forward(tensors, inputs, batched=True, generic=True)
            if self._mlp is not None and not close(lambda: self.forward(tensors, inputs, True), outputs):
                self._mlp = None
            if self._batched_loss is not None:
                generic = self.losses(outputs, targets, batched=True, generic=True)
                if not close(lambda: self.losses(outputs, targets, batched=True), generic):
                    self._batched_loss = None

    def _stacked_losses(
        self, trained: list[Any], others: Mapping[str, Any], inputs: Any, targets: Any
    ) -> Any:
        return self.member_losses(
            {**dict(zip(self.layout.trained, trained, strict=True)), **others}, inputs, targets
        )

    def step(
        self, tensors: Mapping[str, Any], state: Mapping[str, Any], inputs: Any, targets: Any, hp: Any
    ) -> Any:
        """One batch for every member: losses, one backward, one stacked update; returns the losses."""
        torch = self.torch
        # Leaves sharing the stack's storage: the update writes the stack in place, and the stack
        # itself never requires grad (so exploit's index copies stay plain tensor writes).
        trained = [tensors[f"param:{name}"].detach().requires_grad_() for name in self.layout.trained]
        losses = self._losses(trained, self.others(tensors), inputs, targets)
        grads = list(torch.autograd.grad(losses.sum(), trained))
        with torch.no_grad():
            self._apply(trained, grads, state, self._coefficients(state, hp, trained))
        return losses.detach()

    def train(
        self,
        tensors: Mapping[str, Any],
        orders: Iterable[Any],
        x: Any,
        y: Any,
        batch_size: int,
        hp: Mapping[str, Any],
    ) -> list[Any]:
        """One epoch per ``[k, n]`` order; each epoch's mean training loss per member (``[k]`` tensors)."""
        torch, layout = self.torch, self.layout
        self.module.train()
        params = [tensors[f"param:{name}"] for name in layout.trained]
        hp = round_constants(layout.kind, hp, params)
        state = {
            slot: [tensors[f"opt:{slot}:{name}"] for name in layout.trained] for slot in layout.kind.slots
        }
        state.update({key[4:]: tensors[key] for key in ("opt:step", "opt:has_buffer") if key in tensors})
        means = []
        for order in orders:
            k, n = order.shape
            total = torch.zeros(k, dtype=torch.float64, device=order.device)
            for start in range(0, n, batch_size):
                where = order[:, start : start + batch_size]
                losses = self.step(tensors, state, take(x, where), take(y, where), hp)
                total += losses * where.shape[1]  # stays on the device: no sync per batch
            means.append(total / n)
        return means

    # ---- evaluation ---------------------------------------------------------------------------
    def outputs(self, tensors: Mapping[str, Any], inputs: Any, batched: bool) -> Any:
        """Every member's outputs, ``[k, ...]``, from the stacked tensors."""
        merged = {name: tensors[f"param:{name}"] for name in self.layout.params}
        merged.update({name: tensors[f"buffer:{name}"] for name in self.layout.buffers})
        return self.forward(merged, inputs, batched)

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
        first = tensors[f"param:{self.layout.params[0]}"]
        k, device = first.shape[0], first.device
        loss_total = torch.zeros(k, dtype=torch.float64, device=device)
        correct = torch.zeros(k, dtype=torch.long, device=device)
        count, classification = 0, True
        seen_outputs: list[Any] = []
        seen_targets: list[Any] = []
        with torch.no_grad():
            for inputs, targets in batches:
                outputs = self.outputs(tensors, inputs, batched=False)
                size = int(targets.shape[0]) if getattr(targets, "ndim", 0) > 0 else 1
                count += size
                if self.loss is not None:
                    loss_total += self.losses(outputs, targets, batched=False) * size
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


def take(value: Any, where: Any) -> Any:
    """The samples at ``where`` (``[k, b]`` indices) of an array, or of a tuple or dict of them:
    ``[k, b, ...]`` (``index_select`` copies rows faster than advanced indexing)."""
    if isinstance(value, tuple):
        return tuple(take(item, where) for item in value)
    if isinstance(value, dict):
        return {key: take(item, where) for key, item in value.items()}
    return value.index_select(0, where.reshape(-1)).view(*where.shape, *value.shape[1:])
