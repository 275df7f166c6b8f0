"""Where live members run: the contract between the PBT loop and an executor.

The trainer is one loop over *completed steps*; the executor decides where a step runs.
``completed()`` yields the steps that have finished: the in-process executor runs every
submitted step and yields them all (so the trainer decides once per synchronous round),
the Ray executor yields those finished so far (so each member decides as soon as its step
completes). Policies and records never know which.

Lifetime: an executor is a context manager, closed by whoever opened it. ``train()`` closes
an executor it created itself (the default in-process one) and never one the user passed,
so one executor can serve several trainers in a row::

    with RayExecutor() as executor:
        Trainer(..., executor=executor).train()
        Trainer(..., executor=executor).train()   # the same actors pool, a new population

``start()`` begins a run: it forgets the members of any earlier one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pybt.model.base import Metrics, ModelWrapper


@dataclass(frozen=True)
class StepResult:
    """One member's trained-and-evaluated step, or the error that ended it."""

    member: int
    epochs: int
    train_metrics: Metrics = field(default_factory=dict)
    eval_metrics: Metrics = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)


class Executor(ABC):
    """Runs members' steps and moves their states."""

    #: Whether members live in this process (their memory is this machine's to hold).
    members_in_process: bool = True

    @abstractmethod
    def start(
        self, template: ModelWrapper, fit_args: Mapping[str, Any], eval_args: Mapping[str, Any]
    ) -> None:
        """Get ready to run members of ``template`` on this data (sent once, not per step).

        A new run: members placed for an earlier run are forgotten."""

    @abstractmethod
    def place(self, member_id: int, seed: int) -> None:
        """Create member ``member_id`` from the template with its own initialization."""

    @abstractmethod
    def submit(self, member_id: int, hyperparameters: Mapping[str, Any], epochs: int) -> None:
        """Start training ``epochs`` epochs, then evaluating; returns at once."""

    @abstractmethod
    def completed(self) -> Iterator[StepResult]:
        """Finished steps in completion order; at least one while any step is pending.

        An executor that loses a member's state (a Ray node gone) may also yield a failed
        result for a member with no step pending; the trainer replaces it like any failed member.
        """

    @property
    @abstractmethod
    def pending(self) -> int:
        """How many submitted steps have not been yielded by :meth:`completed`."""

    @abstractmethod
    def copy_states(self, pairs: Sequence[tuple[int, int]]) -> None:
        """Exploit: each ``(donor, member)`` pair gives ``member`` the donor's state.

        Every donor's state is read before any member's is overwritten, so a member that is
        both a donor and an exploiter in the same decision hands on its state from before.
        """

    @abstractmethod
    def get_state(self, member_id: int) -> dict[str, np.ndarray]:
        """The member's state (checkpoints, resume)."""

    @abstractmethod
    def set_state(self, member_id: int, state: Mapping[str, np.ndarray]) -> None:
        """Overwrite the member's state (resume, restarting a lost member)."""

    @abstractmethod
    def model(self, member_id: int) -> Any:
        """The member's model, unwrapped, in this process."""

    def release(self) -> None:
        """A run has finished: give back what only running steps need (Ray's actors and the
        cluster resources they hold), keeping the members' states readable. The next
        :meth:`start` takes the executor up again. The default holds nothing of the kind."""

    def close(self) -> None:
        """Release what the executor holds (processes, actors); safe to call twice. The default
        holds nothing."""

    def shutdown(self) -> None:
        """The same as :meth:`close` (the name earlier versions used)."""
        self.close()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
