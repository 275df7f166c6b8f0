"""The top of the report page: how the run stands (finished, running, interrupted), when it
started and last recorded a step, and which PyBT recorded it — so that a report taken mid-run
says so instead of looking final.

A run folder knows all of this (:func:`pybt.load_run` gives ``status``, ``created_at``,
``updated_at`` and ``version``); a live trainer's history knows none of it, so the page says
what it was told and no more.
"""

from __future__ import annotations

import datetime
import html
import math
from typing import Any

from pybt._version import __version__
from pybt.errors import invalid_argument

# What each status means to a reader, and whether the figures may still change.
STATUSES = {
    "finished": ("finished", ""),
    "running": (
        "running",
        "The run was still training when this report was made: the best member, the figures and the "
        "tables show it as far as it had got, and will change.",
    ),
    "in progress": (
        "in progress",
        "The run was still training when this report was made: the best member, the figures and the "
        "tables show it as far as it had got, and will change.",
    ),
    "interrupted": (
        "interrupted",
        "The run stopped before it finished (train() again with the same run_dir goes on from its "
        "newest checkpoint): this report shows it as far as it got.",
    ),
}
_NOT_GIVEN = (
    "status not given",
    "Drawn from a trainer's history in memory, which does not say whether the run had finished "
    "(write_html(..., status=...) says it).",
)

HEADER_STYLE = """
.facts { color: #444; margin: 0.3em 0; }
.facts span + span::before { content: " · "; color: #999; }
.badge { display: inline-block; padding: 0.1em 0.6em; border-radius: 0.8em; font-weight: 600;
         font-size: 0.9em; color: #fff; background: #777; margin-right: 0.5em; }
.badge.finished { background: #2e7d32; }
.badge.running, .badge.in-progress { background: #b26a00; }
.badge.interrupted { background: #c62828; }
.note { border-left: 4px solid #b26a00; background: #fff8e1; padding: 0.5em 0.9em; margin: 0.8em 0; }
"""


def check_status(status: Any) -> str | None:
    """``status`` if it is one the page knows (or None); a PyBTError naming the choices."""
    if status is not None and status not in STATUSES:
        raise invalid_argument(
            "status", status, "None or one of " + ", ".join(repr(name) for name in STATUSES)
        )
    return status


def check_time(name: str, value: Any) -> float | None:
    """``value`` as seconds since the epoch (or None); a PyBTError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise invalid_argument(name, value, "seconds since the epoch (time.time()), or None")
    return float(value)


def format_time(seconds: float, day_of: float | None = None) -> str:
    """``2025-03-01 14:05:09 CET``: the reader's local time, with its zone; only the time of day
    when it falls on the same day as ``day_of``."""
    moment = datetime.datetime.fromtimestamp(seconds).astimezone()
    same_day = day_of is not None and datetime.datetime.fromtimestamp(day_of).date() == moment.date()
    return moment.strftime("%H:%M:%S %Z" if same_day else "%Y-%m-%d %H:%M:%S %Z").strip()


def duration_text(seconds: float) -> str:
    """``45 s``, ``3 min 20 s``, ``2 h 5 min``, ``3 days 4 h``: two units at most."""
    seconds = max(0, round(seconds))
    units = (("day", 86400), ("h", 3600), ("min", 60), ("s", 1))
    words = []
    for name, size in units:
        amount, seconds = divmod(seconds, size)
        if amount or (words and len(words) < 2):
            plural = "s" if name == "day" and amount != 1 else ""
            words.append(f"{amount} {name}{plural}")
        if len(words) == 2:
            break
    return " ".join(words) or "0 s"


def header_html(
    *,
    status: str | None,
    counts: str,
    created_at: float | None,
    updated_at: float | None,
    version: str | None,
) -> str:
    """The status badge and the counts, then the dates and versions, then a note when the run
    had not finished."""
    label, note = _NOT_GIVEN if status is None else STATUSES[status]
    badge = f'<span class="badge {html.escape(label.replace(" ", "-"))}">{html.escape(label)}</span>'
    facts: list[str] = []
    if created_at is not None:
        facts.append(f"started {format_time(created_at)}")
    if updated_at is not None:
        later = f" ({duration_text(updated_at - created_at)} later)" if created_at is not None else ""
        facts.append(f"last record {format_time(updated_at, created_at)}{later}")
    if version is not None:
        facts.append(f"recorded by PyBT {version}")
    if version != __version__:
        facts.append(f"report by PyBT {__version__}")
    # When the report was made tells how stale a snapshot of a running run is.
    facts.append(f"report made {format_time(datetime.datetime.now().timestamp(), updated_at)}")
    parts = [
        f'<p class="facts">{badge}{html.escape(counts)}</p>',
        '<p class="facts">' + "".join(f"<span>{html.escape(fact)}</span>" for fact in facts) + "</p>",
    ]
    if note:
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    return "\n".join(parts)
