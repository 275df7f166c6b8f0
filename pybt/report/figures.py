"""The four figures of a PBT run, drawn with matplotlib (the optional ``plot`` extra).

- :func:`plot_scores`: every member's score over epochs; an exploit shows as a dashed jump
  from the donor's point, and the winner's lineage is underlaid in grey.
- :func:`plot_hyperparameters`: one panel per hyperparameter, every member's value over
  epochs, with a marker where a member copied a donor and explored.
- :func:`plot_lineage`: members as rows, epochs across; the winner's ancestry drawn bold,
  exploits as arrows from donor to member.
- :func:`plot_schedule`: the winning schedule, one step plot per hyperparameter.

Each returns a :class:`matplotlib.figure.Figure`. By default it is a new pyplot figure (so
``plt.show()`` and notebooks show it); pass ``fig=matplotlib.figure.Figure()`` to draw
without pyplot, as :func:`pybt.report.write_html` does. Nothing here calls ``plt.show()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pybt.errors import invalid_argument, missing_extra
from pybt.lineage import lineage, lineage_steps, schedule
from pybt.report.rows import (
    Rows,
    Standing,
    Timeline,
    axis_scale,
    best_member,
    category_index,
    check_mode,
    hyperparameter_names,
    lineage_exploits,
    member_ids,
    resolve_member,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Up to this many members get a legend entry each; more get a colour bar (a legend of 30
# entries hides the plot and nobody can match 30 colours anyway).
MAX_LEGEND_MEMBERS = 10
_WIDTH = 10.0
_LINEAGE_STYLE = {"color": "0.2", "alpha": 0.22, "linewidth": 7.0, "solid_capstyle": "round"}
_FAILURE_STYLE = {"marker": "x", "color": "crimson", "s": 40, "linewidths": 1.8, "zorder": 5}
_BEST_STYLE = {"marker": "*", "color": "gold", "edgecolors": "black", "s": 220, "zorder": 6}


def require_matplotlib() -> None:
    """Raise the error naming the ``plot`` extra when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise missing_extra("matplotlib", "plot") from error


def _figure(fig: Figure | None, height: float) -> Figure:
    """A fresh pyplot figure, or the caller's empty ``fig`` resized, with constrained layout."""
    require_matplotlib()
    from matplotlib.figure import Figure

    if fig is None:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=(_WIDTH, height), layout="constrained")
    if not isinstance(fig, Figure) or fig.axes:
        raise invalid_argument(
            "fig", fig, "an empty matplotlib Figure, or None", "Pass matplotlib.figure.Figure()."
        )
    fig.set_size_inches(_WIDTH, height)
    fig.set_layout_engine("constrained")
    return fig


class _Palette:
    """One colour per member, the same in every figure of a run, and the key that explains them."""

    def __init__(self, members: Sequence[int]) -> None:
        from matplotlib import colormaps
        from matplotlib.colors import Normalize

        self.members = list(members)
        self.legend = len(self.members) <= MAX_LEGEND_MEMBERS
        if self.legend:
            tab10 = colormaps["tab10"]
            self._colors = {m: tab10(i % 10) for i, m in enumerate(self.members)}
            return
        self.cmap = colormaps["viridis"]
        low, high = min(self.members), max(self.members)
        self.norm = Normalize(low, high if high > low else low + 1)
        self._colors = {m: self.cmap(self.norm(m)) for m in self.members}

    def __call__(self, member: int) -> Any:
        return self._colors.get(member, "grey")

    def explain(self, fig: Figure, axes: Sequence[Axes], extra: Sequence[Any] = ()) -> None:
        """A legend of members and ``extra`` handles, or a colour bar when there are many members."""
        from matplotlib.lines import Line2D

        handles = list(extra)
        if self.legend:
            handles = [
                *(Line2D([], [], color=self(m), linewidth=2, label=f"member {m}") for m in self.members),
                *handles,
            ]
        else:
            from matplotlib.cm import ScalarMappable

            colorbar = fig.colorbar(ScalarMappable(norm=self.norm, cmap=self.cmap), ax=list(axes))
            colorbar.set_label("member")
        if handles:
            fig.legend(handles=handles, loc="outside right upper", fontsize="small", frameon=False)


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _integer_epochs(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def _style_handle(label: str, **style: Any) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], label=label, **style)


