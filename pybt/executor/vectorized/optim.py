"""SGD, Adam and AdamW over a stacked population: one update for every member at once.

The trained parameters of ``k`` members are one ``[k, N]`` tensor (see :mod:`.stack`), and so
is each optimizer slot (momentum buffer, Adam moments). Each member's settings (``lr``,
``momentum``, ``betas``, ...) are ``[k, 1]`` tensors, so one update applies every member's own
hyperparameters, and under ``torch.compile`` new values are new inputs, not a new graph.

The arithmetic follows ``torch.optim``'s single-tensor path (what the in-process executor
runs on a CPU), so a member ends an epoch with its in-process weights up to float rounding.
Updates run under ``no_grad`` and outside ``vmap`` (a value written into a tensor made inside
a vmapped function fails), in place, reusing the gradient as scratch space: on a CPU a fresh
``[k, N]`` temporary per operation costs more than the arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pybt.errors import PyBTError

SUPPORTED = ("SGD", "Adam", "AdamW")


@dataclass(frozen=True)
class OptimizerKind:
    """What the template's optimizer is, as far as the stacked update needs to know."""

    name: str  # "SGD", "Adam" or "AdamW"
    amsgrad: bool = False
    maximize: bool = False
    decoupled: bool = False  # AdamW, or Adam(decoupled_weight_decay=True)

    @property
    def is_sgd(self) -> bool:
        return self.name == "SGD"

    @property
    def slots(self) -> tuple[str, ...]:
        """The ``[k, N]`` state tensors, named as ``torch.optim`` names them."""
        if self.is_sgd:
            return ("momentum_buffer",)
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())

    @property
    def settings(self) -> tuple[str, ...]:
        """The param-group settings that are per-member tensors."""
        if self.is_sgd:
            return ("lr", "momentum", "dampening", "weight_decay", "nesterov")
        return ("lr", "betas", "eps", "weight_decay")


def optimizer_kind(torch: Any, optimizer: Any) -> OptimizerKind:
    """The kind of ``optimizer``, or a PyBTError naming it when it cannot be stacked."""
    name = type(optimizer).__name__
    exact = {getattr(torch.optim, kind): kind for kind in SUPPORTED}
    if type(optimizer) not in exact:  # a subclass may change step(): only the originals are known
        raise PyBTError(
            f"VectorizedExecutor: the {name} optimizer cannot be vectorized; it supports "
            f"torch.optim.{', torch.optim.'.join(SUPPORTED)} exactly. Use an optimizer of those, or "
            f"train members one by one with the in-process executor (executor=None, SerialExecutor())."
        )
    groups = optimizer.param_groups
    first = {key: value for key, value in groups[0].items() if key != "params"}
    for group in groups[1:]:
        if {key: value for key, value in group.items() if key != "params"} != first:
            raise PyBTError(
                f"VectorizedExecutor: the {name} optimizer has {len(groups)} param groups with different "
                f"settings; a stacked update gives every parameter of a member the same settings. Use one "
                f"param group, or the in-process executor (executor=None)."
            )
    kind = exact[type(optimizer)]
    return OptimizerKind(
        name=kind,
        amsgrad=bool(first.get("amsgrad", False)),
        maximize=bool(first.get("maximize", False)),
        decoupled=kind == "AdamW" or bool(first.get("decoupled_weight_decay", False)),
    )


def empty_state(torch: Any, kind: OptimizerKind, k: int, n: int, dtype: Any, device: Any) -> dict[str, Any]:
    """Fresh optimizer state for ``k`` members of ``n`` trained numbers (no step taken yet)."""
    state = {f"opt:{slot}": torch.zeros(k, n, dtype=dtype, device=device) for slot in kind.slots}
    if kind.is_sgd:
        # torch.optim.SGD creates a member's momentum buffer at its first step with momentum.
        state["opt:has_buffer"] = torch.zeros(k, dtype=torch.bool, device=device)
    else:
        state["opt:step"] = torch.zeros(k, dtype=torch.float64, device=device)
    return state


