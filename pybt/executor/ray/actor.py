"""The worker side of :class:`~pybt.executor.ray.RayExecutor`: one Ray actor hosting members.

A :class:`MemberHost` is a plain class (``ray.remote`` wraps it at run time, so importing this
module needs no Ray). For each run it loads the template and the training data once, from the
object store, and keeps the members that run on it in memory. A step trains one member with
:func:`~pybt.executor.serial.run_step`, so a step fails exactly as it does in process, and
returns the result together with the member's new state: the executor keeps that state in the
object store as the member's backup and as what an exploiting member copies.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from pybt.errors import describe_exception
from pybt.executor.base import StepResult
from pybt.executor.serial import run_step
from pybt.model.base import ModelWrapper, State


class MemberHost:
    """Members of one population living in one worker process; one step at a time."""

    def __init__(self, environment: Mapping[str, str], threads: int) -> None:
        # The driver's KERAS_BACKEND must be in place before a template's unpickling imports Keras.
        os.environ.update(environment)
        self._threads = threads
        self._template: ModelWrapper | None = None
        self._fit_args: Mapping[str, Any] = {}
        self._eval_args: Mapping[str, Any] = {}
        self._members: dict[int, ModelWrapper] = {}
        self._pin_threads()

    def load(self, payload: list[Any]) -> bool:
        """Begin a run: forget the members of any earlier one, and fetch this run's template,
        ``fit_args`` and ``eval_args``. Answers once they are unpacked (or raises)."""
        import ray

        # Nothing of an earlier run survives a load that fails half-way.
        self._template, self._fit_args, self._eval_args = None, {}, {}
        self._members.clear()
        # The object refs come inside a list, so Ray does not resolve them before this runs.
        template, fit_args, eval_args = ray.get(payload)
        self._template, self._fit_args, self._eval_args = template, fit_args, eval_args
        return True

    def pid(self) -> int:
        return os.getpid()

    def step(
        self,
        member_id: int,
        seed: int,
        hyperparameters: Mapping[str, Any],
        epochs: int,
        state: Mapping[str, np.ndarray] | None,
        sync: bool,
    ) -> tuple[tuple[StepResult, float], State | None]:
        """Train and evaluate ``member_id``; returns ``((result, finished_at), new_state)``.

        With ``sync`` the member is (re)built here first: from ``state`` when it has one, else
        from its seed (it has not completed a step yet). ``new_state`` is None when the step
        failed: the trainer replaces a failed member, so its broken state is never needed.
        """
        self._pin_threads()
        started = time.perf_counter()
        try:
            wrapper = self._member(member_id, seed, state, sync)
        except Exception as error:  # a member that cannot be rebuilt fails like a failed step
            result = StepResult(
                member=member_id,
                epochs=epochs,
                seconds=time.perf_counter() - started,
                error=describe_exception(error),
                exception=error,
            )
        else:
            result = run_step(member_id, wrapper, hyperparameters, epochs, self._fit_args, self._eval_args)
        new_state: State | None = None
        if result.error is None:
            try:
                new_state = self._members[member_id].get_state()
            except Exception as error:
                result = replace(result, error=describe_exception(error), exception=error)
        if result.exception is not None:
            result = replace(result, exception=_portable_exception(result.exception))
        return (result, time.time()), new_state

    def get_state(self, member_id: int) -> State:
        return self._members[member_id].get_state()

    def drop(self, member_id: int) -> None:
        """Forget a member that now lives on another actor (frees its memory here)."""
        self._members.pop(member_id, None)

    def _member(
        self, member_id: int, seed: int, state: Mapping[str, np.ndarray] | None, sync: bool
    ) -> ModelWrapper:
        if self._template is None:
            raise RuntimeError("this Ray actor has no template: load() comes before step()")
        wrapper = self._members.get(member_id)
        if sync or wrapper is None:
            if wrapper is None or state is None:
                wrapper = self._template.spawn(seed)
            if state is not None:
                # Object-store arrays are read-only views; a framework may want to own them.
                wrapper.set_state({key: np.array(value, copy=True) for key, value in state.items()})
            self._members[member_id] = wrapper
        return wrapper

    def _pin_threads(self) -> None:
        """One intra-op thread pool per CPU the actor holds (torch defaults to every core)."""
        torch = sys.modules.get("torch")
        if torch is not None and torch.get_num_threads() != self._threads:
            torch.set_num_threads(self._threads)


def _portable_exception(error: BaseException) -> BaseException | None:
    """The exception itself if it survives pickling (with its traceback as a note), else None.

    The driver only chains it to the error it raises when every member failed; an exception
    that cannot cross processes must not turn a failed step into a lost actor.
    """
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    try:
        copy = pickle.loads(pickle.dumps(error))
    except Exception:
        return None
    if hasattr(copy, "add_note"):
        copy.add_note(f"Raised in a Ray actor (pid {os.getpid()}):\n{text}")
    return copy


def touch(state: Any) -> None:
    """Nothing: Ray must fetch ``state`` to run this, which tells whether it still exists.

    The executor runs it (as a task that holds no CPU) on the states a lost actor produced,
    so that a member whose state went with a node is found before anyone copies it.
    """
