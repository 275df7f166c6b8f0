"""``TensorBoard(log_dir)``: a run as TensorBoard runs, one per member, read by ``tensorboard --logdir``.

Each member is a run of its own, ``log_dir/member-00``, ``member-01``, ... with, at step = the
member's epoch:

- ``metrics/<name>``: every metric of each step (evaluated ones, training ones as ``train_*``);
- ``hyperparameters/<name>``: every numeric hyperparameter the step trained with;
- ``exploits`` (text): who copied whom, at which epoch, old → new hyperparameters;
  ``failures`` (text): a failed step and its error;
- at the end of a run, the HParams dashboard's summary of the final members: the
  hyperparameters their final weights were trained with, and ``final/score`` and
  ``final/<metric>`` (where each member stands at the end).

**One value per step, the newest.** A member that copies a donor which trained fewer epochs
goes back to the donor's epoch, and a run resumed from its run folder trains again the steps
after its newest checkpoint. Either way the member's run gets a restart marker (a
``SessionLog.START`` event, TensorBoard's own ``purge_step`` mechanism) at the epoch it trains
next, and TensorBoard drops the member's points from that epoch on: each member's curve is its
latest history, with no step shown twice. The journal and ``pybt report`` keep everything.
Use one ``log_dir`` per run: a new run in an old ``log_dir`` hides the old curves the same
way, but TensorBoard keeps the first HParams summary of a member's run.

Events are encoded with tensorboardX's protocol buffers and record framing, kept in memory and
appended to the member's event file at every checkpoint cut, at the end of ``train()`` (also an
interrupted one), and otherwise every ``flush_secs`` seconds. No writer thread or open file is
held per member, so a population of thousands costs one file per member and nothing more.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from pybt._imports import require
from pybt._validate import check_real, is_real
from pybt.callbacks.base import Callback, TrainResult
from pybt.errors import invalid_argument

if TYPE_CHECKING:
    from pybt.history import ExploitRecord, FailureRecord, RunHistory, StepRecord
    from pybt.trainer import Trainer

EXTRA = "tensorboard"


def member_run_name(member: int, population_size: int) -> str:
    """``member-07``: zero-padded, so TensorBoard lists the members in order."""
    return f"member-{member:0{max(2, len(str(max(population_size - 1, 0))))}d}"


def _load_tensorboardx() -> SimpleNamespace:
    require("tensorboardX", EXTRA)
    return SimpleNamespace(
        events=require("tensorboardX.proto.event_pb2", EXTRA, "tensorboardX"),
        summary_pb2=require("tensorboardX.proto.summary_pb2", EXTRA, "tensorboardX"),
        summary=require("tensorboardX.summary", EXTRA, "tensorboardX"),
        masked_crc32c=require("tensorboardX.record_writer", EXTRA, "tensorboardX").masked_crc32c,
    )


@dataclass
class _MemberRun:
    """One member's event file for this ``train()``: events not yet written, and the last step."""

    path: Path
    last_step: int  # the newest epoch written: a step at or below it is a restart
    pending: list[bytes] = field(default_factory=list)
    has_data: bool = False  # only the file's opening events so far: nothing to write yet


