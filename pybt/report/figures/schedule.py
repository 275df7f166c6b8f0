"""The schedule figure: the hyperparameters that trained one member's weights, epoch by epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pybt.history import RunHistory
from pybt.lineage import Segment
from pybt.report.figures._common import (
    MISSING,
    Palette,
    ValueAxis,
    describe,
    empty,
    integer_epochs,
    literal,
    new_figure,
)
from pybt.report.rows import check_history
from pybt.report.spaces import check_space, domain_of, ordered_names

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# A band narrower than this share of the schedule gets no label: it would collide with its neighbours.
_NARROWEST_LABELLED_BAND = 0.035


def plot_schedule(
    history: RunHistory,
    member: int | None = None,
    *,
    space: Mapping[str, Any] | None = None,
    fig: Figure | None = None,
) -> Figure:
    """The schedule of ``member`` (default: the best): one step plot per hyperparameter (gid
    ``schedule``), over shaded bands naming the member that trained each stretch (bands too
    narrow for a label go unnamed; :func:`pybt.report.schedule_table` lists them all).

    ``space`` (the run's ``{name: Domain}`` or its recorded description) orders the panels and
    gives log-scaled domains a log axis; without it, the values decide.
    """
    history = check_history(history)
    space = check_space(space)
    where = history.resolve(member)
    entries = history.schedule(member)
    names = ordered_names((name for entry in entries for name in entry["hyperparameters"]), space)
    fig = new_figure(fig, 1.2 + 1.9 * max(len(names), 1))
    if not entries or not names or where is None:
        empty(fig.add_subplot(), "No schedule: no completed steps yet.")
        return fig

    palette = Palette(history.members)
    bands = [s for s in history.lineage(member) if s["to_epoch"] > s["from_epoch"]]
    axes = list(fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0])
    for ax, name in zip(axes, names, strict=True):
        for band in bands:
            ax.axvspan(band["from_epoch"], band["to_epoch"], color=palette(band["member"]), alpha=0.13, lw=0)
        values = [entry["hyperparameters"].get(name, MISSING) for entry in entries]
        to_y = ValueAxis(ax, [v for v in values if v is not MISSING], [where.member], domain_of(space, name))
        xs = [entries[0]["from_epoch"], *(entry["to_epoch"] for entry in entries)]
        ys = [to_y(values[0], where.member), *(to_y(v, where.member) for v in values)]
        ax.plot(xs, ys, drawstyle="steps-pre", color="black", linewidth=2, gid="schedule")
        # The name goes on the y axis: above the top panel are the labels of the bands.
        ax.set_ylabel(literal(name) if to_y.scale == "linear" else f"{literal(name)} ({to_y.scale})")
        ax.grid(alpha=0.3)
    _label_bands(axes[0], bands, entries[-1]["to_epoch"] - entries[0]["from_epoch"])
    axes[0].set_xlim(entries[0]["from_epoch"], entries[-1]["to_epoch"])
    integer_epochs(axes[-1])
    fig.suptitle(
        f"Schedule of {describe(where, history.metric)} (bands: the member that trained each stretch)",
        x=0.01,
        ha="left",
    )
    return fig


def _label_bands(top: Axes, bands: Sequence[Segment], span: float) -> None:
    """``m<id>`` above each band of the top panel that is wide enough for it."""
    for band in bands:
        if band["to_epoch"] - band["from_epoch"] < _NARROWEST_LABELLED_BAND * span:
            continue
        top.annotate(
            f"m{band['member']}",
            xy=((band["from_epoch"] + band["to_epoch"]) / 2, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize="small",
            color="0.15",
        )
