"""A run as tables: the summary, the winning schedule, failures and exploits as text or HTML,
and the whole history as CSV or a pandas DataFrame.

Every function takes the plain rows described in :mod:`pybt.member`; text tables are for a
terminal, HTML tables (escaped) for :func:`pybt.report.write_html`.
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pybt.errors import MissingDependencyError, invalid_argument
from pybt.callbacks.progress import format_seconds
from pybt.report.rows import (
    Rows,
    by_sequence,
    history_records,
    merged_schedule,
    run_summary,
    winning_schedule,
)

_FORMATS = ("text", "html")


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
    widths = [max([len(t), *(len(row[i]) for row in cells)]) for i, t in enumerate(titles)]
    lines: list[str] = []
    if headers is not None:
        lines.append("  ".join(t.ljust(w) for t, w in zip(titles, widths, strict=True)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)
    return "\n".join(lines)


def summary(
    steps: Rows,
    exploits: Rows = (),
    failures: Rows = (),
    config: Mapping[str, Any] | None = None,
    *,
    format: str = "text",
) -> str:
    """The headline numbers as a two-column table (``config`` gives ``metric`` and ``mode``)."""
    numbers = run_summary(steps, exploits, failures, config)
    metric = numbers["metric"] or "score"
    direction = "higher is better" if numbers["mode"] == "max" else "lower is better"
    if numbers["best_member"] is None:
        best_member, best_score = "none (no completed step)", ""
    else:
        best_member = str(numbers["best_member"])
        best_score = f"{format_value(numbers['best_score'], 6)} at epoch {numbers['best_epoch']}"
    rows = [
        ("Best member", best_member),
        (f"Best {metric} ({direction})", best_score),
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
    steps: Rows,
    exploits: Rows,
    member: int | None = None,
    *,
    mode: str | None = "max",
    failures: Rows = (),
) -> tuple[list[str], list[list[Any]]]:
    """The winning schedule as (headers, rows): one row per stretch of unchanged hyperparameters
    trained by one member, with its epochs and the member that trained it."""
    entries = merged_schedule(winning_schedule(steps, exploits, member, mode, failures))
    names: dict[str, None] = {}
    for entry in entries:
        names.update(dict.fromkeys(entry["hyperparameters"]))
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
    steps: Rows,
    exploits: Rows,
    member: int | None = None,
    *,
    mode: str | None = "max",
    failures: Rows = (),
    format: str = "text",
) -> str:
    """The schedule of ``member`` (default: the best) merged into stretches, as a table."""
    headers, rows = schedule_rows(steps, exploits, member, mode=mode, failures=failures)
    return render_table(headers, rows, format)


def failures_table(failures: Rows, *, format: str = "text") -> str:
    """One row per failed step: member, epoch, hyperparameters, error."""
    rows = [
        [str(row["member"]), str(row["epoch"]), _hyperparameters_text(row["hyperparameters"]), row["error"]]
        for row in by_sequence(failures)
    ]
    return render_table(["member", "epoch", "hyperparameters", "error"], rows, format)


def exploits_table(exploits: Rows, *, format: str = "text") -> str:
    """One row per exploit: who copied whom at which epochs, and the hyperparameters it got."""
    rows = [
        [
            str(row["member"]),
            str(row["donor"]),
            f"{row['member_epoch']} → {row['epoch']}",
            row.get("reason", "exploit"),
            _hyperparameters_text(row["old_hyperparameters"]),
            _hyperparameters_text(row["new_hyperparameters"]),
        ]
        for row in by_sequence(exploits)
    ]
    headers = ["member", "donor", "epoch (own → donor's)", "reason", "before", "after"]
    return render_table(headers, rows, format)


def config_table(config: Mapping[str, Any] | None, *, format: str = "text") -> str:
    """The run's configuration as ``setting | value`` rows."""
    rows = [[str(key), format_value(value, 6)] for key, value in dict(config or {}).items()]
    return render_table(["setting", "value"], rows, format)


def _hyperparameters_text(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={format_value(value)}" for name, value in values.items())


def write_csv(path: str | Path, steps: Rows) -> Path:
    """The history, one line per member-step, with ``hp_<name>`` and ``metric_<name>`` columns."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns, records = history_records(steps)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        # Floats go through repr, so the CSV reads back to the same numbers.
        writer.writerows({k: "" if v is None else v for k, v in record.items()} for record in records)
    return path


def history_frame(steps: Rows) -> Any:
    """The history as a pandas DataFrame with the same columns as :func:`write_csv`."""
    try:
        import pandas as pd
    except ImportError as error:
        raise MissingDependencyError(
            "pandas is not installed, and history_frame() needs it. Install it with: pip install pandas"
        ) from error
    columns, records = history_records(steps)
    return pd.DataFrame.from_records(records, columns=columns)
