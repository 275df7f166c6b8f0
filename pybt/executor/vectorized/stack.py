"""The population as stacked tensors: one leading member dimension on every weight and slot.

Every member lives in a *slot* (its row). What a member is made of sits in one dict of tensors
whose first dimension is the slot:

- ``trained``: the parameters the optimizer trains, flattened and concatenated (``[P, N]``) in
  the optimizer's parameter order, so one update covers them all;
- ``param:<name>``: parameters the optimizer leaves alone; ``buffer:<name>``: buffers
  (BatchNorm running statistics are per member);
- ``opt:<slot>``: the optimizer's state (see :mod:`.optim`).

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

    trained: list[str]  # parameter names, in the optimizer's order
    shapes: dict[str, tuple[int, ...]]
    frozen: list[str]  # parameters the optimizer does not train
    buffers: list[str]
    kind: OptimizerKind
    settings: dict[str, Any]  # the template's param-group settings
    dtype: Any
    device: Any
    step_dtype: Any = None  # Adam's "step" as torch.optim keeps it (dtype, device)
    step_device: Any = None
    sizes: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sizes = [int(np.prod(self.shapes[name], dtype=np.int64)) for name in self.trained]

    @property
    def width(self) -> int:
        return sum(self.sizes)

    def views(self, trained: Any) -> dict[str, Any]:
        """``{name: [k, *shape] view}`` of a ``[k, N]`` trained tensor."""
        k = trained.shape[0]
        parts = trained.split(self.sizes, dim=1)
        return {
            name: part.view(k, *self.shapes[name]) for name, part in zip(self.trained, parts, strict=True)
        }


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
            self._write_module(self.slots[member_id], module)
            self._reset_optimizer([self.slots[member_id]])
            row = self.slots[member_id]
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
        torch = self.torch
        new = {key: torch.stack([row[key] for row in self._placed]) for key in self._placed[0]}
        layout = self.layout
        new.update(
            empty_state(torch, layout.kind, len(self._placed), layout.width, layout.dtype, layout.device)
        )
        self._placed = []
        if not self.tensors:
            self.tensors = new
        else:
            self.tensors = {key: torch.cat([self.tensors[key], new[key]]) for key in self.tensors}

    def rows(self, member_ids: Sequence[int]) -> list[int]:
        return [self.slots[member] for member in member_ids]

    @property
    def size(self) -> int:
        """How many members have a row (stacked or not yet)."""
        return len(self.fits)

    @property
    def stacked(self) -> int:
        """How many rows the stacked tensors hold now."""
        return int(self.tensors["trained"].shape[0]) if self.tensors else 0

    # ---- moving rows --------------------------------------------------------------------------
    def index(self, rows: Sequence[int]) -> Any:
        return self.torch.tensor(list(rows), dtype=self.torch.long, device=self.layout.device)

    def gather(self, rows: Sequence[int]) -> dict[str, Any]:
        """The rows' tensors: the stack itself when ``rows`` is every row in order, else copies."""
        self.materialize()
        if list(rows) == list(range(self.size)):
            return self.tensors
        where = self.index(rows)
        return {key: tensor.index_select(0, where) for key, tensor in self.tensors.items()}

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
        donors, members = (
            self.index([self.slots[d] for d, _ in pairs]),
            self.index([self.slots[m] for _, m in pairs]),
        )
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
        self._write_module(row, None)
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
        self._read_module(row)
        self._read_optimizer(row)
        if fits is not None:
            self.fits[row] = fits

    # ---- between rows and the scratch member ----------------------------------------------------
    def _module_tensors(self, module: Any) -> dict[str, Any]:
        """One member's row, from a module of the template's architecture."""
        params, buffers = dict(module.named_parameters()), dict(module.named_buffers())
        device = self.layout.device
        row = {
            "trained": self.torch.cat([params[name].detach().reshape(-1) for name in self.layout.trained]).to(
                device, copy=True
            )
        }
        row.update(
            {f"param:{name}": params[name].detach().to(device, copy=True) for name in self.layout.frozen}
        )
        row.update(
            {f"buffer:{name}": buffers[name].detach().to(device, copy=True) for name in self.layout.buffers}
        )
        return row

    def _write_module(self, row: int, module: Any | None) -> None:
        """Write ``module``'s tensors into ``row``, or (``module=None``) ``row`` into the scratch module."""
        torch = self.torch
        if module is not None:
            for key, value in self._module_tensors(module).items():
                self.tensors[key][row].copy_(value)
            return
        scratch = self.scratch.module
        params, buffers = dict(scratch.named_parameters()), dict(scratch.named_buffers())
        with torch.no_grad():
            for name, view in self.layout.views(self.tensors["trained"][row : row + 1]).items():
                params[name].copy_(view[0])
            for name in self.layout.frozen:
                params[name].copy_(self.tensors[f"param:{name}"][row])
            for name in self.layout.buffers:
                buffers[name].copy_(self.tensors[f"buffer:{name}"][row])

    def _read_module(self, row: int) -> None:
        self._write_module(row, self.scratch.module)

    def _trained_params(self) -> list[Any]:
        params = dict(self.scratch.module.named_parameters())
        return [params[name] for name in self.layout.trained]

    def _write_optimizer(self, row: int) -> None:
        """The row's optimizer state into the scratch optimizer, as torch.optim would hold it."""
        torch, kind = self.torch, self.layout.kind
        optimizer = self.scratch.optimizer
        optimizer.state.clear()
        if kind.is_sgd:
            stepped = bool(self.tensors["opt:has_buffer"][row])
        else:
            step = float(self.tensors["opt:step"][row])
            stepped = step > 0
        if not stepped:
            return  # a member that never stepped has no optimizer state, as in torch.optim
        slots = {slot: self.layout.views(self.tensors[f"opt:{slot}"][row : row + 1]) for slot in kind.slots}
        for name, param in zip(self.layout.trained, self._trained_params(), strict=True):
            entry: dict[str, Any] = {}
            if not kind.is_sgd:
                entry["step"] = torch.tensor(
                    step, dtype=self.layout.step_dtype, device=self.layout.step_device
                )
            for slot in kind.slots:
                entry[slot] = slots[slot][name][0].clone()
            optimizer.state[param] = entry

    def _reset_optimizer(self, rows: Sequence[int]) -> None:
        for key, tensor in self.tensors.items():
            if key.startswith("opt:"):
                tensor[list(rows)] = 0

    def _read_optimizer(self, row: int) -> None:
        """The scratch optimizer's state (just loaded from a state) into the row."""
        kind = self.layout.kind
        self._reset_optimizer([row])
        entries = [self.scratch.optimizer.state.get(param) or {} for param in self._trained_params()]
        present = [bool(entry) for entry in entries]
        if not any(present):
            return
        needed = set(kind.slots) | ({"step"} if not kind.is_sgd else set())
        if not all(present) or any(not needed <= set(entry) for entry in entries):
            raise PyBTError(
                f"The state's optimizer part does not fit a {kind.name} optimizer over every trained "
                f"parameter (each needs {sorted(needed)}); it must come from a member of the same template."
            )
        for slot in kind.slots:
            self.tensors[f"opt:{slot}"][row].copy_(
                self.torch.cat([entry[slot].reshape(-1) for entry in entries]).to(self.layout.device)
            )
        if kind.is_sgd:
            self.tensors["opt:has_buffer"][row] = True
        else:
            self.tensors["opt:step"][row] = float(entries[0]["step"])
