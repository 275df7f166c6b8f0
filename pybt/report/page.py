"""One self-contained HTML page about a run: how it stands (status, dates, version), the summary
and the configuration, five figures (scores, every metric, hyperparameters, lineage, schedule),
the schedule, the exploits and the failures.

The figures are PNGs inside the page (base64 ``data:`` URIs), drawn on matplotlib's Agg
canvas without pyplot, so writing a report works on a headless machine and leaves the
user's pyplot state alone. The page has no scripts and loads nothing from elsewhere.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pybt.errors import invalid_argument
from pybt.history import RunHistory
from pybt.report.figures import plot_hyperparameters, plot_lineage, plot_metrics, plot_schedule, plot_scores
from pybt.report.figures._common import require_matplotlib
from pybt.report.header import HEADER_STYLE, check_status, check_time, header_html
from pybt.report.rows import check_history, run_summary
from pybt.report.spaces import space_of
from pybt.report.tables import (
    config_table,
    exploits_table,
    failures_table,
    schedule_table,
    summary,
    write_report_file,
)

Progress = Callable[[str], None] | None

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 0; background: #fafafa; }
main { max-width: 1080px; margin: 0 auto; padding: 1.5em 2em 3em; background: #fff; }
h1 { margin-bottom: 0.2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.side { display: flex; flex-wrap: wrap; gap: 0 2.5em; align-items: flex-start; }
.side section.wide { flex: 1 1 24em; }
.side section.wide table { width: 100%; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td { white-space: pre-wrap; overflow-wrap: anywhere; font-variant-numeric: tabular-nums; }
td:first-child { white-space: nowrap; }
figure { margin: 0.8em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; margin-top: 0.3em; }
details { margin: 0.8em 0; }
summary { cursor: pointer; font-weight: 600; }
"""


def figure_png(
    draw: Callable[..., Any],
    *args: Any,
    dpi: int = 96,
    progress: tuple[Progress, str] | None = None,
    **kwargs: Any,
) -> bytes:
    """The PNG bytes of ``draw(*args, fig=<new Figure>, **kwargs)``, rendered by Agg.

    ``progress`` is ``(callback, name)``: the callback hears the figure's name before it is drawn.
    """
    require_matplotlib()
    if progress is not None and progress[0] is not None:
        progress[0](progress[1])
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)  # Agg renders this figure whatever backend pyplot would pick
    draw(*args, fig=fig, **kwargs)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number} {one if number == 1 else many or one + 's'}"


