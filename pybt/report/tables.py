"""A run as tables: the summary, a schedule, the failures, the exploits and the configuration
as text (for a terminal) or escaped HTML (for :func:`pybt.report.write_html`), and the steps
as CSV.

Every table reads a :class:`~pybt.history.RunHistory`; none needs matplotlib or pandas.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pybt.callbacks.progress import format_seconds
from pybt.errors import invalid_argument
from pybt.history import RunHistory
from pybt.lineage import merged_schedule
from pybt.report.rows import check_history, direction, run_summary
from pybt.report.spaces import check_space, ordered_names, space_of, space_text, value_text
from pybt.store.files import write_atomically, write_failure

_FORMATS = ("text", "html")
_REPORT_HINT = "Write the report elsewhere (pybt report RUN_DIR --out FILE), or fix the permissions."
# What a spreadsheet takes for the start of a formula (OWASP's list for CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def write_report_file(path: str | Path, text: str) -> Path:
    """Write a report file in one piece, replacing (never following) a link planted there."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_failure(path.parent, error, _REPORT_HINT) from error
    write_atomically(path, text.encode("utf-8"), _REPORT_HINT)
    return path


def format_value(value: Any, digits: int = 4) -> str:
    """A cell: floats to ``digits`` significant digits, None as empty, the rest as text."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return str(value)


def render_table(headers: Sequence[str] | None, rows: Sequence[Sequence[Any]], format: str = "text") -> str:
    """``rows`` under ``headers`` (None: no header line): aligned text, or an escaped HTML ``<table>``."""
    if format not in _FORMATS:
        raise invalid_argument("format", format, "'text' or 'html'")
    cells = [[value if isinstance(value, str) else format_value(value) for value in row] for row in rows]
    if format == "html":
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers or ())
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in cells
        )
        thead = f"<thead><tr>{head}</tr></thead>" if headers is not None else ""
        return f"<table>{thead}<tbody>{body}</tbody></table>"
    columns = len(headers) if headers is not None else max((len(row) for row in cells), default=0)
    titles = list(headers) if headers is not None else [""] * columns
    # A cell of several lines (a space, one hyperparameter a line) spans as many text lines.
    split = [[cell.split("\n") for cell in row] for row in cells]
    widths = [max([len(t), *(len(line) for row in split for line in row[i])]) for i, t in enumerate(titles)]
    lines: list[str] = []
    if headers is not None:
        lines.append("  ".join(t.ljust(w) for t, w in zip(titles, widths, strict=True)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
    for row in split:
        for k in range(max((len(cell) for cell in row), default=1)):
            parts = [(cell[k] if k < len(cell) else "").ljust(w) for cell, w in zip(row, widths, strict=True)]
            lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def summary(history: RunHistory, config: Mapping[str, Any] | None = None, *, format: str = "text") -> str:
    """The headline numbers as a two-column table (see :func:`pybt.report.run_summary`)."""
    numbers = run_summary(history, config)
    metric = numbers["metric"] or "score"
    if numbers["best_member"] is None:
        best_member, best_score = "none (no completed step)", ""
    else:
        best_member = str(numbers["best_member"])
        best_score = f"{format_value(numbers['best_score'], 6)} at epoch {numbers['best_epoch']}"
    rows = [
        ("Best member", best_member),
        (f"Best {metric} ({direction(history)})", best_score),
        ("Members", str(numbers["members"])),
        ("Epochs (furthest member)", str(numbers["epochs"])),
        ("Steps recorded", str(numbers["steps"])),
        ("Exploits", str(numbers["exploits"])),
        ("Failed steps", str(numbers["failures"])),
        ("Failed members replaced", str(numbers["replacements"])),
        ("Training time (all steps)", format_seconds(numbers["seconds"])),
    ]
    return render_table(None, rows, format)


def schedule_rows(
    history: RunHistory, member: int | None = None, *, space: Mapping[str, Any] | None = None
) -> tuple[list[str], list[list[Any]]]:
    """The schedule of ``member`` (default: the best) as (headers, rows): one row per stretch of
    unchanged hyperparameters trained by one member, with its epochs and that member.

    The hyperparameter columns follow ``space`` (the run's ``{name: Domain}`` or its recorded
    description) where it names them, then the order the records first give them.
    """
    entries = merged_schedule(check_history(history).schedule(member))
    names = ordered_names(
        (name for entry in entries for name in entry["hyperparameters"]), check_space(space)
    )
    headers = ["epochs", "member", *names]
    rows = [
        [
            f"{entry['from_epoch']}-{entry['to_epoch']}",
            str(entry["member"]),
            *(entry["hyperparameters"].get(name) for name in names),
        ]
        for entry in entries
    ]
    return headers, rows


def schedule_table(
    history: RunHistory,
    member: int | None = None,
    *,
    space: Mapping[str, Any] | None = None,
    format: str = "text",
) -> str:
    """The schedule of ``member`` (default: the best) merged into stretches, as a table (columns
    in the order of ``space`` where given: see :func:`schedule_rows`)."""
    headers, rows = schedule_rows(history, member, space=space)
    return render_table(headers, rows, format)


def failures_table(history: RunHistory, *, format: str = "text") -> str:
    """One row per failed step: member, epoch, hyperparameters, error."""
    rows = [
        [str(record.member), str(record.epoch), _hyperparameters_text(record.hyperparameters), record.error]
        for record in check_history(history).failures
    ]
    return render_table(["member", "epoch", "hyperparameters", "error"], rows, format)


def exploits_table(history: RunHistory, *, format: str = "text") -> str:
    """One row per exploit: who copied whom at which epochs, and the hyperparameters it got."""
    rows = [
        [
            str(record.member),
            str(record.donor),
            f"{record.member_epoch} → {record.epoch}",
            record.reason,
            _hyperparameters_text(record.old_hyperparameters),
            _hyperparameters_text(record.new_hyperparameters),
        ]
        for record in check_history(history).exploits
    ]
    headers = ["member", "donor", "epoch (own → donor's)", "reason", "before", "after"]
    return render_table(headers, rows, format)


def config_table(config: Mapping[str, Any] | None, *, format: str = "text") -> str:
    """The run's configuration as ``setting | value`` rows, recorded objects in words
    (``StopAfter(epochs=8)``) and the space one hyperparameter a line."""
    rows = [[str(key), _config_text(key, value)] for key, value in dict(config or {}).items()]
    return render_table(["setting", "value"], rows, format)


def _config_text(key: str, value: Any) -> str:
    space = space_of(value) if key == "space" else None
    return space_text(space) if space else value_text(value)


def _hyperparameters_text(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={format_value(value)}" for name, value in values.items())


def write_csv(path: str | Path, history: RunHistory) -> Path:
    """The steps, one line per member-step, in the columns of :meth:`RunHistory.flat`
    (``hp_<name>`` and ``metric_<name>``); the same as ``history.frame()`` read back."""
    columns, rows = check_history(history).flat()
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows({k: _csv_cell(v) for k, v in row.items()} for row in rows)
    return write_report_file(path, text.getvalue())


def float_text(value: float) -> str:
    """The shortest text that reads back as the number a member used.

    A float64 goes through ``repr`` (it reads back exactly). A value that is exactly a float32
    was most likely one widened (Keras metrics, a learning rate read back from an optimizer):
    ``0.0010000000474974513`` is ``np.float32(0.001)``, and is written ``0.001``, the shortest
    text that reads back as that float32, when that is shorter.
    """
    value = float(value)
    text = repr(value)
    if not math.isfinite(value):
        return text
    with np.errstate(over="ignore"):  # beyond float32's range: not a float32, no warning
        single = np.float32(value)
    if float(single) == value:
        short = str(single)  # NumPy prints a float32 as its shortest round-tripping digits
        if len(short) < len(text):
            return short
    return text


def _csv_cell(value: Any) -> Any:
    """A CSV cell; text a spreadsheet would run as a formula is quoted with a leading ``'``."""
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return float_text(value)  # a number's text: "-0.5" is never quoted
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return value
    text = value if isinstance(value, str) else format_value(value)
    return "'" + text if text[:1] in _FORMULA_STARTS else text
