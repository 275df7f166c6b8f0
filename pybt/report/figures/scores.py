"""The scores figure: every member's score over epochs, with the jumps exploits make."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pybt.history import FailureRecord, RunHistory
from pybt.report.figures._common import (
    BEST_STYLE,
    LINEAGE_STYLE,
    Palette,
    best_handle,
    describe,
    empty,
    integer_epochs,
    literal,
    log_axis,
    mark_failures,
    new_figure,
    style_handle,
)
from pybt.report.rows import axis_scale, check_history, direction, lower_is_better

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def plot_scores(history: RunHistory, *, fig: Figure | None = None) -> Figure:
    """Every member's score over epochs: one line per member (``ax.lines``, gid ``member-<id>``).

    A member that copies a donor goes on from the donor's point (its epoch and score); a
    dashed line (the ``exploit-jumps`` collection) shows the jump from where the member had
    got to. The best member's lineage is underlaid in grey (gid ``lineage``), its final score
    starred (gid ``best``); failed steps are red crosses (gid ``failures``) at the member's
    last score, or on the bottom edge for a member that had none. A score where lower is
    better (a loss) spanning more than two decades gets a log axis.
    """
    history = check_history(history)
    fig = new_figure(fig, 5.0)
    ax = fig.add_subplot()
    if not history.steps:
        empty(ax, "No completed steps yet.")
        return fig
    palette = Palette(history.members)
    _draw_members(ax, history, palette)

    best = history.best()
    if best is not None:
        path = history.lineage_steps(best.member)
        ax.plot([r.epoch for r in path], [r.score for r in path], zorder=1, gid="lineage", **LINEAGE_STYLE)
        ax.scatter([best.epoch], [best.score], gid="best", **BEST_STYLE)
    mark_failures(ax, history.failures, lambda record: _score_before(history, record))

    # A loss falling over decades reads best on a log axis; a score to maximize does not.
    if lower_is_better(history) and axis_scale([step.score for step in history.steps])[0] == "log":
        log_axis(ax)
    ax.autoscale_view()
    integer_epochs(ax)
    ax.set_ylabel(literal(history.metric or "score"))
    ax.grid(alpha=0.3)
    title = f"Score of every member ({direction(history)}); best: {describe(best, history.metric)}"
    ax.set_title(title, loc="left")
    palette.explain(
        fig,
        [ax],
        [
            style_handle("jump to a donor (exploit)", color="0.3", linestyle="--"),
            style_handle("best member's lineage", **LINEAGE_STYLE),
            best_handle(),
            *(
                [style_handle("failed step", marker="x", color="crimson", linestyle="")]
                if history.failures
                else []
            ),
        ],
    )
    return fig


def _draw_members(ax: Axes, history: RunHistory, palette: Palette) -> None:
    """One line per member, broken at each exploit, and the dashed jumps to the donors."""
    from matplotlib.collections import LineCollection

    jumps, jump_colors = [], []
    for member in history.members:
        xs: list[float] = []
        ys: list[float] = []
        for stretch in history.stretches(member):
            points = [(step.epoch, step.score) for step in stretch.steps]
            event = stretch.exploit
            if event is not None:
                # The member's weights became the donor's: its line goes on from the donor's
                # point, and a dashed line shows the jump from where the member had got to.
                donor = history.standing(event.donor, before=event.sequence)
                own = history.standing(member, before=event.sequence)
                if donor is not None:
                    points.insert(0, (donor.epoch, donor.score))
                    if own is not None:
                        jumps.append([(own.epoch, own.score), (donor.epoch, donor.score)])
                        jump_colors.append(palette(member))
            if points:
                xs += [x for x, _ in points] + [math.nan]
                ys += [y for _, y in points] + [math.nan]
        ax.plot(
            xs, ys, color=palette(member), linewidth=1.5, marker="o", markersize=2.5, gid=f"member-{member}"
        )
    ax.add_collection(
        LineCollection(jumps, colors=jump_colors, linestyles="--", linewidths=1.1, gid="exploit-jumps")
    )


def _score_before(history: RunHistory, record: FailureRecord) -> float | None:
    where = history.standing(record.member, before=record.sequence)
    return None if where is None else where.score
