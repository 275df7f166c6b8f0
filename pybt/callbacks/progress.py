"""The progress display ``verbose=1`` adds (``verbose=2``: one line per member too).

It shows member-epochs done out of the total the stopping rule allows, rate and time left, and
two labelled numbers: the best member *now* (what ``train()`` would return if the run ended
here) and the best score *ever* seen (by whom, at which epoch). The last line it draws shows
the score ``train()`` returns.

In a terminal or a notebook it is a ``tqdm`` bar (``tqdm.auto``: a widget in Jupyter); where
the output is not a terminal (a log file, CI) it prints a plain line every 10 %. Without tqdm
installed (``pip install "pybt[progress]"``) terminals get the plain line too, redrawn in place.

Done counts, per member, the furthest epoch its weights have reached: a copy that takes a
member back to a donor's earlier epoch does not move the bar back, and the bar reaches 100 %
when every member has trained to the end.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from pybt.callbacks.base import Callback, TrainResult

if TYPE_CHECKING:
    from pybt.history import ExploitRecord, StepRecord
    from pybt.trainer import Trainer

_BAR_WIDTH = 24
_MIN_REDRAW_SECONDS = 0.2
_LOG_EVERY_FRACTION = 0.1  # where the line cannot be redrawn (a log file), print it every 10 %
_MEMBER_LINES = 32  # verbose=2 shows this many members' own lines at most


def format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _current_hyperparameters(records: list[Any]) -> dict[str, Any]:
    """A member's hyperparameters now: those of its newest record (a copy's explored ones)."""
    from pybt.history import ExploitRecord

    for record in reversed(records):
        return dict(
            record.new_hyperparameters if isinstance(record, ExploitRecord) else record.hyperparameters
        )
    return {}


class ProgressBar(Callback):
    """Member-epochs done, rate, time left, the best member now and the best score ever.

    ``per_member=True`` (what ``verbose=2`` picks) adds a line per member: its epoch, score,
    hyperparameters and the member it last copied.
    """

    def __init__(self, stream: TextIO | None = None, per_member: bool = False) -> None:
        self.stream = stream
        self.per_member = per_member
        self.total: int | None = None
        self.done = 0
        self._trainer: Trainer | None = None
        self._reached: dict[int, int] = {}  # the furthest epoch each member's weights reached
        self._started = time.perf_counter()
        self._done_at_start = 0
        self._last_draw = 0.0
        self._last_logged = 0
        self._bar: Any = None
        self._member_bars: dict[int, Any] = {}
        self._final: TrainResult | None = None
        self._drawn = 0  # the length of the line drawn last (plain, redrawn in place)

    # ---- the hooks -------------------------------------------------------------------------------
    def on_train_begin(self, trainer: Trainer) -> None:
        self._trainer = trainer
        self.stream = self.stream if self.stream is not None else sys.stderr
        epochs = trainer.stopping_criteria.max_epochs
        self.total = None if epochs is None else epochs * trainer.population_size
        history = trainer.run_history
        self._reached = {}
        for record in [*history.steps, *history.exploits]:  # a resumed or re-run trainer starts
            self._reach(record.member, record.epoch)  # where its records are
        self.done = self._count()
        self._done_at_start, self._started, self._last_logged, self._final = (
            self.done,
            time.perf_counter(),
            0,
            None,
        )
        if self._interactive() and importlib.util.find_spec("tqdm") is not None:
            self._open_bars(trainer)

    def _reach(self, member: int, epoch: int) -> None:
        """A member is at ``epoch``: by training, or by copying a donor that was there (a member
        can end the run on a donor's last epoch without a step of its own)."""
        if epoch > self._reached.get(member, 0):
            self._reached[member] = epoch
            self.done = self._count()

    def on_step(self, trainer: Trainer, record: StepRecord) -> None:
        self._reach(record.member, record.epoch)
        if record.member in self._member_bars:
            self._describe_member(record.member)
        self._show()

    def on_exploit(self, trainer: Trainer, record: ExploitRecord) -> None:
        self._reach(record.member, record.epoch)
        if record.member in self._member_bars:
            self._describe_member(record.member, copied=record.donor)
        elif self.per_member and self._bar is None and not self._interactive():
            new = ", ".join(
                f"{k}={_number(v) if isinstance(v, float) else v}"
                for k, v in record.new_hyperparameters.items()
            )
            self._write(
                f"member {record.member} copied member {record.donor} at epoch {record.epoch}: {new}\n"
            )

    def on_train_end(self, trainer: Trainer, result: TrainResult | None) -> None:
        self._final = result
        if self._bar is not None:
            self._bar.n = self.done
            self._bar.set_postfix_str(self.summary(), refresh=False)
            for bar in self._member_bars.values():
                bar.close()
            self._bar.close()
            self._bar, self._member_bars = None, {}
        elif self._interactive():
            self._redraw()
            self._write("\n")
        elif self._last_logged != self.done or self.done == 0:
            self._write(self.line() + "\n")

    # ---- what it shows ------------------------------------------------------------------------------
    def summary(self) -> str:
        """``best now ... | best ever ...``: the two numbers, labelled."""
        history = self._trainer.run_history if self._trainer is not None else None
        if history is None:
            return "best now - | best ever -"
        label = history.metric or "score"
        if self._final is not None:  # what train() returns, exactly
            now = f"{label} {_number(self._final.score)} (member {self._final.member})"
        else:
            standing = history.best()
            now = "-" if standing is None else f"{label} {_number(standing.score)} (member {standing.member})"
        ever = history.best_ever()
        best_ever = (
            "-" if ever is None else f"{_number(ever.score)} (member {ever.member}, epoch {ever.epoch})"
        )
        return f"best now {now} | best ever {best_ever}"

    def line(self) -> str:
        elapsed = time.perf_counter() - self._started
        if self.total:
            filled = min(_BAR_WIDTH, _BAR_WIDTH * self.done // self.total)
            count = f"{self.done}/{self.total} [{'#' * filled}{'.' * (_BAR_WIDTH - filled)}]"
        else:
            count = str(self.done)
        trained = self.done - self._done_at_start
        rate = trained / elapsed if elapsed > 0 else 0.0
        left = ""
        if self.total and rate > 0 and self.done < self.total:
            left = f" < {format_seconds((self.total - self.done) / rate)}"
        timing = f"{format_seconds(elapsed)}{left}, {rate:.3g} member-epochs/s"
        return f"member-epochs {count} | {self.summary()} | {timing}"

    # ---- drawing -------------------------------------------------------------------------------------
    def _count(self) -> int:
        cap = self._trainer.stopping_criteria.max_epochs if self._trainer is not None else None
        return sum(epoch if cap is None else min(epoch, cap) for epoch in self._reached.values())

    def _interactive(self) -> bool:
        """A terminal, or a notebook's output (Jupyter's stream is not a tty, but redraws)."""
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty()) or type(self.stream).__module__.startswith("ipykernel")

    def _open_bars(self, trainer: Trainer) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=self.total, initial=self.done, unit="member-epoch", file=self.stream, dynamic_ncols=True,
            mininterval=_MIN_REDRAW_SECONDS, desc="PBT",
        )  # fmt: skip
        if self.per_member:
            for position, member in enumerate(
                sorted(trainer.run_history.members or range(trainer.population_size))
            ):
                if position == _MEMBER_LINES:
                    break
                self._member_bars[member] = tqdm(
                    total=trainer.stopping_criteria.max_epochs, file=self.stream, position=position + 1,
                    leave=False, dynamic_ncols=True, bar_format="{desc}",
                )  # fmt: skip
                self._describe_member(member)

    def _describe_member(self, member: int, copied: int | None = None) -> None:
        assert self._trainer is not None
        history = self._trainer.run_history
        standing = history.standing(member)
        epoch = 0 if standing is None else standing.epoch
        hyperparameters = _current_hyperparameters(history.member_records(member))
        values = " ".join(
            f"{k}={_number(v) if isinstance(v, float) else v}" for k, v in hyperparameters.items()
        )
        origin = f" ← copied member {copied}" if copied is not None else ""
        score = "-" if standing is None else _number(standing.score)
        self._member_bars[member].set_description_str(
            f"  member {member:>3} epoch {epoch:>4} {history.metric or 'score'} {score:>8} {values}{origin}"
        )

    def _show(self) -> None:
        now = time.perf_counter()
        if self._bar is not None:
            if now - self._last_draw >= _MIN_REDRAW_SECONDS:
                self._last_draw = now
                self._bar.n = self.done
                self._bar.set_postfix_str(self.summary())
            return
        if self._interactive():
            if now - self._last_draw >= _MIN_REDRAW_SECONDS:
                self._last_draw = now
                self._redraw()
        elif self.total and self.done - self._last_logged >= _LOG_EVERY_FRACTION * self.total:
            self._last_logged = self.done
            self._write(self.line() + "\n")

    def _redraw(self) -> None:
        """The line again, over the last one (padded, so a shorter line leaves nothing behind)."""
        line = self.line()
        self._write("\r" + line.ljust(self._drawn))
        self._drawn = len(line)

    def _write(self, text: str) -> None:
        assert self.stream is not None
        self.stream.write(text)
        self.stream.flush()