def _img(png: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _more_than_the_score(history: RunHistory) -> bool:
    """Whether a step recorded a metric besides its score (a figure of the score alone would
    repeat the scores figure). By value, as a history may not name its metric."""
    return any(
        name != history.metric and value != step.score
        for step in history.steps
        for name, value in step.metrics.items()
    )


def _figures(history: RunHistory, space: dict[str, Any] | None, progress: Progress) -> list[str]:
    """The figures with their captions, and the schedule table under the schedule."""
    parts = [
        "<h2>Scores</h2>",
        _img(
            figure_png(plot_scores, history, progress=(progress, "scores")),
            "score of every member over epochs",
            "One line per member. A dashed line is an exploit: the member copied the donor's weights "
            "and went on from the donor's point. Grey underlay: the best member's lineage.",
        ),
    ]
    if _more_than_the_score(history):
        parts += [
            "<h2>Every metric</h2>",
            _img(
                figure_png(plot_metrics, history, progress=(progress, "metrics")),
                "every evaluated and training metric of every member over epochs",
                "Each metric the steps recorded, one line per member: evaluated on eval_args on the left, "
                "measured while training (train_*) on the right, beside its evaluated twin on one scale. "
                "Grey underlay: the best member's lineage.",
            ),
        ]
    parts += [
        "<h2>Hyperparameters</h2>",
        _img(
            figure_png(plot_hyperparameters, history, space=space, progress=(progress, "hyperparameters")),
            "hyperparameters of every member over epochs",
            "Each member's hyperparameters over epochs; a diamond marks an exploit, where the member "
            "took the donor's values and explored (perturbed or resampled) them. Log-scaled domains "
            "of the space (LogUniform, IntUniform(log=True)) are drawn on a log axis.",
        ),
        "<h2>Lineage of the best member</h2>",
        _img(
            figure_png(plot_lineage, history, progress=(progress, "lineage")),
            "lineage tree of the best member",
            "Members as rows. Bold: the training that made the best member's weights; arrows: exploits, "
            "from the donor's row to the member's, at the donor's epoch.",
        ),
        "<h2>Schedule of the best member</h2>",
        _img(
            figure_png(plot_schedule, history, space=space, progress=(progress, "schedule")),
            "hyperparameter schedule of the best member",
            "The hyperparameters that trained the best member's weights, epoch by epoch; the bands name "
            "the member that trained each stretch.",
        ),
        schedule_table(history, space=space, format="html"),
    ]
    return parts


def render_html(
    history: RunHistory,
    config: Mapping[str, Any] | None = None,
    *,
    title: str | None = None,
    status: str | None = None,
    created_at: float | None = None,
    updated_at: float | None = None,
    version: str | None = None,
    progress: Progress = None,
) -> str:
    """The report page as a string (see :func:`write_html`)."""
    history = check_history(history)
    config = dict(config or {})
    status = check_status(status)
    created_at, updated_at = check_time("created_at", created_at), check_time("updated_at", updated_at)
    if version is not None and not isinstance(version, str):
        raise invalid_argument("version", version, "the PyBT version that recorded the run (a str), or None")
    title = title or "PyBT run report"
    numbers = run_summary(history, config)
    counts = " · ".join(
        [
            _count(numbers["steps"], "step"),
            _count(numbers["exploits"], "exploit"),
            _count(numbers["failures"], "failed step"),
            _count(numbers["replacements"], "failed member replaced", "failed members replaced"),
        ]
    )
    configuration = config_table(config, format="html") if config else "<p>No configuration recorded.</p>"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}{HEADER_STYLE}</style></head><body><main>",
        f"<h1>{html.escape(title)}</h1>",
        header_html(
            status=status, counts=counts, created_at=created_at, updated_at=updated_at, version=version
        ),
        '<div class="side">',
        f"<section><h2>Summary</h2>{summary(history, config, format='html')}</section>",
        f'<section class="wide"><h2>Configuration</h2>{configuration}</section>',
        "</div>",
    ]
    if history.steps:
        parts += _figures(history, space_of(config.get("space")), progress)
    else:
        parts.append("<p>No completed steps yet: nothing to plot.</p>")
    if history.exploits:
        parts += [
            f"<details><summary>Every exploit and replacement ({len(history.exploits)})</summary>",
            exploits_table(history, format="html"),
            "</details>",
        ]
    if history.failures:
        parts += [f"<h2>Failed steps ({len(history.failures)})</h2>", failures_table(history, format="html")]
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def write_html(
    path: str | Path,
    history: RunHistory,
    config: Mapping[str, Any] | None = None,
    *,
    title: str | None = None,
    status: str | None = None,
    created_at: float | None = None,
    updated_at: float | None = None,
    version: str | None = None,
    progress: Progress = None,
) -> Path:
    """Write one self-contained HTML report of a run to ``path`` and return the path.

    ``history`` is the run's :class:`~pybt.history.RunHistory` (``trainer.run_history``, or
    ``pybt.store.load_run(run_dir).history``): it says what the score is, which way is better
    and which member is best. ``config`` is a small dict about the run (``population_size``,
    ``space``, ``seed``, ...) shown as a table at the top; its ``space`` (a ``{name: Domain}``
    dict or its recorded description) orders the schedule's columns and gives log-scaled
    hyperparameters a log axis.

    The top of the page says how the run stood: ``status`` (``"finished"``, ``"running"``,
    ``"in progress"``, ``"interrupted"``, or None: not given), ``created_at`` and ``updated_at``
    (seconds since the epoch: when it started and when it last recorded a step) and the PyBT
    ``version`` that recorded it; :func:`pybt.load_run` gives all four, for a live trainer pass
    ``status="in progress"`` while it trains. ``progress``, if given, is called with each
    figure's name before it is drawn (drawing a long run's figures takes seconds).
    """
    page = render_html(
        history,
        config,
        title=title,
        status=status,
        created_at=created_at,
        updated_at=updated_at,
        version=version,
        progress=progress,
    )
    return write_report_file(path, page)
