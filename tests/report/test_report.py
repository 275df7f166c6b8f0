"""pybt.report: reading a run's history (best member, schedule, summary) and the figures, from
the RunHistory of real (tiny) PBT runs and of hand-made records."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

import itertools
import math
import re

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

from pybt.errors import InvalidArgumentError
from pybt.history import RunHistory
from pybt.report import (
    merged_schedule,
    plot_hyperparameters,
    plot_lineage,
    plot_schedule,
    plot_scores,
    run_summary,
    schedule_table,
    summary,
)
from pybt.report.rows import axis_scale
from tests.report.runs import INITIAL, SPACE, Run, async_history, by_gid, member_lines, pbt_run


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# ---- reading the history -----------------------------------------------------------------------
def test_best_member_and_schedule_agree_with_the_trainer(run: Run) -> None:
    assert run.history.exploits, "the fixture run must exploit for these tests to mean anything"
    best = run.history.best()
    assert best is not None
    assert best.member == run.trainer.best_member
    assert best.score == max(row["score"] for row in run.history.steps if row["epoch"] == best.epoch)
    merged = merged_schedule(run.trainer.schedule())
    # The stretches tile 0..epoch without gaps, and each one's hyperparameters change at its end.
    assert merged[0]["from_epoch"] == 0 and merged[-1]["to_epoch"] == best.epoch
    assert all(a["to_epoch"] == b["from_epoch"] for a, b in itertools.pairwise(merged))
    assert all(
        (a["member"], a["hyperparameters"]) != (b["member"], b["hyperparameters"])
        for a, b in itertools.pairwise(merged)
    )
    for entry in run.trainer.schedule():
        covering = [m for m in merged if m["from_epoch"] <= entry["from_epoch"] < m["to_epoch"]]
        assert covering[0]["hyperparameters"] == entry["hyperparameters"]


def test_mode_min_picks_the_lowest_score() -> None:
    low = pbt_run(mode="min")
    best = low.history.best()
    assert best is not None and best.member == low.trainer.best_member
    final = [row["score"] for row in low.history.steps if row["epoch"] == best.epoch]
    assert best.score == min(final)
    assert run_summary(low.history, low.config)["best_score"] == best.score
    assert run_summary(low.history)["mode"] == "min"
    assert "lower is better" in summary(low.history, low.config)


def test_summary_counts(failing_run: Run) -> None:
    numbers = run_summary(failing_run.history, failing_run.config)
    assert numbers["failures"] == len(failing_run.history.failures) > 0
    assert numbers["replacements"] == sum(e["reason"] == "failure" for e in failing_run.history.exploits) > 0
    assert numbers["exploits"] + numbers["replacements"] == len(failing_run.history.exploits)
    assert numbers["steps"] == len(failing_run.history.steps)
    assert numbers["best_member"] == failing_run.trainer.best_member
    text = summary(failing_run.history, failing_run.config)
    assert re.search(rf"^Failed steps +{len(failing_run.history.failures)}$", text, re.MULTILINE)
    assert "Best accuracy (higher is better)" in text


def test_invalid_mode_member_fig_and_history_are_named(run: Run) -> None:
    with pytest.raises(InvalidArgumentError, match="mode"):
        RunHistory.from_rows(run.history.steps, run.history.exploits, mode="maximum")
    with pytest.raises(InvalidArgumentError, match="member"):
        plot_lineage(run.history, member=99)
    with pytest.raises(InvalidArgumentError, match="fig"):
        plot_scores(run.history, fig=plot_scores(run.history))
    # The rows of earlier versions are not a history: the error says where to get one.
    with pytest.raises(InvalidArgumentError, match=r"history.*RunHistory\.from_rows"):
        schedule_table(run.trainer.history)  # type: ignore[arg-type]


def test_axis_scale_log_linear_and_categories() -> None:
    assert axis_scale([1e-4, 0.05, 0.3]) == ("log", [])
    assert axis_scale([0.0, 0.5, 1.0]) == ("linear", [])  # 0 cannot go on a log axis
    assert axis_scale([0.01, 0.5]) == ("linear", [])  # under two decades
    assert axis_scale([128, "auto", 32, None, 64]) == ("category", [32, 64, 128, None, "auto"])


# ---- figures -----------------------------------------------------------------------------------
def test_plot_scores_draws_a_line_per_member_and_the_jumps(run: Run) -> None:
    fig = plot_scores(run.history)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = member_lines(ax)
    assert sorted(line.get_gid() for line in lines) == [f"member-{m}" for m in range(4)]
    (jumps,) = by_gid(ax.collections, "exploit-jumps")
    # Each jump goes from the member's last score to the donor's score at the epoch it took over.
    expected = []
    for event in run.history.exploits:
        before = [r for r in run.history.steps if r["sequence"] < event["sequence"]]
        own = max((r for r in before if r["member"] == event["member"]), key=lambda r: r["sequence"])
        donor = max((r for r in before if r["member"] == event["donor"]), key=lambda r: r["sequence"])
        assert donor["epoch"] == event["epoch"]
        expected.append([[own["epoch"], own["score"]], [donor["epoch"], donor["score"]]])
    assert sorted(segment.tolist() for segment in jumps.get_segments()) == sorted(expected)
    (lineage_line,) = by_gid(ax.lines, "lineage")
    assert list(lineage_line.get_xdata()) == [entry["to_epoch"] for entry in run.trainer.schedule()]
    (star,) = by_gid(ax.collections, "best")
    best = run.history.best()
    assert best is not None
    assert tuple(star.get_offsets()[0]) == (best.epoch, best.score)
    texts = [text.get_text() for text in fig.legends[0].get_texts()]
    assert [f"member {m}" for m in range(4)] == texts[:4]
    assert ax.get_ylabel() == "accuracy" and "higher is better" in ax.get_title(loc="left")


def test_plot_scores_jump_joins_the_members_end_to_the_donors_point() -> None:
    fig = plot_scores(async_history())
    ax = fig.axes[0]
    (jumps,) = by_gid(ax.collections, "exploit-jumps")
    (segment,) = jumps.get_segments()
    assert segment.tolist() == [[5, 0.1], [3, 0.6]]  # from member 1 at epoch 5 back to member 0 at 3
    (line,) = by_gid(ax.lines, "member-1")
    xs = [x for x in line.get_xdata() if not math.isnan(x)]
    assert xs == [1, 2, 3, 4, 5, 3, 4, 5]  # the member went back to epoch 3 and on
    (lineage_line,) = by_gid(ax.lines, "lineage")
    assert list(lineage_line.get_ydata()) == [0.2, 0.4, 0.6, 0.75, 0.9]


def test_plot_hyperparameters_one_panel_each_with_log_and_category_axes(run: Run) -> None:
    fig = plot_hyperparameters(run.history)
    panels = [ax for ax in fig.axes if member_lines(ax)]
    assert len(panels) == len(SPACE)
    lr_ax, opt_ax = panels
    assert lr_ax.get_yscale() == "log"  # lr spans four decades
    assert [t.get_text() for t in opt_ax.get_yticklabels()] == ["adam", "sgd"]
    for ax in panels:
        assert len(member_lines(ax)) == 4
        (marks,) = by_gid(ax.collections, "exploit-marks")
        assert len(marks.get_offsets()) == len(run.history.exploits)
        (jumps,) = by_gid(ax.collections, "exploit-jumps")
        assert len(jumps.get_segments()) == len(run.history.exploits)
    # Member 0's first stretch holds its starting lr from epoch 0 up to its first exploit.
    first = run.history.stretches(0)[0]
    (line,) = by_gid(lr_ax.lines, "member-0")
    assert line.get_xdata()[0] == 0
    assert line.get_ydata()[0] == first.steps[0].hyperparameters["lr"] == INITIAL[0]["lr"]
    with pytest.raises(InvalidArgumentError, match="names"):
        plot_hyperparameters(run.history, names=["momentum"])


def test_plot_lineage_bolds_the_winners_ancestry(run: Run) -> None:
    fig = plot_lineage(run.history)
    ax = fig.axes[0]
    assert len(member_lines(ax)) == 4
    segments = run.trainer.lineage()
    bold = by_gid(ax.lines, "lineage")
    assert [(line.get_ydata()[0], line.get_xdata()[0], line.get_xdata()[1]) for line in bold] == [
        (s["member"], s["from_epoch"], s["to_epoch"]) for s in segments
    ]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == len(run.history.exploits)
    assert len(by_gid(arrows, "lineage-exploit")) == len(segments) - 1
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"member {m}" for m in range(4)]


def test_plot_schedule_steps_through_the_winning_schedule(run: Run) -> None:
    fig = plot_schedule(run.history)
    panels = [ax for ax in fig.axes if by_gid(ax.lines, "schedule")]
    assert len(panels) == len(SPACE)
    entries = run.trainer.schedule()
    (line,) = by_gid(panels[0].lines, "schedule")
    assert list(line.get_xdata()) == [0] + [e["to_epoch"] for e in entries]
    assert list(line.get_ydata())[1:] == [e["hyperparameters"]["lr"] for e in entries]


def test_many_members_get_a_colour_bar_not_a_legend() -> None:
    big = pbt_run(population=12, epochs=6, initial=None)
    fig = plot_scores(big.history)
    assert len(member_lines(fig.axes[0])) == 12
    assert any(ax.get_ylabel() == "member" for ax in fig.axes[1:])  # the colour bar
    assert not any("member 0" == t.get_text() for legend in fig.legends for t in legend.get_texts())


def test_failures_are_marked(failing_run: Run) -> None:
    fig = plot_scores(failing_run.history)
    marks = by_gid(fig.axes[0].collections, "failures")
    assert sum(len(m.get_offsets()) for m in marks) == len(failing_run.history.failures)
    lineage_fig = plot_lineage(failing_run.history)
    (crosses,) = by_gid(lineage_fig.axes[0].collections, "failures")
    assert sorted(crosses.get_offsets()[:, 1]) == sorted(f["member"] for f in failing_run.history.failures)
    replaced = [
        p for p in lineage_fig.axes[0].patches if isinstance(p, FancyArrowPatch) and p.get_linestyle() == "--"
    ]
    assert len(replaced) == sum(e["reason"] == "failure" for e in failing_run.history.exploits)
