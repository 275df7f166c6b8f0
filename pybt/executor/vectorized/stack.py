"""The population as stacked tensors: one leading member dimension on every weight and slot.

Every member lives in a *slot* (its row). What a member is made of sits in one dict of tensors
whose first dimension is the slot:

- ``param:<name>``: each parameter, ``[P, *shape]``; the ones the optimizer trains are kept in
  the memory layout their gradients arrive in (found by the probe, see :mod:`.checks`), so the
  update reads gradient, weight and state in one order (a transposed gradient read against a
  contiguous weight costs more than the arithmetic);
- ``buffer:<name>``: buffers (BatchNorm running statistics are per member);
- ``opt:<slot>:<name>``, ``opt:step``, ``opt:has_buffer``: the optimizer's state (see :mod:`.optim`).

Exploit is an index copy along that dimension, with no trip through NumPy. ``get_state`` and
``set_state`` go through one scratch member (a real TorchModelWrapper member): the slot's
tensors are written into its module and optimizer and exported by the wrapper's own code, so
the ``{name: ndarray}`` layout is TorchModelWrapper's by construction and a run folder written
by one executor resumes on the other.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pybt.errors import PyBTError
from pybt.executor.vectorized.optim import OptimizerKind, empty_state
from pybt.model.torch.state import export_state, import_state


@dataclass
class Layout:
    """How one member's tensors map onto the stacked ones (found once, from the template)."""

    params: list[str]  # every parameter, as named_parameters() names them
    trained: list[str]  # the ones the optimizer trains, in the optimizer's order
    shapes: dict[str, tuple[int, ...]]
    buffers: list[str]
    kind: OptimizerKind
    settings: dict[str, Any]  # the template's param-group settings
    device: Any
    step_dtype: Any = None  # Adam's "step" as torch.optim keeps it (dtype, device)
    step_device: Any = None
    orders: dict[str, tuple[int, ...]] = field(default_factory=dict)  # memory order of a member's dims

    @property
    def frozen(self) -> list[str]:
        return [name for name in self.params if name not in set(self.trained)]

    def empty(self, torch: Any, name: str, rows: int, dtype: Any) -> Any:
        """An empty ``[rows, *shape]`` tensor for parameter ``name``, in its memory order."""
        shape = self.shapes[name]
        order = self.orders.get(name, tuple(range(len(shape))))
        strides = [0] * len(shape)
        size = 1
        for dim in reversed(order):  # innermost first
            strides[dim] = size
            size *= shape[dim]
        return torch.empty_strided((rows, *shape), (size, *strides), dtype=dtype, device=self.device)


