"""SGD, Adam and AdamW over a stacked population: one update for every member at once.

Each trained parameter of ``k`` members is one ``[k, *shape]`` tensor (see :mod:`.stack`), and
so is each optimizer slot of it (momentum buffer, Adam moments). Each member's settings
(``lr``, ``momentum``, ``betas``, ...) are ``[k, 1]`` tensors, broadcast over its rows, so one
update applies every member's own hyperparameters, and under ``torch.compile`` new values are
new inputs, not a new graph. The updates use ``torch._foreach_*`` ops: one call per operation
for all parameters.

The arithmetic follows ``torch.optim``'s single-tensor path (what the in-process executor
runs on a CPU), so a member ends an epoch with its in-process weights up to float rounding.
Updates run under ``no_grad`` and outside ``vmap`` (a value written into a tensor made inside
a vmapped function fails), in place, reusing the gradients as scratch space: on a CPU a fresh
temporary of the population's size per operation costs more than the arithmetic.
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
        """The state tensors shaped like each parameter, named as ``torch.optim`` names them."""
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


def empty_state(torch: Any, kind: OptimizerKind, params: Mapping[str, Any]) -> dict[str, Any]:
    """Fresh optimizer state (no step taken yet) for stacked trained ``params`` ``{name: [k, ...]}``."""
    state = {
        f"opt:{slot}:{name}": torch.zeros_like(param)  # zeros_like keeps the parameter's memory layout
        for slot in kind.slots
        for name, param in params.items()
    }
    k = next(iter(params.values())).shape[0] if params else 0
    device = next(iter(params.values())).device if params else None
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
        names = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
        return {name: column([float(member[name]) for member in settings]) for name in names}
    return {
        "lr": column([float(member["lr"]) for member in settings]),
        "beta1": column([float(member["betas"][0]) for member in settings]),
        "beta2": column([float(member["betas"][1]) for member in settings]),
        "eps": column([float(member["eps"]) for member in settings]),
        "weight_decay": column([float(member["weight_decay"]) for member in settings]),
    }


def per_param(column: Any, params: Sequence[Any]) -> list[Any]:
    """A ``[k, 1]`` column as one ``[k, 1, ...]`` view per parameter, in the parameter's dtype."""
    cast: dict[Any, Any] = {}
    views = []
    for param in params:
        if param.dtype not in cast:
            cast[param.dtype] = column.to(param.dtype).view(-1)
        views.append(cast[param.dtype].view(-1, *([1] * (param.ndim - 1))))
    return views


def round_constants(kind: OptimizerKind, hp: Mapping[str, Any], params: Sequence[Any]) -> dict[str, Any]:
    """The per-parameter views of the coefficients that stay fixed for a round (made once, not per batch)."""
    if kind.is_sgd:
        names = {"weight_decay": hp["weight_decay"], "-lr": -hp["lr"]}
    else:
        names = {
            "1-beta1": 1 - hp["beta1"],
            "1-beta2": 1 - hp["beta2"],
            "decay": 1 - hp["lr"] * hp["weight_decay"] if kind.decoupled else hp["weight_decay"],
        }
    constants = {f"each:{name}": per_param(column, params) for name, column in names.items()}
    return {**hp, **constants, "any_decay": bool((hp["weight_decay"] != 0).any())}


