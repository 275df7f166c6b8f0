"""The lineage figure: members as rows, epochs across, the ancestry of one member drawn bold."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pybt.history import RunHistory
from pybt.report.figures._common import (
    BEST_STYLE,
    Palette,
    best_handle,
    describe,
    empty,
    integer_epochs,
    mark_failures,
    new_figure,
    style_handle,
)
from pybt.report.rows import check_history

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def plot_lineage(history: RunHistory, member: int | None = None, *, fig: Figure | None = None) -> Figure:
    """The lineage tree of ``member`` (default: the best): members as rows, epochs across.

    Every member's own training is a faint line (gid ``member-<id>``); the segments that made
    ``member``'s weights are bold (gid ``lineage``, one per segment); every exploit is an arrow
    from the donor's row to the member's at the donor's epoch (patches with gid ``exploit``,
    or ``lineage-exploit`` for those on the lineage; dashed where a failed member was replaced).
    """
    history = check_history(history)
    members = history.members
    where = history.resolve(member)  # an unknown member is an error even before any step
    fig = new_figure(fig, min(1.6 + 0.38 * max(len(members), 1), 14.0))
    ax = fig.add_subplot()
    if not history.steps:
        empty(ax, "No completed steps yet.")
        return fig

    palette = Palette(members)
    _draw_training(ax, history, palette)
    on_lineage: set[int] = set()
    if where is not None:
        for segment in history.lineage(member):
            ax.plot(
                [segment["from_epoch"], segment["to_epoch"]],
                [segment["member"], segment["member"]],
                color=palette(segment["member"]),
                linewidth=5,
                solid_capstyle="butt",
                zorder=3,
                gid="lineage",
            )
        on_lineage = {record.sequence for record in history.lineage_exploits(member)}
    _draw_exploits(ax, history, on_lineage)
    mark_failures(ax, history.failures, lambda record: record.member)
    if where is not None:
        ax.scatter([where.epoch], [where.member], gid="best", **BEST_STYLE)

    _member_axis(ax, members)
    integer_epochs(ax)
    ax.margins(x=0.02)
    ax.grid(axis="x", alpha=0.3)
    who = "best member" if member is None else "member"
    ax.set_title(f"Lineage of the {who} ({describe(where, history.metric)})", loc="left")
    replacements = any(record.reason == "failure" for record in history.exploits)
    _legend(fig, bool(history.failures), replacements)
    return fig


def _draw_training(ax: Axes, history: RunHistory, palette: Palette) -> None:
    """Each member's own training as a faint line on its row, broken where it copied a donor."""
    for member in history.members:
        xs: list[float] = []
        ys: list[float] = []
        for stretch in history.stretches(member):
            if stretch.steps:
                xs += [stretch.start_epoch, *(step.epoch for step in stretch.steps), math.nan]
                ys += [member] * (len(stretch.steps) + 1) + [math.nan]
        ax.plot(
            xs,
            ys,
            color=palette(member),
            alpha=0.35,
            linewidth=2,
            marker="|",
            markersize=5,
            gid=f"member-{member}",
        )


def _draw_exploits(ax: Axes, history: RunHistory, on_lineage: set[int]) -> None:
    """An arrow per exploit, from the donor's row to the member's; bold on the lineage."""
    from matplotlib.patches import FancyArrowPatch

    exploits = history.exploits
    # Many exploits make a thicket of arrows: the more there are, the fainter the ones off the lineage.
    faint = max(0.15, min(0.7, 30 / max(len(exploits), 1)))
    for event in exploits:
        bold = event.sequence in on_lineage
        ax.add_patch(
            FancyArrowPatch(
                (event.epoch, event.donor),
                (event.epoch, event.member),
                arrowstyle="-|>",
                mutation_scale=12 if bold else 8,
                connectionstyle="arc3,rad=0.1",
                shrinkA=3,
                shrinkB=3,
                color="black" if bold else "0.45",
                alpha=1.0 if bold else faint,
                linewidth=1.8 if bold else 0.8,
                linestyle="--" if event.reason == "failure" else "-",
                zorder=4 if bold else 2,
                gid="lineage-exploit" if bold else "exploit",
            )
        )


def _member_axis(ax: Axes, members: Sequence[int]) -> None:
    from matplotlib.ticker import MaxNLocator

    if len(members) <= 30:
        ax.set_yticks(members, labels=[f"member {m}" for m in members])
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=20))
        ax.set_ylabel("member")
    ax.set_ylim(max(members) + 0.7, min(members) - 0.7)  # member 0 on top, like a table


def _legend(fig: Figure, failures: bool, replacements: bool) -> None:
    handles = [
        style_handle("lineage of the best", color="0.2", linewidth=5),
        style_handle("other training", color="0.6", alpha=0.5, linewidth=2),
        style_handle("exploit on the lineage", color="black", linewidth=1.8, marker=">"),
        style_handle("other exploit", color="0.55", linewidth=0.8, marker=">", markersize=4),
    ]
    if replacements:
        handles.append(style_handle("failed member replaced", color="0.3", linestyle="--"))
    if failures:
        handles.append(style_handle("failed step", marker="x", color="crimson", linestyle=""))
    handles.append(best_handle())
    fig.legend(handles=handles, loc="outside right upper", fontsize="small", frameon=False)
