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

The package: :mod:`.wrapper` (the class), :mod:`.checks` (argument checks), :mod:`.optimizer`
(building it, tunable settings), :mod:`.batches` (seeding, devices, batches), :mod:`.loops`
(epochs and evaluation) and :mod:`.state` (state to arrays and back). None of them imports
torch when imported: PyTorch is loaded when a wrapper is built.
"""

from __future__ import annotations

from pybt.model.torch.wrapper import TorchModelWrapper

__all__ = ["TorchModelWrapper"]
