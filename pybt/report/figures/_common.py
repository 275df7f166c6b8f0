"""What every figure of a run shares: the figure itself, one colour per member, the legend,
failure marks and the axis a hyperparameter's values go on.

matplotlib is imported here only inside functions, when a figure is drawn, so that
``import pybt.report`` works without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pybt._imports import require
from pybt.errors import invalid_argument
from pybt.history import FailureRecord, Standing
from pybt.report.rows import axis_scale, category_index

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Up to this many members get a legend entry each; more get a colour bar (a legend of 30
# entries hides the plot and nobody can match 30 colours anyway).
MAX_LEGEND_MEMBERS = 10
WIDTH = 10.0
LINEAGE_STYLE = {"color": "0.2", "alpha": 0.22, "linewidth": 7.0, "solid_capstyle": "round"}
FAILURE_STYLE = {"marker": "x", "color": "crimson", "s": 40, "linewidths": 1.8, "zorder": 5}
BEST_STYLE = {"marker": "*", "color": "gold", "edgecolors": "black", "s": 220, "zorder": 6}
# A value a record lacks (a hyperparameter added part-way): a gap in the line, not a zero.
MISSING = object()


def require_matplotlib() -> None:
    """Raise the error naming the ``plot`` extra when matplotlib is not installed."""
    require("matplotlib", "plot", "matplotlib")


def new_figure(fig: Figure | None, height: float) -> Figure:
    """A fresh pyplot figure, or the caller's empty ``fig`` resized, with constrained layout."""
    require_matplotlib()
    from matplotlib.figure import Figure

    if fig is None:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=(WIDTH, height), layout="constrained")
    if not isinstance(fig, Figure) or fig.axes:
        raise invalid_argument(
            "fig", fig, "an empty matplotlib Figure, or None", "Pass matplotlib.figure.Figure()."
        )
    fig.set_size_inches(WIDTH, height)
    fig.set_layout_engine("constrained")
    return fig


class Palette:
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


def empty(ax: Axes, text: str) -> None:
    """Say on ``ax`` why there is nothing to draw."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def log_axis(ax: Axes, integers: bool = False) -> None:
    """A log y axis labelled in plain numbers (``0.001``, ``32``), not ``10^{-3}`` or ``3.2 x 10^1``.

    Which ticks get a label is matplotlib's choice (all decades; the ticks in between when the
    axis spans few decades); only the text changes. With ``integers``, ticks between whole
    numbers go unlabelled.
    """
    from matplotlib.ticker import LogFormatterSciNotation

    class PlainLog(LogFormatterSciNotation):
        def __call__(self, x: float, pos: int | None = None) -> str:
            if integers and not float(x).is_integer():
                return ""
            return f"{x:g}" if super().__call__(x, pos) else ""

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(PlainLog())
    ax.yaxis.set_minor_formatter(PlainLog(labelOnlyBase=False))


def integer_epochs(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def style_handle(label: str, **style: Any) -> Any:
    """A legend entry drawn in ``style``."""
    from matplotlib.lines import Line2D

    return Line2D([], [], label=label, **style)


def best_handle() -> Any:
    return style_handle(
        "best", marker="*", color="gold", markeredgecolor="black", markersize=12, linestyle=""
    )


def literal(text: object) -> str:
    """``text`` shown as it is: matplotlib reads ``$...$`` as math (and fails on some), so the
    names and values users give (metric and hyperparameter names, Choice options) are escaped."""
    return str(text).replace("$", r"\$")


def describe(where: Standing | None, metric: str | None) -> str:
    """``member 3, accuracy 0.9 at epoch 12`` (empty for no standing)."""
    if where is None:
        return ""
    return f"member {where.member}, {literal(metric or 'score')} {where.score:.4g} at epoch {where.epoch}"


def mark_failures(
    ax: Axes, failures: Sequence[FailureRecord], height: Callable[[FailureRecord], float | None]
) -> None:
    """A red cross per failed step at the member's height, or on the bottom edge where it has none
    (a member that failed its first step has no score yet)."""
    placed = [(record.epoch, height(record)) for record in failures]
    known = [(x, y) for x, y in placed if y is not None]
    unknown = [x for x, y in placed if y is None]
    if known:
        ax.scatter([x for x, _ in known], [y for _, y in known], gid="failures", **FAILURE_STYLE)
    if unknown:
        ax.update_datalim([(x, 0.0) for x in unknown], updatey=False)  # keep the epochs in view
        ax.scatter(
            unknown,
            [0.03] * len(unknown),
            transform=ax.get_xaxis_transform(),  # x in epochs, y as a fraction of the axes
            clip_on=False,
            gid="failures",
            **FAILURE_STYLE,
        )


def _is_integer(value: Any) -> bool:
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    return (isinstance(value, int) and not isinstance(value, bool)) or kind in ("i", "u")


class ValueAxis:
    """Where a hyperparameter's values go on a panel: numbers as they are (on a log axis when its
    ``domain`` in the space is log-scaled), categories as indices (spread a little per member, so
    members sharing a category stay visible)."""

    def __init__(self, ax: Axes, values: Sequence[Any], members: Sequence[int], domain: Any = None) -> None:
        self.scale, self.order = axis_scale(values, domain)
        self.offset = {m: 0.0 for m in members}
        if self.scale == "category" and len(members) > 1:
            spread = 0.3
            self.offset = {m: spread * (i / (len(members) - 1) - 0.5) for i, m in enumerate(members)}
        if self.scale == "category":
            ax.set_yticks(range(len(self.order)), labels=[literal(v) for v in self.order])
            ax.set_ylim(-0.5, len(self.order) - 0.5)
            return
        # Integers (a batch size, a layer count) get no ticks between them: 22.5 is no batch size.
        integers = bool(values) and all(_is_integer(value) for value in values)
        if self.scale == "log":
            log_axis(ax, integers=integers)
        elif integers:
            from matplotlib.ticker import MaxNLocator

            ax.yaxis.set_major_locator(MaxNLocator(integer=True))

    def __call__(self, value: Any, member: int) -> float:
        if value is MISSING:
            return math.nan
        if self.scale == "category":
            index = category_index(value, self.order)
            return math.nan if index is None else index + self.offset[member]
        return float(value)
