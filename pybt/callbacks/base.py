"""The callback interface: listeners on a run's records, called as the records are made.

Subclass :class:`Callback` and override the hooks you need (each is a no-op by default)::

    class PrintExploits(Callback):
        def on_exploit(self, trainer, record):
            print(f"member {record.member} copied member {record.donor} at epoch {record.epoch}")

    Trainer(..., callbacks=[PrintExploits()])

Each hook is called once per record, in the order records are made: ``on_step`` for every
:class:`~pybt.history.StepRecord`, ``on_exploit`` for every
:class:`~pybt.history.ExploitRecord`, ``on_failure`` for every
:class:`~pybt.history.FailureRecord`, ``on_checkpoint`` after every checkpoint cut of a
run folder. ``on_train_begin`` and ``on_train_end`` bracket each call of ``train()``;
``on_train_end`` gets a :class:`TrainResult`, or ``None`` when ``train()`` is ending with an
exception (interrupted, or the run failed). Records reloaded from a run folder when a run
resumes are not replayed: they are in ``trainer.run_history`` at ``on_train_begin``.

A callback that raises stops the run with a :class:`~pybt.errors.CallbackError` naming it
(the callback's exception is its cause); what was recorded before stays recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pybt.errors import CallbackError, describe_exception

if TYPE_CHECKING:
    from pybt.history import ExploitRecord, FailureRecord, StepRecord
    from pybt.trainer import Trainer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What ``train()`` returns, and where it came from."""

    model: Any  # the user's own model object of the best member
    score: float
    member: int
    epoch: int


class Callback:
    """Base class of run listeners; every hook is a no-op until overridden."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """``train()`` starts (or continues a run)."""

    def on_step(self, trainer: Trainer, record: StepRecord) -> None:
        """A member trained a step and was scored."""

    def on_exploit(self, trainer: Trainer, record: ExploitRecord) -> None:
        """A member copied a donor (``record.reason`` is ``"exploit"`` or ``"failure"``)."""

    def on_failure(self, trainer: Trainer, record: FailureRecord) -> None:
        """A member's step failed; it will be replaced by copying a healthy member."""

    def on_checkpoint(self, trainer: Trainer, sequence: int) -> None:
        """A checkpoint cut of the run folder was written; the run can resume from ``sequence``."""

    def on_train_end(self, trainer: Trainer, result: TrainResult | None) -> None:
        """``train()`` ends: with its result, or ``None`` when it ends with an exception."""


class CallbackList:
    """Calls every callback's hook in turn; an exception out of one becomes a CallbackError."""

    def __init__(self, callbacks: Iterable[Callback], trainer: Trainer) -> None:
        # The trainer's own list, not a copy: a callback appended to trainer.callbacks is heard.
        self.callbacks = callbacks if isinstance(callbacks, list) else list(callbacks)
        self._trainer = trainer

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            try:
                getattr(callback, hook)(self._trainer, *args)
            except Exception as error:
                raise CallbackError(
                    f"The callback {_name(callback)} raised in {hook}(), which stops the run: "
                    f"{describe_exception(error)}. What was recorded before is kept; fix the callback "
                    f"and call train() again to go on."
                ) from error

    def train_begin(self) -> None:
        self._call("on_train_begin")

    def step(self, record: StepRecord) -> None:
        self._call("on_step", record)

    def exploit(self, record: ExploitRecord) -> None:
        self._call("on_exploit", record)

    def failure(self, record: FailureRecord) -> None:
        self._call("on_failure", record)

    def checkpoint(self, sequence: int) -> None:
        self._call("on_checkpoint", sequence)

    def train_end(self, result: TrainResult | None) -> None:
        if result is not None:
            self._call("on_train_end", result)
            return
        # train() is ending with an exception already: every callback still gets to clean up,
        # and a callback failing now is logged instead of hiding the exception on its way out.
        for callback in self.callbacks:
            try:
                callback.on_train_end(self._trainer, None)
            except Exception:
                logger.exception("the callback %s raised in on_train_end()", _name(callback))


def _name(callback: Callback) -> str:
    text = repr(callback)
    return text if len(text) <= 80 and " object at 0x" not in text else type(callback).__name__
