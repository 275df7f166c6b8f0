"""A member's state as ``{name: ndarray}`` and back: what exploit copies and checkpoints store.

What SB3 itself saves, without pickle. Keys:

- ``net/<name>/<key>``: the state dicts SB3 saves (``_get_torch_save_params``): the policy, with
  its target networks, as ``net/policy/<state_dict key>``;
- ``optim/<name>/state/<param index>/<key>`` (tensors), ``.../python/...`` (numbers, 0-d arrays)
  and ``.../none/...``: the optimizers' slots (Adam's moments and step counts). Param group
  settings are hyperparameters: a member keeps its own through an exploit;
- ``var/<name>``: tensors SB3 saves besides state dicts (SAC's learned ``log_ent_coef``);
- ``count/<name>``: the counters that drive SB3's schedules (``num_timesteps``, ``_n_updates`` for
  TD3's delayed actor updates, ``_n_calls`` for DQN's target updates, ...) and ``count/epochs``,
  the member's epoch count, which seeds its next epoch;
- ``replay/<attribute>`` (and ``replay/<attribute>/<key>`` for dict observations), ``replay/pos``
  and ``replay/full``: the filled part of an off-policy replay buffer, only with
  ``replay_buffer="copy"``.

Tensors of a dtype NumPy lacks are stored as raw bits (``@dtype`` in the key), as for
TorchModelWrapper. Nothing here imports torch: the module comes in as an argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pybt.errors import PyBTError, invalid_argument
from pybt.model.base import State
from pybt.model.torch.state import array_to_tensor, tensor_to_array

EPOCHS = "epochs"
# Counters SB3 keeps on the agent that decide what an update does (schedules, target updates).
_COUNTERS = ("num_timesteps", "_n_updates", "_n_calls", "_episode_num")
# Tensors SB3 saves that are hyperparameters here, not state (SAC's fixed ent_coef).
_NOT_STATE = frozenset({"ent_coef_tensor"})


def _resolve(agent: Any, name: str) -> Any:
    value = agent
    for part in name.split("."):
        value = getattr(value, part)
    return value


def torch_parts(torch: Any, agent: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The agent's networks, optimizers and saved tensors, by SB3's names for them."""
    state_dicts, variables = agent._get_torch_save_params()
    networks, optimizers = {}, {}
    for name in state_dicts:
        part = _resolve(agent, name)
        (optimizers if isinstance(part, torch.optim.Optimizer) else networks)[name] = part
    tensors = {name: _resolve(agent, name) for name in variables or [] if name not in _NOT_STATE}
    return networks, optimizers, tensors


def export_state(torch: Any, agent: Any, epochs: int, replay: bool) -> State:
    """Copies of everything that makes the member where it stands (see the module's docstring)."""
    networks, optimizers, tensors = torch_parts(torch, agent)
    state: State = {f"count/{EPOCHS}": np.array(epochs, dtype=np.int64)}
    for name in _COUNTERS:
        if hasattr(agent, name):
            state[f"count/{name}"] = np.array(int(getattr(agent, name)), dtype=np.int64)
    for name, network in networks.items():
        network = getattr(network, "_orig_mod", network)  # torch.compile'd: the original's keys
        for key, tensor in network.state_dict().items():
            stored_key, array = tensor_to_array(torch, f"net/{name}/{key}", tensor)
            state[stored_key] = array
    for name, optimizer in optimizers.items():
        state.update(_optimizer_state(torch, name, optimizer))
    for name, tensor in tensors.items():
        stored_key, array = tensor_to_array(torch, f"var/{name}", tensor)
        state[stored_key] = array
    if replay and getattr(agent, "replay_buffer", None) is not None:
        state.update(_replay_state(agent.replay_buffer))
    return state


def _optimizer_state(torch: Any, name: str, optimizer: Any) -> State:
    state: State = {}
    for index, values in optimizer.state_dict()["state"].items():
        for key, value in values.items():
            where = f"optim/{name}/%s/{index}/{key}"
            if isinstance(value, torch.Tensor):
                stored_key, array = tensor_to_array(torch, where % "state", value)
                state[stored_key] = array
            elif value is None:
                state[where % "none"] = np.zeros(0, dtype=np.int8)
            elif isinstance(value, (bool, int, float)):
                state[where % "python"] = np.array(value)
            else:
                raise PyBTError(
                    f"The {type(optimizer).__name__} optimizer of {name} keeps {key!r} as a "
                    f"{type(value).__name__}; PyBT copies optimizer state made of tensors, numbers and None."
                )
    return state