class Stack:
    """The members' stacked tensors, their slots, and their per-member bookkeeping."""

    def __init__(self, torch: Any, layout: Layout, scratch: Any) -> None:
        self.torch, self.layout = torch, layout
        self.scratch = scratch  # a TorchModelWrapper member: the skeleton for functional_call and states
        self.tensors: dict[str, Any] = {}
        self.slots: dict[int, int] = {}  # member id -> row
        self.fits: list[int] = []  # each member's fit count: it seeds the member's shuffling
        self.seeds: list[int] = []
        self.settings: list[dict[str, Any]] = []  # each member's param-group settings
        self._placed: list[dict[str, Any]] = []  # rows not stacked yet (stacked once, on first use)

    # ---- members ------------------------------------------------------------------------------
    def place(self, member_id: int, seed: int, module: Any) -> None:
        """Give ``member_id`` a row holding ``module``'s weights, fresh optimizer state and settings."""
        if member_id in self.slots:  # placed again: a new member in the same row
            self.materialize()
            row = self.slots[member_id]
            for key, value in self._module_tensors(module).items():
                self.tensors[key][row].copy_(value)
            self._reset_optimizer(row)
        else:
            row = len(self.fits)
            self.slots[member_id] = row
            self._placed.append(self._module_tensors(module))
            self.fits.append(0)
            self.seeds.append(0)
            self.settings.append({})
        self.fits[row], self.seeds[row] = 0, int(seed)
        self.settings[row] = copy.deepcopy(self.layout.settings)

    def materialize(self) -> None:
        """Stack the rows placed since the last call (one concatenation, not one per member)."""
        if not self._placed:
            return
        torch, layout, placed = self.torch, self.layout, self._placed
        new = {}
        for key in placed[0]:
            rows = torch.stack([row[key] for row in placed])
            if key.startswith("param:"):  # in the memory layout of its gradient
                rows = layout.empty(torch, key[6:], len(placed), rows.dtype).copy_(rows)
            new[key] = rows
        new.update(empty_state(torch, layout.kind, {name: new[f"param:{name}"] for name in layout.trained}))
        self._placed = []
        if self.tensors:
            new = {key: self._concatenate(key, self.tensors[key], new[key]) for key in self.tensors}
        self.tensors = new

    def _concatenate(self, key: str, first: Any, second: Any) -> Any:
        if first.ndim < 2:
            return self.torch.cat([first, second])
        both = self.torch.empty_strided(
            (first.shape[0] + second.shape[0], *first.shape[1:]),
            first.stride(),
            dtype=first.dtype,
            device=first.device,
        )
        both[: first.shape[0]].copy_(first)
        both[first.shape[0] :].copy_(second)
        return both

    def rows(self, member_ids: Sequence[int]) -> list[int]:
        return [self.slots[member] for member in member_ids]

    @property
    def size(self) -> int:
        """How many members have a row (stacked or not yet)."""
        return len(self.fits)

    @property
    def stacked(self) -> int:
        """How many rows the stacked tensors hold now."""
        return int(next(iter(self.tensors.values())).shape[0]) if self.tensors else 0

    # ---- moving rows --------------------------------------------------------------------------
    def index(self, rows: Sequence[int]) -> Any:
        return self.torch.tensor(list(rows), dtype=self.torch.long, device=self.layout.device)

    def gather(self, rows: Sequence[int]) -> dict[str, Any]:
        """The rows' tensors: the stack itself when ``rows`` is every row in order, else copies
        (in the same memory layout)."""
        self.materialize()
        if list(rows) == list(range(self.size)):
            return self.tensors
        where = self.index(rows)
        gathered = {}
        for key, tensor in self.tensors.items():
            out = self.torch.empty_strided(
                (len(rows), *tensor.shape[1:]), tensor.stride(), dtype=tensor.dtype, device=tensor.device
            )
            gathered[key] = out.copy_(tensor.index_select(0, where))
        return gathered

    def scatter(self, rows: Sequence[int], tensors: Mapping[str, Any]) -> None:
        """Write back what :meth:`gather` handed out (nothing to do when it was the stack itself)."""
        if tensors is self.tensors:
            return
        where = self.index(rows)
        for key, tensor in self.tensors.items():
            tensor.index_copy_(0, where, tensors[key])

    def copy(self, pairs: Sequence[tuple[int, int]]) -> None:
        """Exploit: every donor's row is read before any member's row is overwritten."""
        self.materialize()
        donors = self.index([self.slots[donor] for donor, _ in pairs])
        members = self.index([self.slots[member] for _, member in pairs])
        copies = {key: tensor.index_select(0, donors) for key, tensor in self.tensors.items()}
        fits = [self.fits[self.slots[donor]] for donor, _ in pairs]
        for key, tensor in self.tensors.items():
            tensor.index_copy_(0, members, copies[key])
        for (_, member), count in zip(pairs, fits, strict=True):
            self.fits[self.slots[member]] = count  # settings and seeds stay the member's own

    def snapshot(self) -> tuple[dict[str, Any], list[int]]:
        """A copy of every row (in host memory), to put back a step that was interrupted."""
        self.materialize()
        return {key: tensor.to("cpu", copy=True) for key, tensor in self.tensors.items()}, list(self.fits)

    def restore(self, snapshot: tuple[dict[str, Any], list[int]]) -> None:
        tensors, fits = snapshot
        for key, tensor in self.tensors.items():
            tensor.copy_(tensors[key])
        self.fits[:] = fits

    # ---- one member as a module, and its state as arrays --------------------------------------------
    def load_scratch(self, member_id: int, with_optimizer: bool) -> Any:
        """The scratch member holding ``member_id``'s weights (and optimizer state)."""
        self.materialize()
        row = self.slots[member_id]
        module = self.scratch.module
        with self.torch.no_grad():
            for name, param in module.named_parameters():
                param.copy_(self.tensors[f"param:{name}"][row])
            for name, buffer in module.named_buffers():
                buffer.copy_(self.tensors[f"buffer:{name}"][row])
        if with_optimizer:
            self._write_optimizer(row)
        return self.scratch

    def get_state(self, member_id: int) -> dict[str, np.ndarray]:
        scratch = self.load_scratch(member_id, with_optimizer=True)
        return export_state(self.torch, scratch.module, scratch.optimizer, self.fits[self.slots[member_id]])

    def set_state(self, member_id: int, state: Mapping[str, np.ndarray]) -> None:
        self.materialize()
        row = self.slots[member_id]
        scratch = self.scratch
        scratch.optimizer.state.clear()
        fits = import_state(self.torch, scratch.module, scratch.optimizer, state)  # checks the keys
        for key, value in self._module_tensors(scratch.module).items():
            self.tensors[key][row].copy_(value)
        self._read_optimizer(row)
        if fits is not None:
            self.fits[row] = fits

    # ---- between rows and the scratch member ----------------------------------------------------
    def _module_tensors(self, module: Any) -> dict[str, Any]:
        """One member's row, from a module of the template's architecture."""
        device = self.layout.device
        row = {f"param:{name}": p.detach().to(device, copy=True) for name, p in module.named_parameters()}
        row.update({f"buffer:{name}": b.detach().to(device, copy=True) for name, b in module.named_buffers()})
        return row

    def _trained_params(self) -> list[Any]:
        params = dict(self.scratch.module.named_parameters())
        return [params[name] for name in self.layout.trained]

    def _write_optimizer(self, row: int) -> None:
        """The row's optimizer state into the scratch optimizer, as torch.optim would hold it."""
        torch, kind, layout = self.torch, self.layout.kind, self.layout
        optimizer = self.scratch.optimizer
        optimizer.state.clear()
        if kind.is_sgd:
            stepped = bool(self.tensors["opt:has_buffer"][row])
        else:
            step = float(self.tensors["opt:step"][row])
            stepped = step > 0
        if not stepped:
            return  # a member that never stepped has no optimizer state, as in torch.optim
        for name, param in zip(layout.trained, self._trained_params(), strict=True):
            entry: dict[str, Any] = {}
            if not kind.is_sgd:
                entry["step"] = torch.tensor(step, dtype=layout.step_dtype, device=layout.step_device)
            for slot in kind.slots:
                value = self.tensors[f"opt:{slot}:{name}"][row]
                entry[slot] = value.clone(memory_format=torch.contiguous_format)
            optimizer.state[param] = entry

    def _reset_optimizer(self, row: int) -> None:
        for key, tensor in self.tensors.items():
            if key.startswith("opt:"):
                tensor[row] = 0

    def _read_optimizer(self, row: int) -> None:
        """The scratch optimizer's state (just loaded from a state) into the row."""
        kind = self.layout.kind
        self._reset_optimizer(row)
        entries = [self.scratch.optimizer.state.get(param) or {} for param in self._trained_params()]
        entries = [{key: value for key, value in entry.items() if value is not None} for entry in entries]
        if not any(entries):
            return
        needed = set(kind.slots) | ({"step"} if not kind.is_sgd else set())
        if any(not needed <= set(entry) for entry in entries):
            raise PyBTError(
                f"The state's optimizer part does not fit a {kind.name} optimizer over every trained "
                f"parameter (each needs {sorted(needed)}); it must come from a member of the same template."
            )
        for name, entry in zip(self.layout.trained, entries, strict=True):
            for slot in kind.slots:
                self.tensors[f"opt:{slot}:{name}"][row].copy_(entry[slot])
        if kind.is_sgd:
            self.tensors["opt:has_buffer"][row] = True
        else:
            self.tensors["opt:step"][row] = float(entries[0]["step"])
