"""The hyperparameters figure: one panel per hyperparameter, every member's value over epochs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pybt.errors import invalid_argument
from pybt.history import RunHistory
from pybt.report.figures._common import (
    MISSING,
    Palette,
    ValueAxis,
    empty,
    integer_epochs,
    literal,
    new_figure,
    style_handle,
)
from pybt.report.rows import check_history
from pybt.report.spaces import check_space, domain_of, ordered_names

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def plot_hyperparameters(
    history: RunHistory,
    *,
    names: Sequence[str] | None = None,
    space: Mapping[str, Any] | None = None,
    fig: Figure | None = None,
) -> Figure:
    """One panel per hyperparameter (``names``, default all, in the space's order): each
    member's value over epochs.

    One line per member per panel (gid ``member-<id>``), drawn as steps (a value holds over
    the epochs it trained). Where a member copied a donor, a dashed line joins its old value
    to the value it explored (gid ``exploit-jumps``), marked with a diamond (gid
    ``exploit-marks``). ``space`` is the run's ``{name: Domain}`` (or the configuration's
    recorded ``space``): a LogUniform or ``IntUniform(log=True)`` gets a log axis, a Choice its
    options in order. Without it, values spanning more than two decades get a log axis; strings
    and other non-numbers a category axis.
    """
    history = check_history(history)
    space = check_space(space)
    known = ordered_names(history.hyperparameter_names(), space)
    if names is not None and (isinstance(names, str) or set(names) - set(known)):
        raise invalid_argument("names", names, f"a list of hyperparameter names from {known}")
    names = list(known if names is None else names)
    fig = new_figure(fig, 1.0 + 2.1 * max(len(names), 1))
    if not history.steps or not names:
        empty(fig.add_subplot(), "No hyperparameters recorded yet.")
        return fig

    palette = Palette(history.members)
    axes = list(fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0])
    for ax, name in zip(axes, names, strict=True):
        _draw_panel(ax, history, name, palette, domain_of(space, name))
    integer_epochs(axes[-1])
    fig.suptitle("Hyperparameters of every member", x=0.01, ha="left")
    exploit = style_handle(
        "exploit: copied and explored",
        marker="D",
        color="0.3",
        linestyle="--",
        markeredgecolor="black",
        markersize=5,
    )
    palette.explain(fig, axes, [exploit])
    return fig


def _values(history: RunHistory, name: str) -> list[Any]:
    """Every value ``name`` took in the run, to choose the panel's axis."""
    values = [step.hyperparameters[name] for step in history.steps if name in step.hyperparameters]
    for event in history.exploits:
        for chosen in (event.old_hyperparameters, event.new_hyperparameters):
            if name in chosen:
                values.append(chosen[name])
    return values


def _draw_panel(ax: Axes, history: RunHistory, name: str, palette: Palette, domain: Any) -> None:
    from matplotlib.collections import LineCollection

    to_y = ValueAxis(ax, _values(history, name), history.members, domain)
    jumps, jump_colors, marks = [], [], []
    for member in history.members:
        xs: list[float] = []
        ys: list[float] = []
        for stretch in history.stretches(member):
            steps, event = stretch.steps, stretch.exploit
            if event is not None:
                old = to_y(event.old_hyperparameters.get(name, MISSING), member)
                new = to_y(event.new_hyperparameters.get(name, MISSING), member)
                jumps.append([(event.member_epoch, old), (event.epoch, new)])
                jump_colors.append(palette(member))
                marks.append((event.epoch, new, palette(member)))
            if steps:
                # The first value also holds from where the stretch started (0 or the donor's epoch).
                xs += [stretch.start_epoch, *(step.epoch for step in steps), math.nan]
                ys += [to_y(steps[0].hyperparameters.get(name, MISSING), member)]
                ys += [to_y(step.hyperparameters.get(name, MISSING), member) for step in steps]
                ys += [math.nan]
        ax.plot(xs, ys, drawstyle="steps-pre", color=palette(member), linewidth=1.4, gid=f"member-{member}")
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
    ax.set_title(f"{literal(name)}{scale}", loc="left", fontsize="medium")
    ax.grid(alpha=0.3)