# ---- the updates ---------------------------------------------------------------------------------
# Each update is two parts: the per-member coefficients of this step ([k, 1] columns, a handful
# of tiny ops, which also advance the step counts), and the elementwise pass over the members'
# weights that applies them. Only the second is compiled with compile=True: computed inside a
# compiled loop, a per-member power (Adam's bias correction) would be recomputed per element.
def sgd_coefficients(
    torch: Any, state: Mapping[str, Any], hp: Mapping[str, Any], params: list[Any]
) -> dict[str, Any]:
    momentum = hp["momentum"]
    has_buffer = state["has_buffer"].unsqueeze(1)
    active, nesterov = momentum != 0, hp["nesterov"] != 0
    # A member with momentum 0 leaves its buffer alone; a member's first step with momentum
    # starts its buffer at the gradient (torch.optim clones it), later ones average into it.
    keep = torch.where(active, torch.where(has_buffer, momentum, 0.0), 1.0)
    add = torch.where(active, torch.where(has_buffer, 1 - hp["dampening"], 1.0), 0.0)
    state["has_buffer"].logical_or_(active.squeeze(1))
    # The direction: the gradient (no momentum), the buffer, or gradient + momentum * buffer.
    from_grad = torch.where(active & ~nesterov, 0.0, 1.0)
    from_buffer = torch.where(active, torch.where(nesterov, momentum, 1.0), 0.0)
    columns = {"keep": keep, "add": add, "from_grad": from_grad, "from_buffer": from_buffer}
    coefficients = {name: per_param(column, params) for name, column in columns.items()}
    return {**coefficients, "decay": hp["each:weight_decay"], "-lr": hp["each:-lr"]}


def sgd_apply(
    torch: Any,
    params: list[Any],
    grads: list[Any],
    slots: Mapping[str, list[Any]],
    c: Mapping[str, Any],
    kind: OptimizerKind,
) -> None:
    """``torch.optim.SGD``'s step for every member; ``grads`` are overwritten."""
    if kind.maximize:
        torch._foreach_neg_(grads)
    torch._foreach_addcmul_(grads, params, c["decay"])
    buffers = slots["momentum_buffer"]
    torch._foreach_mul_(buffers, c["keep"])
    torch._foreach_addcmul_(buffers, grads, c["add"])
    torch._foreach_mul_(grads, c["from_grad"])
    torch._foreach_addcmul_(grads, buffers, c["from_buffer"])
    torch._foreach_addcmul_(params, grads, c["-lr"])


def adam_coefficients(
    torch: Any, state: Mapping[str, Any], hp: Mapping[str, Any], params: list[Any]
) -> dict[str, Any]:
    step = state["step"]
    step.add_(1)
    steps = step.unsqueeze(1)
    bias_correction1 = 1 - hp["beta1"] ** steps
    bias_correction2_sqrt = (1 - hp["beta2"] ** steps).sqrt()
    # torch.optim: p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps). The per-member step size goes
    # into the denominator, sqrt(v) * bc1 / (lr sqrt(bc2)) + eps bc1 / lr, so the last pass is one
    # addcdiv (lr = 0 makes the denominator infinite, and the update 0, as it should be).
    scale = bias_correction1 / (hp["lr"] * bias_correction2_sqrt)
    offset = hp["eps"] * bias_correction1 / hp["lr"]
    fixed = {key: hp[key] for key in ("each:decay", "each:1-beta1", "each:1-beta2", "any_decay")}
    return {**fixed, "scale": per_param(scale, params), "offset": per_param(offset, params)}


def adam_apply(
    torch: Any,
    params: list[Any],
    grads: list[Any],
    slots: Mapping[str, list[Any]],
    c: Mapping[str, Any],
    kind: OptimizerKind,
) -> None:
    """``torch.optim.Adam``/``AdamW``'s step for every member; ``grads`` are overwritten."""
    if kind.maximize:
        torch._foreach_neg_(grads)
    if kind.decoupled:
        torch._foreach_mul_(params, c["each:decay"])
    elif c["any_decay"]:
        torch._foreach_addcmul_(grads, params, c["each:decay"])
    exp_avgs, exp_avg_sqs = slots["exp_avg"], slots["exp_avg_sq"]
    torch._foreach_lerp_(exp_avgs, grads, c["each:1-beta1"])
    torch._foreach_mul_(grads, grads)  # from here on, the gradients are scratch space
    torch._foreach_lerp_(exp_avg_sqs, grads, c["each:1-beta2"])  # beta2 v + (1 - beta2) g^2
    second = exp_avg_sqs
    if kind.amsgrad:
        second = slots["max_exp_avg_sq"]
        torch._foreach_maximum_(second, exp_avg_sqs)
    # sqrt(0) is several times slower than sqrt(x > 0) on some CPUs, and a weight that never
    # gets a gradient (an always-blank input pixel) keeps v = 0; 1e-30 under the root moves the
    # denominator by 1e-15, far below eps (and such a weight's update is 0 / denominator anyway).
    torch._foreach_copy_(grads, second)
    torch._foreach_add_(grads, 1e-30)
    torch._foreach_sqrt_(grads)
    torch._foreach_mul_(grads, c["scale"])
    torch._foreach_add_(grads, c["offset"])
    torch._foreach_addcdiv_(params, exp_avgs, grads, value=-1)