def _replay_state(buffer: Any) -> State:
    """The filled part of the buffer's arrays, and where it writes next."""
    size = int(buffer.buffer_size)
    filled = size if buffer.full else int(buffer.pos)
    state: State = {"replay/pos": np.array(int(buffer.pos)), "replay/full": np.array(bool(buffer.full))}
    for attribute, value in vars(buffer).items():
        arrays = value.items() if isinstance(value, dict) else [(None, value)]
        for key, array in arrays:
            if not isinstance(array, np.ndarray):
                continue
            if array.dtype.kind not in "biufc":
                raise PyBTError(
                    f"The replay buffer ({type(buffer).__name__}) keeps {attribute} as an array of "
                    f"{array.dtype}, which PyBT cannot store without pickle. Use "
                    f"SB3ModelWrapper(replay_buffer='own')."
                )
            name = f"replay/{attribute}" + (f"/{key}" if key is not None else "")
            state[name] = (array[:filled] if array.shape[:1] == (size,) else array).copy()
    return state


def import_state(torch: Any, agent: Any, state: Mapping[str, np.ndarray]) -> int | None:
    """Load ``state`` into the agent; returns its epoch count (None when absent)."""
    networks, optimizers, tensors = torch_parts(torch, agent)
    network_states: dict[str, dict[str, Any]] = {name: {} for name in networks}
    optimizer_states: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in optimizers}
    replay: dict[str, np.ndarray] = {}
    epochs = None
    for full_key, array in state.items():
        key, _, dtype = full_key.partition("@")
        section, _, rest = key.partition("/")
        if section == "count" and (rest == EPOCHS or hasattr(agent, rest)):
            if rest == EPOCHS:
                epochs = int(np.asarray(array))
            else:
                setattr(agent, rest, int(np.asarray(array)))
        elif section == "net" and _owner(rest, networks) is not None:
            owner = _owner(rest, networks)
            network_states[owner][rest[len(owner) + 1 :]] = array_to_tensor(torch, array, dtype, full_key)
        elif section == "optim" and _owner(rest, optimizers) is not None:
            owner = _owner(rest, optimizers)
            kind, index, name = _optimizer_key(rest[len(owner) + 1 :], full_key)
            value = array_to_tensor(torch, array, dtype, full_key) if kind == "state" else None
            if kind == "python":
                value = np.asarray(array).item()
            optimizer_states[owner].setdefault(index, {})[name] = value
        elif section == "var" and rest in tensors:
            with torch.no_grad():
                tensors[rest].copy_(array_to_tensor(torch, array, dtype, full_key))
        elif section == "replay" and getattr(agent, "replay_buffer", None) is not None:
            replay[rest] = np.asarray(array)
        else:
            raise invalid_argument("state key", full_key, "a key made by SB3ModelWrapper.get_state()")
    for name, values in network_states.items():
        try:
            getattr(networks[name], "_orig_mod", networks[name]).load_state_dict(values, strict=True)
        except RuntimeError as error:
            raise PyBTError(
                f"The state does not fit this member's {name}; it must come from a member of the same "
                f"template. PyTorch said: {error}"
            ) from error
    for name, values in optimizer_states.items():
        groups = optimizers[name].state_dict()["param_groups"]  # this member's own settings
        try:
            optimizers[name].load_state_dict({"state": values, "param_groups": groups})
        except (ValueError, RuntimeError, KeyError) as error:
            raise PyBTError(f"The state does not fit this member's {name}: {error}") from error
    if replay:
        _load_replay(agent.replay_buffer, replay)
    return epochs


def _owner(rest: str, parts: Mapping[str, Any]) -> str | None:
    """Which network or optimizer a key belongs to (SB3 names contain dots, never slashes)."""
    owner = rest.split("/", 1)[0]
    return owner if owner in parts else None


def _optimizer_key(rest: str, full_key: str) -> tuple[str, int, str]:
    kind, _, where = rest.partition("/")
    index, _, name = where.partition("/")
    if kind not in ("state", "python", "none") or not index.isdigit() or not name:
        raise invalid_argument("state key", full_key, "a key made by SB3ModelWrapper.get_state()")
    return kind, int(index), name


def _load_replay(buffer: Any, replay: Mapping[str, np.ndarray]) -> None:
    size = int(buffer.buffer_size)
    for name, array in replay.items():
        if name in ("pos", "full"):
            continue
        attribute, _, key = name.partition("/")
        target = getattr(buffer, attribute, None)
        target = target.get(key) if isinstance(target, dict) else target
        if not isinstance(target, np.ndarray) or array.shape[1:] != target.shape[1:]:
            raise invalid_argument(
                f"state['replay/{name}']", array.shape, "an array that fits this member's replay buffer"
            )
        if target.shape[:1] == (size,):
            target[: len(array)] = array
        else:
            target[...] = array
    buffer.pos = int(replay.get("pos", 0))
    buffer.full = bool(replay.get("full", False))
