"""The in-process executor: members are plain objects in this process, trained one by one.

It is the default, and what runs in a notebook with ordinary Keras or PyTorch objects.
Steps run in submission order when ``completed()`` is iterated, so the trainer sees whole
synchronous rounds. Exploit copies states in memory.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from pybt.errors import describe_exception
from pybt.executor.base import Executor, StepResult
from pybt.model.base import ModelWrapper, State


def run_step(
    member_id: int,
    wrapper: ModelWrapper,
    hyperparameters: Mapping[str, Any],
    epochs: int,
    fit_args: Mapping[str, Any],
    eval_args: Mapping[str, Any],
) -> StepResult:
    """Train and evaluate one member; an exception becomes a failed :class:`StepResult`.

    Shared by every executor, so a step fails the same way wherever it runs.
    """
    started = time.perf_counter()
    try:
        train_metrics = wrapper.fit(hyperparameters, epochs, fit_args)
        eval_metrics = wrapper.evaluate(eval_args)
    except Exception as error:  # a member's failure is data for the trainer, not the end of the run
        return StepResult(
            member=member_id,
            epochs=epochs,
            seconds=time.perf_counter() - started,
            error=describe_exception(error),
            exception=error,
        )
    return StepResult(
        member=member_id,
        epochs=epochs,
        train_metrics=train_metrics,
        eval_metrics=eval_metrics,
        seconds=time.perf_counter() - started,
    )


class SerialExecutor(Executor):
    """Runs every member in this process, one step at a time.

    ``undo_interrupted_steps``: keep each member's state from before its step (a copy per
    step), so a step interrupted halfway (Ctrl-C) is put back and runs again whole when
    ``train()`` is called again — the run then ends exactly as an uninterrupted one. Turn it
    off for very large models where that copy costs more than it is worth.
    """

    def __init__(self, undo_interrupted_steps: bool = True) -> None:
        self.undo_interrupted_steps = undo_interrupted_steps
        self._copying: tuple[list[tuple[int, int]], deque[tuple[int, State]]] | None = None
        self._members: dict[int, ModelWrapper] = {}
        self._queue: deque[tuple[int, Mapping[str, Any], int]] = deque()
        self._template: ModelWrapper | None = None
        self._fit_args: Mapping[str, Any] = {}
        self._eval_args: Mapping[str, Any] = {}

    def start(
        self, template: ModelWrapper, fit_args: Mapping[str, Any], eval_args: Mapping[str, Any]
    ) -> None:
        self._template, self._fit_args, self._eval_args = template, fit_args, eval_args
        self._members.clear()
        self._queue.clear()
        self._copying = None

    def place(self, member_id: int, seed: int) -> None:
        assert self._template is not None, "start() comes before place()"
        self._members[member_id] = self._template.spawn(seed)

    def submit(self, member_id: int, hyperparameters: Mapping[str, Any], epochs: int) -> None:
        self._queue.append((member_id, hyperparameters, epochs))

    @property
    def pending(self) -> int:
        return len(self._queue)

    def completed(self) -> Iterator[StepResult]:
        while self._queue:
            # A step leaves the queue only once it has run: if train() is interrupted inside
            # it (Ctrl-C in a notebook), it is still pending when train() is called again, and
            # the member is put back as it was before the step, so it runs again from there.
            member_id, hyperparameters, epochs = self._queue[0]
            member = self._members[member_id]
            before = member.get_state() if self.undo_interrupted_steps and not member.atomic_fit else None
            try:
                result = run_step(member_id, member, hyperparameters, epochs, self._fit_args, self._eval_args)
            except BaseException:  # KeyboardInterrupt, SystemExit: run_step keeps every Exception
                if before is not None:
                    member.set_state(before)
                raise
            self._queue.popleft()
            yield result

    def copy_states(self, pairs: Sequence[tuple[int, int]]) -> None:
        # Every donor's state is read before any member's changes. The copies still to make are
        # kept here: when an interrupt stops them halfway, the same call again finishes them
        # from the states read then (a donor that was also a copier was overwritten already).
        if self._copying is None or self._copying[0] != list(pairs):
            donor_states = {donor: self._members[donor].get_state() for donor, _ in pairs}
            self._copying = (list(pairs), deque((member, donor_states[donor]) for donor, member in pairs))
        left = self._copying[1]
        while left:
            member, state = left[0]
            self._members[member].set_state(state)
            left.popleft()
        self._copying = None

    def get_state(self, member_id: int) -> dict[str, np.ndarray]:
        return self._members[member_id].get_state()

    def set_state(self, member_id: int, state: Mapping[str, np.ndarray]) -> None:
        self._members[member_id].set_state(state)

    def model(self, member_id: int) -> Any:
        return self._members[member_id].unwrap()