def settings_tensors(
    torch: Any, kind: OptimizerKind, settings: Sequence[Mapping[str, Any]], device: Any
) -> dict[str, Any]:
    """Each member's settings as ``[k, 1]`` float64 tensors (exact scalars for the coefficients)."""

    def column(values: list[float]) -> Any:
        return torch.tensor(values, dtype=torch.float64, device=device).unsqueeze(1)

    if kind.is_sgd:
        return {
            name: column([float(member[name]) for member in settings])
            for name in ("lr", "momentum", "dampening", "weight_decay", "nesterov")
        }
    return {
        "lr": column([float(member["lr"]) for member in settings]),
        "beta1": column([float(member["betas"][0]) for member in settings]),
        "beta2": column([float(member["betas"][1]) for member in settings]),
        "eps": column([float(member["eps"]) for member in settings]),
        "weight_decay": column([float(member["weight_decay"]) for member in settings]),
    }


# ---- the updates ---------------------------------------------------------------------------------
def sgd_update(
    torch: Any, params: Any, grad: Any, state: dict[str, Any], hp: Mapping[str, Any], maximize: bool
) -> None:
    """``torch.optim.SGD``'s step for every member; ``grad`` is overwritten."""
    dtype = params.dtype
    if maximize:
        grad.neg_()
    grad.addcmul_(params, hp["weight_decay"].to(dtype))
    momentum, dampening = hp["momentum"], hp["dampening"]
    buffer, has_buffer = state["opt:momentum_buffer"], state["opt:has_buffer"].unsqueeze(1)
    active = momentum != 0
    # A member with momentum 0 leaves its buffer alone; a member's first step with momentum
    # starts its buffer at the gradient (torch.optim clones it), later ones average into it.
    keep = torch.where(active, torch.where(has_buffer, momentum, 0.0), 1.0)
    add = torch.where(active, torch.where(has_buffer, 1 - dampening, 1.0), 0.0)
    buffer.mul_(keep.to(dtype)).addcmul_(grad, add.to(dtype))
    state["opt:has_buffer"].logical_or_(active.squeeze(1))
    nesterov = hp["nesterov"] != 0
    # The direction: the gradient (no momentum), the buffer, or gradient + momentum * buffer.
    from_grad = torch.where(active & ~nesterov, 0.0, 1.0)
    from_buffer = torch.where(active, torch.where(nesterov, momentum, 1.0), 0.0)
    grad.mul_(from_grad.to(dtype)).addcmul_(buffer, from_buffer.to(dtype))
    params.addcmul_(grad, (-hp["lr"]).to(dtype))


def adam_update(
    torch: Any, params: Any, grad: Any, state: dict[str, Any], hp: Mapping[str, Any], kind: OptimizerKind
) -> None:
    """``torch.optim.Adam``/``AdamW``'s step for every member; ``grad`` is overwritten."""
    dtype = params.dtype
    step = state["opt:step"]
    step.add_(1)
    steps = step.unsqueeze(1)
    lr, beta1, beta2, weight_decay = hp["lr"], hp["beta1"], hp["beta2"], hp["weight_decay"]
    if kind.maximize:
        grad.neg_()
    if kind.decoupled:
        params.mul_((1 - lr * weight_decay).to(dtype))
    else:
        grad.addcmul_(params, weight_decay.to(dtype))
    exp_avg, exp_avg_sq = state["opt:exp_avg"], state["opt:exp_avg_sq"]
    exp_avg.lerp_(grad, (1 - beta1).to(dtype))
    grad.mul_(grad)  # from here on, grad is scratch space
    exp_avg_sq.mul_(beta2.to(dtype)).addcmul_(grad, (1 - beta2).to(dtype))
    second = exp_avg_sq
    if kind.amsgrad:
        second = state["opt:max_exp_avg_sq"]
        torch.maximum(second, exp_avg_sq, out=second)
    bias_correction1 = 1 - beta1**steps
    bias_correction2_sqrt = (1 - beta2**steps).sqrt()
    denom = torch.sqrt(second, out=grad).div_(bias_correction2_sqrt.to(dtype)).add_(hp["eps"].to(dtype))
    params.addcmul_(torch.div(exp_avg, denom, out=denom), (-lr / bias_correction1).to(dtype))


def update_function(torch: Any, kind: OptimizerKind) -> Callable[[Any, Any, dict[str, Any], Any], None]:
    """``update(params, grad, state, hp)`` for this optimizer kind."""
    if kind.is_sgd:
        return lambda params, grad, state, hp: sgd_update(torch, params, grad, state, hp, kind.maximize)
    return lambda params, grad, state, hp: adam_update(torch, params, grad, state, hp, kind)
