"""Faster stacked forwards and losses for common cases, used only where they match the generic one.

The generic path runs ``vmap(functional_call(module, ...))`` and ``vmap(loss)``: any module and
loss that vmap can run. For the most common small models it costs more than the arithmetic:

- an ``nn.Sequential`` of ``nn.Linear`` and elementwise layers (ReLU, Tanh, GELU, Dropout, ...)
  runs as a chain of batched matrix products (``baddbmm``), one per layer for all members;
- ``nn.CrossEntropyLoss``, ``nn.MSELoss`` and ``nn.L1Loss`` (mean reduction, no class weights)
  run once over every member's batch (``reduction="none"``) and are averaged per member.

The probe (:mod:`.checks`) runs both paths on a few samples and keeps a fast one only when its
results equal the generic one's, so a module or loss that only looks like these (a subclass,
a hook, an unusual shape) falls back to the generic path instead of training differently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# Layers without parameters that act on each number alone, whatever the tensor's shape.
ELEMENTWISE = (
    "ReLU", "ReLU6", "LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Tanh", "Sigmoid",
    "Softplus", "Hardtanh", "Hardswish", "Hardsigmoid", "Identity", "Dropout",
)  # fmt: skip


def mlp_layers(torch: Any, module: Any) -> list[tuple[str, Any]] | None:
    """``(name, layer)`` of an ``nn.Sequential`` of Linear and elementwise layers, else None."""
    nn = torch.nn
    if type(module) is not nn.Sequential or _hooked(module) or _global_hooks(torch):
        return None
    allowed = {getattr(nn, name) for name in ELEMENTWISE if hasattr(nn, name)}
    layers = list(module.named_children())
    for _, layer in layers:
        if _hooked(layer) or (type(layer) is not nn.Linear and type(layer) not in allowed):
            return None
    if not any(type(layer) is nn.Linear for _, layer in layers):
        return None
    return layers


def _hooked(module: Any) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks)


def _global_hooks(torch: Any) -> bool:
    hooks = torch.nn.modules.module
    return bool(hooks._global_forward_hooks or hooks._global_forward_pre_hooks)


def mlp_forward(
    torch: Any, layers: list[tuple[str, Any]], tensors: Mapping[str, Any], inputs: Any, shared: bool
) -> Any:
    """Every member's outputs ``[k, ..., out]`` from per-member ``[k, ...]`` inputs (or, ``shared``,
    the same inputs for every member)."""
    first = next(name for name, layer in layers if type(layer) is torch.nn.Linear)
    k = tensors[f"{first}.weight"].shape[0]
    hidden = inputs
    for name, layer in layers:
        if type(layer) is torch.nn.Linear:
            weight, bias = tensors[f"{name}.weight"], tensors.get(f"{name}.bias")
            if shared:
                hidden = hidden.expand(k, *hidden.shape)
            lead = hidden.shape[1:-1]
            flat = hidden.reshape(k, -1, hidden.shape[-1])
            if bias is None:
                flat = torch.bmm(flat, weight.transpose(1, 2))
            else:
                flat = torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2))
            hidden, shared = flat.reshape(k, *lead, weight.shape[1]), False
        else:
            hidden = layer(hidden)
    return hidden


def batched_loss(torch: Any, loss: Any) -> Callable[[Any, Any], Any] | None:
    """``losses(outputs [k, b, ...], targets [k, b, ...]) -> [k]`` for the common losses, else None."""
    nn, functional = torch.nn, torch.nn.functional
    if getattr(loss, "reduction", None) != "mean":
        return None
    if type(loss) is nn.CrossEntropyLoss and loss.weight is None:
        return lambda outputs, targets: _cross_entropy(torch, loss, outputs, targets)
    pointwise = {nn.MSELoss: functional.mse_loss, nn.L1Loss: functional.l1_loss}.get(type(loss))
    if pointwise is None:
        return None

    def elementwise(outputs: Any, targets: Any) -> Any:
        return pointwise(outputs, targets, reduction="none").reshape(outputs.shape[0], -1).mean(dim=1)

    return elementwise


def _cross_entropy(torch: Any, loss: Any, outputs: Any, targets: Any) -> Any:
    """``nn.CrossEntropyLoss`` (mean, no class weights) per member, classes along dimension 0.

    ``log_softmax`` over a short last dimension (10 classes) runs a scalar loop on the CPU, about
    20 times slower than over the first dimension of the transposed logits, which vectorizes
    across samples: the members' batches together are thousands of rows.
    """
    k, classes = outputs.shape[0], outputs.shape[2]
    logits = outputs.movedim(2, 0).reshape(classes, -1)  # [C, k * b * ...]
    log_probs = torch.log_softmax(logits, dim=0)
    smoothing = loss.label_smoothing
    if targets.is_floating_point():  # class probabilities, [k, b, C, ...]
        probs = targets.movedim(2, 0).reshape(classes, -1)
        if smoothing:
            probs = probs * (1 - smoothing) + smoothing / classes
        return -(probs * log_probs).sum(dim=0).reshape(k, -1).mean(dim=1)
    flat = targets.reshape(1, -1)
    kept = flat != loss.ignore_index
    each = -log_probs.gather(0, torch.where(kept, flat, 0)).squeeze(0)
    if smoothing:
        each = (1 - smoothing) * each - smoothing * log_probs.mean(dim=0)
    each = torch.where(kept.squeeze(0), each, 0.0)
    # The mean over the targets not ignored, as reduction="mean" takes it.
    return each.reshape(k, -1).sum(dim=1) / kept.reshape(k, -1).sum(dim=1)
