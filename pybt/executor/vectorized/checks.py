"""What the vectorized executor checks before it trains anything, and the layout it finds.

``start()`` refuses, with a PyBTError that names the fix, what a stacked population cannot
run: a template that is not a TorchModelWrapper, a ``train_step`` (it trains one module per
call), a training loader (each member shuffles its own arrays), an optimizer other than SGD,
Adam or AdamW, and a module that ``torch.func.functional_call`` under ``vmap`` cannot run. The
last is found by running it: two stacked copies of a member train on a few samples and are
evaluated, which also tells which parameters receive gradients and how many bytes of
activations a sample keeps for the backward pass (for the memory check).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pybt._system import available_memory
from pybt.errors import PyBTError, describe_exception, invalid_argument
from pybt.executor.vectorized.optim import optimizer_kind
from pybt.executor.vectorized.stack import Layout
from pybt.model.torch.batches import LOADER_KEY

_SERIAL = "Use the in-process executor (executor=None), which trains members one by one."


def check_template(template: Any, fit_args: Mapping[str, Any]) -> None:
    """The template is a TorchModelWrapper without train_step, trained on arrays."""
    from pybt.model.torch import TorchModelWrapper

    if not isinstance(template, TorchModelWrapper):
        raise invalid_argument(
            "Trainer(model) with VectorizedExecutor",
            type(template).__name__,
            "a TorchModelWrapper (the vectorized executor stacks PyTorch members)",
            _SERIAL,
        )
    if template.parts.train_step is not None:
        raise invalid_argument(
            "TorchModelWrapper(train_step) with VectorizedExecutor",
            template.parts.train_step,
            "no train_step: it trains one module per call, and the vectorized executor trains every "
            "member in one call",
            _SERIAL,
        )
    if LOADER_KEY in fit_args:
        raise invalid_argument(
            "step_args['fit_args'] with VectorizedExecutor",
            "a loader",
            "arrays {'x': x, 'y': y}: every member shuffles the arrays with its own seed",
            _SERIAL,
        )


def find_layout(torch: Any, scratch: Any, device: Any) -> Layout:
    """The stacked layout of the template's members, from one member (``scratch``)."""
    module, optimizer = scratch.module, scratch.optimizer
    kind = optimizer_kind(torch, optimizer)
    params = dict(module.named_parameters())
    names = {id(param): name for name, param in params.items()}
    trained = [names[id(p)] for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    odd = sorted({str(params[name].dtype) for name in trained if not params[name].dtype.is_floating_point})
    if odd:
        raise PyBTError(
            f"VectorizedExecutor: trained parameters of dtype {odd}; the stacked update handles real "
            f"floating parameters. {_SERIAL}"
        )
    step_dtype, step_device = torch.float32, torch.device("cpu")
    if not kind.is_sgd:
        # Where torch.optim keeps Adam's step count (CPU float, or the device with capturable/fused).
        group = optimizer.param_groups[0]
        weight = torch.zeros(1, device=device, requires_grad=True)
        probe = torch.optim.Adam([weight], capturable=bool(group.get("capturable")), fused=group.get("fused"))
        weight.grad = torch.zeros(1, device=device)
        probe.step()
        step = next(iter(probe.state.values()))["step"]
        step_dtype, step_device = step.dtype, step.device
    return Layout(
        params=list(params),
        trained=trained,
        shapes={name: tuple(param.shape) for name, param in params.items()},
        buffers=[name for name, _ in module.named_buffers()],
        kind=kind,
        settings={key: value for key, value in optimizer.param_groups[0].items() if key != "params"},
        device=device,
        step_dtype=step_dtype,
        step_device=step_device,
    )


def probe(
    torch: Any, engine: Any, layout: Layout, tensors: dict[str, Any], batch: tuple[Any, Any], samples: int
) -> int:
    """Train two stacked members (``tensors``) on ``batch`` (``samples`` each) once, and evaluate
    them; return the activation bytes one sample keeps for the backward pass.

    Raises a PyBTError naming what failed when the module cannot run stacked. Sets
    ``layout.orders`` to the memory order of each trained parameter's gradient, and moves the
    parameters that receive no gradient out of ``layout.trained`` (torch.optim never steps them).
    """
    saved = [0]

    def pack(tensor: Any) -> Any:
        saved[0] += tensor.numel() * tensor.element_size()
        return tensor

    inputs, targets = batch
    try:
        by_name = {name: tensors[f"param:{name}"] for name in layout.params}
        by_name.update({name: tensors[f"buffer:{name}"] for name in layout.buffers})
        engine.verify(by_name, inputs, targets)
        leaves = [tensors[f"param:{name}"].clone().requires_grad_() for name in layout.trained]
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            losses = engine.member_losses(
                {**dict(zip(layout.trained, leaves, strict=True)), **engine.others(tensors)}, inputs, targets
            )
        grads = torch.autograd.grad(losses.sum(), leaves, allow_unused=True)
        engine.module.eval()
        with torch.no_grad():
            engine.outputs(tensors, inputs, batched=True)
    except PyBTError:
        raise
    except Exception as error:  # what functional_call/vmap refuse: data-dependent control flow, .item(), ...
        raise PyBTError(
            f"VectorizedExecutor: the module cannot be trained stacked with torch.func.functional_call "
            f"and vmap ({describe_exception(error)}). {_SERIAL}"
        ) from error
    finally:
        engine.module.train()
    for name, grad in zip(list(layout.trained), grads, strict=True):
        if grad is None:
            layout.trained.remove(name)
        else:
            strides = grad.stride()[1:]
            layout.orders[name] = tuple(sorted(range(len(strides)), key=lambda dim: (-strides[dim], dim)))
    return saved[0] // (2 * max(1, samples))


# ---- memory --------------------------------------------------------------------------------------
def available_bytes(torch: Any, device: Any) -> int | None:
    """Free memory on ``device`` (a GPU's free memory, or the host's available memory)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    return available_memory()


def check_memory(
    torch: Any, device: Any, members: int, per_member: int, per_sample: int, batch_size: int, in_use: int
) -> None:
    """Refuse, with the numbers, a population whose stacked tensors will not fit on ``device``.

    ``per_member``: bytes of a member's weights, buffers and optimizer state, ``per_sample``:
    activation bytes a training sample keeps; ``in_use``: bytes the stack holds already (part
    of what is needed, and no longer free).
    """
    available = available_bytes(torch, device)
    if available is None:
        return
    # Weights and state, their gradient and scratch space (about 3x the trained weights at most
    # during an update), and each member's batch of activations.
    needed = members * (3 * per_member + per_sample * batch_size)
    if needed > available + in_use:
        raise invalid_argument(
            "population_size",
            members,
            f"a population whose stacked tensors fit on {device}: about {per_member:,} bytes of weights "
            f"and optimizer state per member, x3 while training, plus {per_sample:,} bytes of activations "
            f"per sample x batch size {batch_size}, make {needed / 2**30:.2f} GiB, and "
            f"{(available + in_use) / 2**30:.2f} GiB are free",
            "Use a smaller population or batch size, or spread the members over several executors "
            "(RayExecutor), or train them one by one (executor=None).",
        )
