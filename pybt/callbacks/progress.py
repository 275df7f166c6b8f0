"""The progress display ``verbose=1`` adds: a line over member-epochs with the best score so far.

Plain text on stderr, redrawn in place with a carriage return, so it works in a terminal
and in a notebook without extra packages; where the line cannot be redrawn (a log file) it
is printed every 10 %. Redraws are throttled and the best score is looked up only when the
line is drawn: a population of a thousand members must not spend its time printing.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

from pybt.callbacks.base import Callback, TrainResult

if TYPE_CHECKING:
    from pybt.history import ExploitRecord, StepRecord
    from pybt.trainer import Trainer

_BAR_WIDTH = 24
_MIN_REDRAW_SECONDS = 0.2
_LOG_EVERY_FRACTION = 0.1  # where the line cannot be redrawn (a log file), print it every 10 %


def format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class ProgressBar(Callback):
    """Member-epochs trained out of the total the stopping rule allows, and the best score."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.total: int | None = None
        self.done = 0
        self._trainer: Trainer | None = None
        self._epoch_of: dict[int, int] = {}  # where each member's weights stand, in epochs
        self._started = time.perf_counter()
        self._last_draw = 0.0
        self._last_logged = 0
        self._redraws = False

    def on_train_begin(self, trainer: Trainer) -> None:
        self._trainer = trainer
        stream = self.stream if self.stream is not None else sys.stderr
        self.stream = stream
        # A terminal or a notebook redraws one line in place; a log file gets a line now and then.
        self._redraws = bool(getattr(stream, "isatty", lambda: False)()) or "ipykernel" in sys.modules
        epochs = trainer.stopping_criteria.max_epochs
        self.total = None if epochs is None else epochs * trainer.population_size
        history = trainer.run_history
        self._epoch_of = {}
        for member in history.members:
            standing = history.standing(member)
            self._epoch_of[member] = 0 if standing is None else standing.epoch
        self.done = sum(self._epoch_of.values())
        self._started = time.perf_counter()
        self._last_logged = 0

    def on_step(self, trainer: Trainer, record: StepRecord) -> None:
        self.done += record.epoch - self._epoch_of.get(record.member, 0)
        self._epoch_of[record.member] = record.epoch
        if self._redraws:
            now = time.perf_counter()
            if now - self._last_draw >= _MIN_REDRAW_SECONDS:
                self._last_draw = now
                self._draw()
        elif self.total and self.done - self._last_logged >= _LOG_EVERY_FRACTION * self.total:
            self._last_logged = self.done
            self._write(self.line() + "\n")

    def on_exploit(self, trainer: Trainer, record: ExploitRecord) -> None:
        self._epoch_of[record.member] = record.epoch

    def on_train_end(self, trainer: Trainer, result: TrainResult | None) -> None:
        if self._redraws:
            self._draw()
            self._write("\n")
        elif self._last_logged != self.done or self.done == 0:
            self._write(self.line() + "\n")

    def line(self) -> str:
        elapsed = time.perf_counter() - self._started
        history = self._trainer.run_history if self._trainer is not None else None
        best_step = history.best_ever() if history is not None else None
        label = (history.metric if history is not None else None) or "score"
        best = "-" if best_step is None else f"{best_step.score:.4g}"
        if self.total:
            filled = min(_BAR_WIDTH, _BAR_WIDTH * self.done // self.total)
            bar = "#" * filled + "." * (_BAR_WIDTH - filled)
            count = f"{self.done}/{self.total}"
        else:
            bar, count = "", str(self.done)
        return f"member-epochs {count} [{bar}] best {label} {best} | {format_seconds(elapsed)}"

    def _draw(self) -> None:
        self._write("\r" + self.line())

    def _write(self, text: str) -> None:
        assert self.stream is not None
        self.stream.write(text)
        self.stream.flush()
