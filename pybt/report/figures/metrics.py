"""The metrics figure: one panel per recorded metric (evaluated and training), every member's
value over epochs, so the losses and the training metrics are seen beside the score."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pybt.errors import invalid_argument
from pybt.history import ExploitRecord, FailureRecord, RunHistory, StepRecord
from pybt.objective import classify
from pybt.report.figures._common import (
    LINEAGE_STYLE,
    Palette,
    empty,
    integer_epochs,
    literal,
    log_axis,
    new_figure,
    style_handle,
)
from pybt.report.rows import axis_scale, check_history

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# How the records name a metric measured while training (the rest were evaluated on eval_args).
TRAIN_PREFIX = "train_"


def metric_names(history: RunHistory) -> list[str]:
    """Every metric name in the steps, in first-seen order."""
    names: dict[str, None] = {}
    for step in history.steps:
        names.update(dict.fromkeys(step.metrics))
    return list(names)


def metric_rows(names: Sequence[str]) -> list[tuple[str | None, str | None]]:
    """The panels as rows of (evaluated, training): ``loss`` beside ``train_loss``, so that a gap
    between them (overfitting) reads across one row."""
    evaluated = [name for name in names if not name.startswith(TRAIN_PREFIX)]
    training = [name for name in names if name.startswith(TRAIN_PREFIX)]
    rows: list[tuple[str | None, str | None]] = []
    for name in evaluated:
        twin = TRAIN_PREFIX + name
        rows.append((name, twin if twin in training else None))
    paired = {train for _, train in rows}
    rows += [(None, name) for name in training if name not in paired]
    return rows


def plot_metrics(
    history: RunHistory, *, names: Sequence[str] | None = None, fig: Figure | None = None
) -> Figure:
    """One panel per metric (``names``, default every metric the steps recorded): each member's
    value over epochs (gid ``member-<id>``), and the best member's lineage underlaid (gid
    ``lineage``).

    Evaluated metrics go in the left column, training ones (``train_*``) on the right, a metric
    beside its training twin with a shared y axis. A member that copies a donor goes on from
    the donor's point, as in :func:`plot_scores`. A metric where lower is better (by its name:
    a loss, an error) spanning more than two decades gets a log axis.
    """
    history = check_history(history)
    known = metric_names(history)
    if names is not None and (isinstance(names, str) or set(names) - set(known)):
        raise invalid_argument("names", names, f"a list of metric names from {known}")
    rows = metric_rows(known if names is None else list(names))
    columns = 2 if any(left is not None for left, _ in rows) and any(right for _, right in rows) else 1
    fig = new_figure(fig, 1.0 + 2.4 * max(len(rows), 1))
    if not history.steps or not rows:
        empty(fig.add_subplot(), "No metrics recorded yet.")
        return fig

    palette = Palette(history.members)
    grid = fig.subplots(len(rows), columns, sharex=True, squeeze=False)
    best = history.best()
    lineage = [] if best is None else history.lineage_steps(best.member)
    drawn: list[Axes] = []
    for row, pair in zip(grid, rows, strict=True):
        cells = [name for name in pair if name is not None] if columns == 1 else list(pair)
        if None not in cells and len(cells) == 2:
            row[1].sharey(row[0])  # a metric and its training twin on one scale, linked before drawing
        scale = _scale(history, [name for name in cells if name is not None])
        for ax, name in zip(row, cells, strict=True):
            if name is None:
                ax.set_visible(False)
                continue
            _draw_panel(ax, history, name, palette, lineage, scale)
            drawn.append(ax)
    for column in grid.T:
        # Epochs under the lowest panel of each column (a column's bottom cell may be empty).
        lowest = [ax for ax in column if ax.get_visible()][-1]
        integer_epochs(lowest)
        lowest.xaxis.set_tick_params(labelbottom=True)
    fig.suptitle("Every metric of every member (left: evaluated; right: during training)", x=0.01, ha="left")
    palette.explain(fig, drawn, [style_handle("best member's lineage", **LINEAGE_STYLE)])
    return fig


def _scale(history: RunHistory, names: Sequence[str]) -> str:
    """A log axis for a row of metrics where lower is better that span more than two decades."""
    if not names or any(classify(name) != "min" for name in names):
        return "linear"
    values = [step.metrics[name] for step in history.steps for name in names if name in step.metrics]
    return "log" if axis_scale([v for v in values if math.isfinite(v)])[0] == "log" else "linear"


def _draw_panel(
    ax: Axes,
    history: RunHistory,
    name: str,
    palette: Palette,
    lineage: Sequence[StepRecord],
    scale: str,
) -> None:
    for member in history.members:
        xs: list[float] = []
        ys: list[float] = []
        for stretch in history.stretches(member):
            points = [(step.epoch, step.metrics.get(name, math.nan)) for step in stretch.steps]
            if stretch.exploit is not None:
                # The member's weights became the donor's: its line goes on from the donor's point.
                donor = _step_before(history, stretch.exploit.donor, stretch.exploit.sequence)
                if donor is not None:
                    points.insert(0, (donor.epoch, donor.metrics.get(name, math.nan)))
            if points:
                xs += [x for x, _ in points] + [math.nan]
                ys += [y for _, y in points] + [math.nan]
        ax.plot(
            xs, ys, color=palette(member), linewidth=1.3, marker="o", markersize=2, gid=f"member-{member}"
        )
    if lineage:
        path = [(step.epoch, step.metrics.get(name, math.nan)) for step in lineage]
        ax.plot([x for x, _ in path], [y for _, y in path], zorder=1, gid="lineage", **LINEAGE_STYLE)
    if scale == "log":
        log_axis(ax)
    score = " — the score" if name == history.metric else ""
    kind = "during training" if name.startswith(TRAIN_PREFIX) else "evaluated"
    ax.set_title(f"{literal(name)} ({kind}){score}", loc="left", fontsize="medium")
    ax.grid(alpha=0.3)


def _step_before(history: RunHistory, member: int, before: int) -> StepRecord | None:
    """The step that made ``member``'s weights just before record ``before`` (following the
    member's own copies back to their donors), or None (it failed or had not stepped)."""
    current, bound = member, before
    while True:
        earlier = [record for record in history.member_records(current) if record.sequence < bound]
        if not earlier or isinstance(earlier[-1], FailureRecord):
            return None  # its last step failed: no weights worth a point
        record = earlier[-1]
        if not isinstance(record, ExploitRecord):
            return record
        current, bound = record.donor, record.sequence