# ---- the same, written for torch.compile -----------------------------------------------------------
# In place with foreach ops (above) is fastest eager, but compiled it makes inductor allocate a
# buffer per intermediate (the gradients are inputs it must write back). Written as expressions
# that only assign the results, each parameter's update compiles into one loop over its numbers.
def sgd_fused(
    params: list[Any],
    grads: list[Any],
    slots: Mapping[str, list[Any]],
    c: Mapping[str, Any],
    kind: OptimizerKind,
) -> None:
    for i, (param, grad, buffer) in enumerate(zip(params, grads, slots["momentum_buffer"], strict=True)):
        grad = (-grad if kind.maximize else grad) + param * c["decay"][i]
        new_buffer = buffer * c["keep"][i] + grad * c["add"][i]
        direction = grad * c["from_grad"][i] + new_buffer * c["from_buffer"][i]
        param.copy_(param + direction * c["-lr"][i])
        buffer.copy_(new_buffer)


def adam_fused(
    params: list[Any],
    grads: list[Any],
    slots: Mapping[str, list[Any]],
    c: Mapping[str, Any],
    kind: OptimizerKind,
) -> None:
    moments = zip(params, grads, slots["exp_avg"], slots["exp_avg_sq"], strict=True)
    for i, (param, grad, exp_avg, exp_avg_sq) in enumerate(moments):
        grad = -grad if kind.maximize else grad
        if kind.decoupled:
            param = param * c["each:decay"][i]
        elif c["any_decay"]:
            grad = grad + param * c["each:decay"][i]
        new_avg = exp_avg + (grad - exp_avg) * c["each:1-beta1"][i]
        new_sq = exp_avg_sq + (grad * grad - exp_avg_sq) * c["each:1-beta2"][i]
        second = new_sq
        if kind.amsgrad:
            second = slots["max_exp_avg_sq"][i].maximum(new_sq)
            slots["max_exp_avg_sq"][i].copy_(second)
        denominator = (second + 1e-30).sqrt() * c["scale"][i] + c["offset"][i]
        params[i].copy_(param - new_avg / denominator)
        exp_avg.copy_(new_avg)
        exp_avg_sq.copy_(new_sq)


def update_functions(
    torch: Any, kind: OptimizerKind, fused: bool = False
) -> tuple[Callable[..., Any], Callable[..., None]]:
    """``coefficients(state, hp, params)`` (``hp`` from :func:`round_constants`) and
    ``apply(params, grads, slots, coefficients)`` for this optimizer kind; ``fused``: the
    version written for ``torch.compile``."""
    if kind.is_sgd:
        coefficients = lambda state, hp, params: sgd_coefficients(torch, state, hp, params)  # noqa: E731
        if fused:
            return coefficients, lambda params, grads, slots, c: sgd_fused(params, grads, slots, c, kind)
        return coefficients, lambda params, grads, slots, c: sgd_apply(torch, params, grads, slots, c, kind)
    coefficients = lambda state, hp, params: adam_coefficients(torch, state, hp, params)  # noqa: E731
    if fused:
        return coefficients, lambda params, grads, slots, c: adam_fused(params, grads, slots, c, kind)
    return coefficients, lambda params, grads, slots, c: adam_apply(torch, params, grads, slots, c, kind)