def _describe(where: Standing | None, metric: str | None) -> str:
    if where is None:
        return ""
    return f"member {where.member}, {metric or 'score'} {where.score:.4g} at epoch {where.epoch}"


# ---- scores --------------------------------------------------------------------------------------
def plot_scores(
    steps: Rows,
    exploits: Rows = (),
    *,
    failures: Rows = (),
    mode: str | None = "max",
    metric: str | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Every member's score over epochs: one line per member (``ax.lines``, gid ``member-<id>``).

    A member that copies a donor goes on from the donor's point (its epoch and score); a
    dashed line (the ``exploit-jumps`` collection) shows the jump from where the member had
    got to. The best member's lineage is underlaid in grey (gid ``lineage``), its final score
    starred; failed steps are red crosses (gid ``failures``) at the member's last score, or on
    the bottom edge for a member that had none yet. A loss (``mode="min"``) spanning more
    than two decades gets a log axis.
    """
    mode = check_mode(mode)
    fig = _figure(fig, 5.0)
    ax = fig.add_subplot()
    members = member_ids(steps, exploits, failures)
    if not steps:
        _empty(ax, "No completed steps yet.")
        return fig
    from matplotlib.collections import LineCollection

    palette = _Palette(members)
    timeline = Timeline(steps, exploits)
    jumps, jump_colors = [], []
    for member in members:
        xs: list[float] = []
        ys: list[float] = []
        for stretch in timeline.stretches(member):
            points = [(row["epoch"], row["score"]) for row in stretch["steps"]]
            event = stretch["exploit"]
            if event is not None:
                # The member's weights became the donor's: its line goes on from the donor's
                # point, and a dashed line shows the jump from where the member had got to.
                donor = timeline.standing(event["donor"], before=event["sequence"])
                own = timeline.standing(member, before=event["sequence"])
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

    best = best_member(steps, exploits, mode, failures)
    if best is not None:
        path = lineage_steps(best.member, best.epoch, steps, exploits)
        ax.plot(
            [r["epoch"] for r in path], [r["score"] for r in path], zorder=1, gid="lineage", **_LINEAGE_STYLE
        )
        ax.scatter([best.epoch], [best.score], gid="best", **_BEST_STYLE)
    _mark_failures(ax, failures, lambda row: _failure_score(row, timeline))

    # A loss falling over decades reads best on a log axis; a score to maximize does not.
    if mode == "min" and axis_scale([row["score"] for row in steps])[0] == "log":
        ax.set_yscale("log")
    ax.autoscale_view()
    _integer_epochs(ax)
    ax.set_ylabel(metric or "score")
    ax.grid(alpha=0.3)
    direction = "higher is better" if mode == "max" else "lower is better"
    ax.set_title(f"Score of every member ({direction}); best: {_describe(best, metric)}", loc="left")
    palette.explain(
        fig,
        [ax],
        [
            _style_handle("jump to a donor (exploit)", color="0.3", linestyle="--"),
            _style_handle("best member's lineage", **_LINEAGE_STYLE),
            _style_handle(
                "best", marker="*", color="gold", markeredgecolor="black", markersize=12, linestyle=""
            ),
            *([_style_handle("failed step", marker="x", color="crimson", linestyle="")] if failures else []),
        ],
    )
    return fig


def _failure_score(row: Any, timeline: Timeline) -> float | None:
    where = timeline.standing(row["member"], before=row["sequence"])
    return None if where is None else where.score


def _mark_failures(ax: Axes, failures: Rows, height: Callable[[Any], float | None]) -> None:
    """A red cross per failed step at the member's height, or on the bottom edge where it has none
    (a member that failed its first step has no score yet)."""
    placed = [(row["epoch"], height(row)) for row in failures]
    known = [(x, y) for x, y in placed if y is not None]
    unknown = [x for x, y in placed if y is None]
    if known:
        ax.scatter([x for x, _ in known], [y for _, y in known], gid="failures", **_FAILURE_STYLE)
    if unknown:
        ax.update_datalim([(x, 0.0) for x in unknown], updatey=False)  # keep the epochs in view
        ax.scatter(
            unknown,
            [0.03] * len(unknown),
            transform=ax.get_xaxis_transform(),  # x in epochs, y as a fraction of the axes
            clip_on=False,
            gid="failures",
            **_FAILURE_STYLE,
        )


# ---- hyperparameters -----------------------------------------------------------------------------
_MISSING = object()


class _Axis:
    """Where a hyperparameter's values go on a panel: numbers as they are, categories as indices
    (spread a little per member, so members sharing a category stay visible)."""

    def __init__(self, ax: Axes, values: Sequence[Any], members: Sequence[int]) -> None:
        self.scale, self.order = axis_scale(values)
        self.offset = {m: 0.0 for m in members}
        if self.scale == "category" and len(members) > 1:
            spread = 0.3
            self.offset = {m: spread * (i / (len(members) - 1) - 0.5) for i, m in enumerate(members)}
        if self.scale == "category":
            ax.set_yticks(range(len(self.order)), labels=[str(v) for v in self.order])
            ax.set_ylim(-0.5, len(self.order) - 0.5)
        elif self.scale == "log":
            ax.set_yscale("log")

    def __call__(self, value: Any, member: int) -> float:
        if value is _MISSING:
            return math.nan
        if self.scale == "category":
            index = category_index(value, self.order)
            return math.nan if index is None else index + self.offset[member]
        return float(value)


def plot_hyperparameters(
    steps: Rows,
    exploits: Rows = (),
    *,
    names: Sequence[str] | None = None,
    failures: Rows = (),
    fig: Figure | None = None,
) -> Figure:
    """One panel per hyperparameter (``names``, default all): each member's value over epochs.

    One line per member per panel, drawn as steps (a value holds over the epochs it
    trained). Where a member copied a donor, a dashed line joins its old value to the value
    it explored (gid ``exploit-jumps``), marked with a diamond (gid ``exploit-marks``).
    Values spanning more than two decades get a log axis; strings and other non-numbers a
    category axis.
    """
    known = hyperparameter_names(steps, exploits)
    if names is not None and (isinstance(names, str) or set(names) - set(known)):
        raise invalid_argument("names", names, f"a list of hyperparameter names from {known}")
    names = list(known if names is None else names)
    members = member_ids(steps, exploits, failures)
    fig = _figure(fig, 1.0 + 2.1 * max(len(names), 1))
    if not steps or not names:
        _empty(fig.add_subplot(), "No hyperparameters recorded yet.")
        return fig
    from matplotlib.collections import LineCollection

    palette = _Palette(members)
    timeline = Timeline(steps, exploits)
    axes = list(fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0])
    for ax, name in zip(axes, names, strict=True):
        values = [row["hyperparameters"][name] for row in steps if name in row["hyperparameters"]]
        for event in exploits:
            values += [
                event[k][name] for k in ("old_hyperparameters", "new_hyperparameters") if name in event[k]
            ]
        to_y = _Axis(ax, values, members)
        jumps, jump_colors, marks = [], [], []
        for member in members:
            xs: list[float] = []
            ys: list[float] = []
            for stretch in timeline.stretches(member):
                rows, event = stretch["steps"], stretch["exploit"]
                if event is not None:
                    old = to_y(event["old_hyperparameters"].get(name, _MISSING), member)
                    new = to_y(event["new_hyperparameters"].get(name, _MISSING), member)
                    jumps.append([(event["member_epoch"], old), (event["epoch"], new)])
                    jump_colors.append(palette(member))
                    marks.append((event["epoch"], new, palette(member)))
                if rows:
                    # The first value also holds from where the stretch started (0 or the donor's epoch).
                    xs += [stretch["start_epoch"], *(row["epoch"] for row in rows), math.nan]
                    first = rows[0]["hyperparameters"].get(name, _MISSING)
                    ys += [to_y(first, member)]
                    ys += [to_y(row["hyperparameters"].get(name, _MISSING), member) for row in rows]
                    ys += [math.nan]
            ax.plot(
                xs, ys, drawstyle="steps-pre", color=palette(member), linewidth=1.4, gid=f"member-{member}"
            )
        ax.add_collection(
            LineCollection(jumps, colors=jump_colors, linestyles="--", linewidths=0.9, gid="exploit-jumps")
        )
        if marks:
            ax.scatter(
                [x for x, _, _ in marks],
                [y for _, y, _ in marks],
                c=[c for _, _, c in marks],
                marker="D",
                s=22,
                edgecolors="black",
                linewidths=0.5,
                zorder=4,
                gid="exploit-marks",
            )
        ax.autoscale_view()
        scale = "" if to_y.scale == "linear" else f" ({to_y.scale} axis)"
        ax.set_title(f"{name}{scale}", loc="left", fontsize="medium")
        ax.grid(alpha=0.3)
    _integer_epochs(axes[-1])
    fig.suptitle("Hyperparameters of every member", x=0.01, ha="left")
    palette.explain(
        fig,
        axes,
        [
            _style_handle(
                "exploit: copied and explored",
                marker="D",
                color="0.3",
                linestyle="--",
                markeredgecolor="black",
                markersize=5,
            )
        ],
    )
    return fig


# ---- lineage -------------------------------------------------------------------------------------
def plot_lineage(
    steps: Rows,
    exploits: Rows = (),
    member: int | None = None,
    *,
    failures: Rows = (),
    mode: str | None = "max",
    metric: str | None = None,
    fig: Figure | None = None,
) -> Figure:
    """The lineage tree of ``member`` (default: the best): members as rows, epochs across.

    Every member's own training is a faint line (gid ``member-<id>``); the segments that made
    ``member``'s weights are bold (gid ``lineage``, one per segment); every exploit is an arrow
    from the donor's row to the member's at the donor's epoch (patches with gid ``exploit``,
    or ``lineage-exploit`` for those on the lineage; dashed where a failed member was replaced).
    """
    members = member_ids(steps, exploits, failures)
    fig = _figure(fig, min(1.6 + 0.38 * max(len(members), 1), 14.0))
    ax = fig.add_subplot()
    where = resolve_member(member, steps, exploits, mode, failures)
    if not steps:
        _empty(ax, "No completed steps yet.")
        return fig
    from matplotlib.patches import FancyArrowPatch

    palette = _Palette(members)
    timeline = Timeline(steps, exploits)
    for m in members:
        xs: list[float] = []
        ys: list[float] = []
        for stretch in timeline.stretches(m):
            if stretch["steps"]:
                xs += [stretch["start_epoch"], *(row["epoch"] for row in stretch["steps"]), math.nan]
                ys += [m] * (len(stretch["steps"]) + 1) + [math.nan]
        ax.plot(
            xs, ys, color=palette(m), alpha=0.35, linewidth=2, marker="|", markersize=5, gid=f"member-{m}"
        )

    on_lineage: set[int] = set()
    if where is not None:
        for segment in lineage(where.member, where.epoch, exploits):
            ax.plot(
                [segment["from_epoch"], segment["to_epoch"]],
                [segment["member"], segment["member"]],
                color=palette(segment["member"]),
                linewidth=5,
                solid_capstyle="butt",
                zorder=3,
                gid="lineage",
            )
        on_lineage = {row["sequence"] for row in lineage_exploits(where.member, where.epoch, exploits)}
    # Many exploits make a thicket of arrows: the more there are, the fainter the ones off the lineage.
    faint = max(0.15, min(0.7, 30 / max(len(exploits), 1)))
    for event in exploits:
        bold = event["sequence"] in on_lineage
        ax.add_patch(
            FancyArrowPatch(
                (event["epoch"], event["donor"]),
                (event["epoch"], event["member"]),
                arrowstyle="-|>",
                mutation_scale=12 if bold else 8,
                connectionstyle="arc3,rad=0.1",
                shrinkA=3,
                shrinkB=3,
                color="black" if bold else "0.45",
                alpha=1.0 if bold else faint,
                linewidth=1.8 if bold else 0.8,
                linestyle="--" if event.get("reason") == "failure" else "-",
                zorder=4 if bold else 2,
                gid="lineage-exploit" if bold else "exploit",
            )
        )
    _mark_failures(ax, failures, lambda row: row["member"])
    if where is not None:
        ax.scatter([where.epoch], [where.member], gid="best", **_BEST_STYLE)

    _member_axis(ax, members)
    _integer_epochs(ax)
    ax.margins(x=0.02)
    ax.grid(axis="x", alpha=0.3)
    who = "best member" if member is None else "member"
    ax.set_title(f"Lineage of the {who} ({_describe(where, metric)})", loc="left")
    _lineage_legend(fig, bool(failures), any(e.get("reason") == "failure" for e in exploits))
    return fig


def _member_axis(ax: Axes, members: Sequence[int]) -> None:
    from matplotlib.ticker import MaxNLocator

    if len(members) <= 30:
        ax.set_yticks(members, labels=[f"member {m}" for m in members])
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=20))
        ax.set_ylabel("member")
    ax.set_ylim(max(members) + 0.7, min(members) - 0.7)  # member 0 on top, like a table


def _lineage_legend(fig: Figure, failures: bool, replacements: bool) -> None:
    handles = [
        _style_handle("lineage of the best", color="0.2", linewidth=5),
        _style_handle("other training", color="0.6", alpha=0.5, linewidth=2),
        _style_handle("exploit on the lineage", color="black", linewidth=1.8, marker=">"),
        _style_handle("other exploit", color="0.55", linewidth=0.8, marker=">", markersize=4),
    ]
    if replacements:
        handles.append(_style_handle("failed member replaced", color="0.3", linestyle="--"))
    if failures:
        handles.append(_style_handle("failed step", marker="x", color="crimson", linestyle=""))
    handles.append(
        _style_handle("best", marker="*", color="gold", markeredgecolor="black", markersize=12, linestyle="")
    )
    fig.legend(handles=handles, loc="outside right upper", fontsize="small", frameon=False)


# ---- schedule ------------------------------------------------------------------------------------
def plot_schedule(
    steps: Rows,
    exploits: Rows = (),
    member: int | None = None,
    *,
    failures: Rows = (),
    mode: str | None = "max",
    metric: str | None = None,
    fig: Figure | None = None,
) -> Figure:
    """The schedule of ``member`` (default: the best): one step plot per hyperparameter (gid
    ``schedule``), over shaded bands naming the member that trained each stretch (bands too
    narrow for a label go unnamed; :func:`pybt.report.schedule_table` lists them all)."""
    where = resolve_member(member, steps, exploits, mode, failures)
    entries = [] if where is None else schedule(where.member, where.epoch, steps, exploits)
    names: list[str] = []
    for entry in entries:
        names += [name for name in entry["hyperparameters"] if name not in names]
    fig = _figure(fig, 1.2 + 1.9 * max(len(names), 1))
    if not entries or not names or where is None:
        _empty(fig.add_subplot(), "No schedule: no completed steps yet.")
        return fig

    palette = _Palette(member_ids(steps, exploits, failures))
    bands = [s for s in lineage(where.member, where.epoch, exploits) if s["to_epoch"] > s["from_epoch"]]
    axes = list(fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0])
    for ax, name in zip(axes, names, strict=True):
        for band in bands:
            ax.axvspan(band["from_epoch"], band["to_epoch"], color=palette(band["member"]), alpha=0.13, lw=0)
        values = [e["hyperparameters"].get(name, _MISSING) for e in entries]
        to_y = _Axis(ax, [v for v in values if v is not _MISSING], [where.member])
        xs = [entries[0]["from_epoch"], *(e["to_epoch"] for e in entries)]
        ys = [to_y(values[0], where.member), *(to_y(v, where.member) for v in values)]
        ax.plot(xs, ys, drawstyle="steps-pre", color="black", linewidth=2, gid="schedule")
        # The name goes on the y axis: above the top panel are the labels of the bands.
        ax.set_ylabel(name if to_y.scale == "linear" else f"{name} ({to_y.scale})")
        ax.grid(alpha=0.3)
    top = axes[0]
    span = entries[-1]["to_epoch"] - entries[0]["from_epoch"]
    for band in bands:
        if band["to_epoch"] - band["from_epoch"] < 0.035 * span:
            continue  # too narrow for a label that would not collide with its neighbours
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
    axes[0].set_xlim(entries[0]["from_epoch"], entries[-1]["to_epoch"])
    _integer_epochs(axes[-1])
    fig.suptitle(
        f"Schedule of {_describe(where, metric)} (bands: the member that trained each stretch)",
        x=0.01,
        ha="left",
    )
    return fig
