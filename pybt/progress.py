"""A one-line progress display over member-epochs, with the best score so far.

Plain text on stderr, redrawn in place with a carriage return, so it works in a terminal
and in a notebook without extra packages. Redraws are throttled: a population of a
thousand members must not spend its time printing.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_BAR_WIDTH = 24
_MIN_REDRAW_SECONDS = 0.2
_LOG_EVERY_FRACTION = 0.1  # where the line cannot be redrawn (a log file), print it every 10 %


def format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class Progress:
    """Counts member-epochs done out of ``total`` (None when the stopping rule has no bound)."""

    def __init__(self, total: int | None, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total, self.enabled = total, enabled
        self.label = "score"
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.best: float | None = None
        self._started = time.perf_counter()
        self._last_draw = 0.0
        self._last_logged = 0
        # A terminal or a notebook redraws one line in place; a log file gets a line now and then.
        self._redraws = bool(getattr(self.stream, "isatty", lambda: False)()) or "ipykernel" in sys.modules

    def update(self, epochs: int, best: float | None, label: str | None = None) -> None:
        self.done += epochs
        self.best = best
        self.label = label or self.label
        if not self.enabled:
            return
        if self._redraws:
            now = time.perf_counter()
            if now - self._last_draw >= _MIN_REDRAW_SECONDS:
                self._last_draw = now
                self._draw()
        elif self.total and self.done - self._last_logged >= _LOG_EVERY_FRACTION * self.total:
            self._last_logged = self.done
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            if self._redraws:
                self._draw()
                self.stream.write("\n")
            elif self._last_logged != self.done or self.done == 0:
                self.stream.write(self.line() + "\n")
            self.stream.flush()

    def line(self) -> str:
        elapsed = time.perf_counter() - self._started
        best = "-" if self.best is None else f"{self.best:.4g}"
        if self.total:
            filled = min(_BAR_WIDTH, _BAR_WIDTH * self.done // self.total)
            bar = "#" * filled + "." * (_BAR_WIDTH - filled)
            count = f"{self.done}/{self.total}"
        else:
            bar, count = "", str(self.done)
        return f"member-epochs {count} [{bar}] best {self.label} {best} | {format_seconds(elapsed)}"

    def _draw(self) -> None:
        self.stream.write("\r" + self.line())
        self.stream.flush()