class TensorBoard(Callback):
    """Writes each member's metrics, hyperparameters, exploits and final HParams for TensorBoard.

    ``log_dir``: the folder ``tensorboard --logdir`` is pointed at (created if missing).
    ``flush_secs``: the longest time events wait in memory between checkpoint cuts.
    """

    def __init__(self, log_dir: str | os.PathLike[str], *, flush_secs: float = 10.0) -> None:
        usable = isinstance(log_dir, (str, os.PathLike)) and not Path(log_dir).is_file()
        if not usable:
            raise invalid_argument(
                "log_dir", log_dir, "a folder, or a path to create one", "e.g. TensorBoard('runs/pbt')."
            )
        self.log_dir = Path(log_dir)
        self.flush_secs = check_real("flush_secs", flush_secs, 0.0)
        self._tbx = _load_tensorboardx()
        self._runs: dict[int, _MemberRun] = {}
        self._starts: dict[int, int] = {}  # each member's epoch when train() began
        self._population_size = 1
        self._last_flush = time.monotonic()
        # One name stem per file, ordered by time: TensorBoard reads a run's files in name order.
        self._host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"

    def __repr__(self) -> str:
        return f"TensorBoard({str(self.log_dir)!r})"

    # ---- hooks ----------------------------------------------------------------------------------
    def on_train_begin(self, trainer: Trainer) -> None:
        # A new file per member and per train(): it opens with a restart marker at the epoch the
        # member trains next, which hides what an earlier, resumed session wrote after it.
        self._runs = {}
        self._population_size = trainer.population_size
        history = trainer.run_history
        self._starts = {member: _position(history, member) for member in history.members}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._last_flush = time.monotonic()

    def on_step(self, trainer: Trainer, record: StepRecord) -> None:
        Summary = self._tbx.summary_pb2.Summary
        values = [Summary.Value(tag=f"metrics/{name}", simple_value=v) for name, v in record.metrics.items()]
        values += [
            Summary.Value(tag=f"hyperparameters/{name}", simple_value=float(value))
            for name, value in record.hyperparameters.items()
            if is_real(value)
        ]
        self._write(record.member, record.epoch, Summary(value=values))
        if time.monotonic() - self._last_flush >= self.flush_secs:
            self.flush()

    def on_exploit(self, trainer: Trainer, record: ExploitRecord) -> None:
        run = self._run(record.member)
        if record.epoch < run.last_step:  # back to the donor's epoch: hide the steps after it
            self._restart(run, record.epoch + 1)
        run.last_step = record.epoch
        self._write(record.member, record.epoch, self._tbx.summary.text("exploits", exploit_text(record)))

    def on_failure(self, trainer: Trainer, record: FailureRecord) -> None:
        text = f"The step from epoch {record.epoch} failed: {record.error}"
        self._write(record.member, record.epoch, self._tbx.summary.text("failures", text))

    def on_checkpoint(self, trainer: Trainer, sequence: int) -> None:
        self.flush()

    def on_train_end(self, trainer: Trainer, result: TrainResult | None) -> None:
        if result is not None:
            self._write_hparams(trainer.run_history)
        self.flush()

    # ---- writing --------------------------------------------------------------------------------
    def flush(self) -> None:
        """Append every member's waiting events to its event file."""
        for run in self._runs.values():
            if run.has_data and run.pending:
                with open(run.path, "ab") as file:
                    file.write(b"".join(run.pending))
                run.pending.clear()
        self._last_flush = time.monotonic()

    def _run(self, member: int) -> _MemberRun:
        run = self._runs.get(member)
        if run is None:
            folder = self.log_dir / member_run_name(member, self._population_size)
            folder.mkdir(parents=True, exist_ok=True)
            now = time.time_ns()
            name = f"events.out.tfevents.{now // 10**9:010d}.{now:020d}.{self._host}.{os.getpid()}.pybt"
            start = self._starts.get(member, 0)
            run = self._runs[member] = _MemberRun(folder / name, start)
            Event = self._tbx.events.Event
            self._add(run, Event(wall_time=time.time(), file_version="brain.Event:2"))
            self._restart(run, start + 1)
        return run

    def _restart(self, run: _MemberRun, step: int) -> None:
        events = self._tbx.events
        start = events.SessionLog(status=events.SessionLog.START)
        self._add(run, events.Event(wall_time=time.time(), step=step, session_log=start))

    def _write(self, member: int, step: int, summary: Any) -> None:
        run = self._run(member)
        self._add(run, self._tbx.events.Event(wall_time=time.time(), step=step, summary=summary))
        run.has_data = True
        run.last_step = max(run.last_step, step)

    def _add(self, run: _MemberRun, event: Any) -> None:
        # TFRecord framing, as tensorboardX's RecordWriter writes it (length, CRCs, data).
        data = event.SerializeToString()
        header = struct.pack("Q", len(data))
        crc = self._tbx.masked_crc32c
        run.pending.append(header + struct.pack("I", crc(header)) + data + struct.pack("I", crc(data)))

    def _write_hparams(self, history: RunHistory) -> None:
        """Each member's final standing as an HParams session: its hparams and final metrics."""
        for member in history.members:
            steps = history.lineage_steps(member)
            if not steps:  # its last step failed, or it never stepped: no score to show
                continue
            last = steps[-1]
            finals = {"final/score": last.score, **{f"final/{k}": v for k, v in last.metrics.items()}}
            hparams = {name: _hparam_value(value) for name, value in last.hyperparameters.items()}
            experiment, start, end = self._tbx.summary.hparams(hparams, finals)
            Summary = self._tbx.summary_pb2.Summary
            scalars = Summary(value=[Summary.Value(tag=k, simple_value=v) for k, v in finals.items()])
            for summary in (experiment, start, scalars, end):
                self._write(member, last.epoch, summary)


def exploit_text(record: ExploitRecord) -> str:
    """Markdown for TensorBoard's text dashboard: the copy, and a table of old → new values."""
    why = "replacing its failed step" if record.reason == "failure" else "exploit"
    lines = [
        f"member {record.member} copied member {record.donor} at epoch {record.epoch} "
        f"(it was at epoch {record.member_epoch}; {why})",
        "",
        "| hyperparameter | old | new |",
        "| --- | --- | --- |",
    ]
    names = dict.fromkeys([*record.old_hyperparameters, *record.new_hyperparameters])
    for name in names:
        old, new = record.old_hyperparameters.get(name), record.new_hyperparameters.get(name)
        lines.append(f"| {name} | {_shown(old)} | {_shown(new)} |")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    return repr(value.item() if hasattr(value, "item") else value)  # 0.1, not np.float64(0.1)


def _position(history: RunHistory, member: int) -> int:
    """The epoch ``member`` stands at in the records (its last step, copy, or failed step)."""
    records = history.member_records(member)
    return records[-1].epoch if records else 0


def _hparam_value(value: Any) -> bool | int | float | str:
    """A value the HParams dashboard shows: numbers, strings and booleans as they are."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):  # a NumPy scalar
        return value.item()
    return repr(value)
