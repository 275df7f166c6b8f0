"""pybt.report: figures, tables, CSV and the HTML page, from the RunHistory of real (tiny) PBT
runs and of hand-made records."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

import base64
import csv
import itertools
import math
import re
import struct
import sys
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

import pybt
from pybt.errors import InvalidArgumentError, MissingDependencyError, PyBTError
from pybt.history import RunHistory
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.exploit import Truncation
from pybt.policy.ready import ReadyAfter
from pybt.report import (
    merged_schedule,
    plot_hyperparameters,
    plot_lineage,
    plot_schedule,
    plot_scores,
    render_html,
    run_summary,
    schedule_table,
    summary,
    write_csv,
    write_html,
)
from pybt.report.rows import axis_scale

SPACE = {"lr": pybt.LogUniform(1e-4, 1.0), "opt": pybt.Choice(["adam", "sgd"])}
# Starting points that span four decades of lr (a log axis) and both optimizers.
INITIAL = [
    {"lr": 1e-4, "opt": "sgd"},
    {"lr": 0.3, "opt": "adam"},
    {"lr": 0.01, "opt": "sgd"},
    {"lr": 0.05, "opt": "adam"},
]


@dataclass
class Run:
    trainer: pybt.Trainer
    history: RunHistory
    config: dict[str, Any]


def pbt_run(
    population: int = 4,
    epochs: int = 12,
    *,
    mode: str = "max",
    fail_above: float | None = None,
    exploit: bool = True,
    initial: list[dict[str, Any]] | None = INITIAL,
) -> Run:
    """A FunctionModel run: w climbs towards 1 at speed lr (slower with sgd); lr above
    ``fail_above`` makes a step fail."""

    def init(seed: int) -> dict[str, Any]:
        return {"w": np.zeros(1)}

    def step(state: dict[str, Any], hp: dict[str, Any]) -> dict[str, Any]:
        if fail_above is not None and hp["lr"] > fail_above:
            raise FloatingPointError("loss diverged")
        gain = 1.0 if hp["opt"] == "adam" else 0.6
        w = float(state["w"][0])
        return {"w": np.array([w + hp["lr"] * gain * (1.0 - w)])}

    def evaluate(state: dict[str, Any]) -> dict[str, float]:
        w = float(state["w"][0])
        return {"accuracy": w, "loss": 1.0 - w}

    metric = "accuracy" if mode == "max" else "loss"
    trainer = pybt.Trainer(
        FunctionModel(init, step, evaluate),
        population_size=population,
        hyperparameters=SPACE,
        initial_hyperparameters=initial if initial is not None and len(initial) == population else None,
        stopping_criteria=StopAfter(epochs),
        ready_strategy=ReadyAfter(3),
        exploit_strategy=Truncation() if exploit else None,
        metric=metric,
        mode=mode,
        seed=0,
        verbose=0,
    )
    trainer.train()
    config = {"metric": metric, "mode": mode, "population_size": population, "space": repr(SPACE), "seed": 0}
    return Run(trainer, trainer.run_history, config)


@pytest.fixture(scope="module")
def run() -> Run:
    return pbt_run()


@pytest.fixture(scope="module")
def failing_run() -> Run:
    # Member 1 starts at lr=0.3 and fails: it is replaced by copying a healthy member.
    return pbt_run(fail_above=0.2)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def member_lines(ax: Any) -> list[Any]:
    return [line for line in ax.lines if (line.get_gid() or "").startswith("member-")]


def by_gid(artists: Any, gid: str) -> list[Any]:
    return [artist for artist in artists if artist.get_gid() == gid]


def async_history() -> RunHistory:
    """Records as an asynchronous executor leaves them: member 1 raced ahead to epoch 5, then
    copied member 0 at epoch 3 (going back two epochs) and trained on to epoch 5. No mode: the
    history reads it as "max"."""
    hp0, hp1, hp1_new = {"lr": 0.1, "opt": "adam"}, {"lr": 0.001, "opt": "sgd"}, {"lr": 0.12, "opt": "adam"}
    steps, exploits = [], []
    sequence = 0

    def add_step(member: int, epoch: int, score: float, hp: dict[str, Any]) -> None:
        nonlocal sequence
        sequence += 1
        steps.append(
            {
                "member": member,
                "epoch": epoch,
                "hyperparameters": dict(hp),
                "metrics": {"accuracy": score},
                "score": score,
                "seconds": 0.5,
                "sequence": sequence,
            }
        )

    for epoch, score in enumerate([0.05, 0.07, 0.08, 0.09, 0.1], start=1):
        add_step(1, epoch, score, hp1)
    for epoch, score in enumerate([0.2, 0.4, 0.6], start=1):
        add_step(0, epoch, score, hp0)
    sequence += 1
    exploits.append(
        {
            "member": 1,
            "donor": 0,
            "epoch": 3,
            "member_epoch": 5,
            "old_hyperparameters": dict(hp1),
            "new_hyperparameters": dict(hp1_new),
            "reason": "exploit",
            "sequence": sequence,
        }
    )
    add_step(0, 4, 0.7, hp0)
    add_step(1, 4, 0.75, hp1_new)
    add_step(1, 5, 0.9, hp1_new)
    return RunHistory.from_rows(steps, exploits)


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


# ---- HTML, CSV, DataFrame ----------------------------------------------------------------------
def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_write_html_is_one_self_contained_page(tmp_path: Any, failing_run: Run) -> None:
    config = {**failing_run.config, "note": "<script>alert(1)</script>"}
    before = plt.get_fignums()
    path = write_html(tmp_path / "out" / "report.html", failing_run.history, config)
    assert plt.get_fignums() == before  # drawn without pyplot: nothing left open
    page = path.read_text(encoding="utf-8")
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4
    assert all(png_size(base64.b64decode(image))[0] > 400 for image in images)
    assert "<script" not in page and 'src="http' not in page and "href=" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    best = failing_run.history.best()
    assert best is not None
    assert f"{best.score:.6g} at epoch {best.epoch}" in page
    for entry in merged_schedule(failing_run.trainer.schedule()):
        row = f"<td>{entry['from_epoch']}-{entry['to_epoch']}</td><td>{entry['member']}</td>"
        row += f"<td>{entry['hyperparameters']['lr']:.4g}</td><td>{entry['hyperparameters']['opt']}</td>"
        assert row in page
    assert f"Failed steps ({len(failing_run.history.failures)})" in page
    assert page.count("loss diverged") >= len(failing_run.history.failures)


def test_schedule_table_text_and_html(run: Run) -> None:
    merged = merged_schedule(run.trainer.schedule())
    text = schedule_table(run.history).splitlines()
    assert text[0].split() == ["epochs", "member", "lr", "opt"]
    assert len(text) == 2 + len(merged)
    assert text[2].split()[0] == f"0-{merged[0]['to_epoch']}"
    html_table = schedule_table(run.history, format="html")
    assert html_table.count("<tr>") == 1 + len(merged)
    with pytest.raises(InvalidArgumentError, match="format"):
        schedule_table(run.history, format="markdown")


def test_csv_round_trips(tmp_path: Any, run: Run) -> None:
    path = write_csv(tmp_path / "history.csv", run.history)
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert (
        list(rows[0])
        == "member epoch score seconds sequence hp_lr hp_opt metric_accuracy metric_loss".split()
    )
    assert len(rows) == len(run.history.steps)
    for written, step in zip(rows, sorted(run.history.steps, key=lambda r: r["sequence"]), strict=True):
        assert int(written["member"]) == step["member"] and int(written["epoch"]) == step["epoch"]
        assert float(written["score"]) == step["score"]
        assert float(written["hp_lr"]) == step["hyperparameters"]["lr"]
        assert written["hp_opt"] == step["hyperparameters"]["opt"]
        assert float(written["metric_loss"]) == step["metrics"]["loss"]
    frame = run.history.frame()
    read = pd.read_csv(path)
    assert list(frame.columns) == list(read.columns)
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), read, check_dtype=False)


def test_missing_extras_name_the_install(monkeypatch: pytest.MonkeyPatch, run: Run) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(PyBTError, match=r"pandas is not installed.*pip install"):
        run.history.frame()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r"pybt\[plot\]"):
        plot_scores(run.history)
    with pytest.raises(MissingDependencyError, match=r"pybt\[plot\]"):
        render_html(run.history)


# ---- edge cases --------------------------------------------------------------------------------
def test_no_exploits() -> None:
    calm = pbt_run(exploit=False)
    assert not calm.history.exploits
    fig = plot_scores(calm.history)
    (jumps,) = by_gid(fig.axes[0].collections, "exploit-jumps")
    assert len(jumps.get_segments()) == 0
    lineage_fig = plot_lineage(calm.history)
    (bold,) = by_gid(lineage_fig.axes[0].lines, "lineage")
    assert bold.get_ydata()[0] == calm.trainer.best_member
    page = render_html(calm.history, calm.config)
    assert page.count('<img src="data:image/png;base64,') == 4 and "Every exploit" not in page


def test_a_single_members_records_and_an_empty_history(run: Run) -> None:
    alone = RunHistory.from_rows(
        [row for row in run.history.steps if row["member"] == 2],
        metric=run.history.metric,
        mode=run.history.mode,
    )
    for draw in (plot_scores, plot_hyperparameters, plot_lineage, plot_schedule):
        assert isinstance(draw(alone), Figure)
    page = render_html(alone)
    assert page.count('<img src="data:image/png;base64,') == 4
    assert alone.best().member == 2  # type: ignore[union-attr]
    empty = render_html(RunHistory(), {})
    assert "<img" not in empty and "nothing to plot" in empty
    assert "none (no completed step)" in empty and "No configuration recorded" in empty
    assert RunHistory().frame().empty


def test_async_records_going_back_in_epochs(tmp_path: Any) -> None:
    history = async_history()
    best = history.best()
    assert best is not None and (best.member, best.epoch, best.score) == (1, 5, 0.9)
    fig = plot_schedule(history)
    panels = [ax for ax in fig.axes if by_gid(ax.lines, "schedule")]
    (line,) = by_gid(panels[0].lines, "schedule")
    assert list(line.get_xdata()) == [0, 1, 2, 3, 4, 5]
    assert list(line.get_ydata()) == [0.1, 0.1, 0.1, 0.1, 0.12, 0.12]  # member 0's lr, then the explored one
    lineage_fig = plot_lineage(history)
    bold = by_gid(lineage_fig.axes[0].lines, "lineage")
    assert [(line.get_ydata()[0], *line.get_xdata()) for line in bold] == [(0, 0, 3), (1, 3, 5)]
    page = write_html(tmp_path / "async.html", history).read_text()
    assert "<td>0-3</td><td>0</td>" in page and "<td>3-5</td><td>1</td>" in page
    assert "higher is better" in page  # no mode reads as "max", as the history ranks it


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
