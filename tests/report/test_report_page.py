"""pybt.report: the HTML page, the schedule table, the CSV and the DataFrame, and edge cases (no
exploits, one member, no steps, asynchronous records), from real (tiny) runs and hand-made records."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

import base64
import csv
import re
import sys
from collections.abc import Iterator
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

import pybt
from pybt.errors import InvalidArgumentError, MissingDependencyError, PyBTError
from pybt.history import RunHistory
from pybt.report import (
    merged_schedule,
    plot_lineage,
    plot_schedule,
    plot_scores,
    render_html,
    schedule_table,
    write_csv,
    write_html,
)
from pybt.report.header import format_time
from tests.report.runs import Run, async_history, by_gid, pbt_run, png_size


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def drawn() -> Iterator[list[str]]:
    """The page's figures named, not drawn: for tests of what the page says (drawing a page's
    figures takes a second; the tests above draw them)."""
    names: list[str] = []

    def name_only(draw: Any, *args: Any, progress: Any = None, **kwargs: Any) -> bytes:
        names.append(draw.__name__)
        return PNG

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("pybt.report.page.figure_png", name_only)
        yield names


# A 1x1 PNG: what the page embeds where a test does not draw the figures.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="
)


# ---- HTML, CSV, DataFrame ----------------------------------------------------------------------
def test_write_html_is_one_self_contained_page(tmp_path: Any, failing_run: Run) -> None:
    config = {**failing_run.config, "note": "<script>alert(1)</script>"}
    before = plt.get_fignums()
    path = write_html(tmp_path / "out" / "report.html", failing_run.history, config)
    assert plt.get_fignums() == before  # drawn without pyplot: nothing left open
    page = path.read_text(encoding="utf-8")
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 5  # scores, every metric, hyperparameters, lineage, schedule
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
    # At the top: a live history's status is not known; the configuration in words, the space's
    # domains one a line.
    top = page[: page.index("<img")]
    assert '<span class="badge status-not-given">status not given</span>' in top
    assert (
        "<td>space</td><td>lr: LogUniform(0.0001, 1)\nopt: Choice([&#x27;adam&#x27;, &#x27;sgd&#x27;])</td>"
        in top
    )
    assert "<h2>Every metric</h2>" in page and "started" not in top


def test_the_top_of_the_page_says_how_the_run_stands() -> None:
    empty = RunHistory()  # the header alone: no figures to draw
    page = render_html(
        empty, status="in progress", created_at=1.7e9, updated_at=1.7e9 + 3725, version="0.1.0"
    )
    top = page[: page.index("<h2>")]
    assert '<span class="badge in-progress">in progress</span>' in top and "still training" in top
    assert f"started {format_time(1.7e9)}" in top and "(1 h 2 min later)" in top
    assert "recorded by PyBT 0.1.0" in top and f"report by PyBT {pybt.__version__}" in top
    finished = render_html(empty, status="finished", version=pybt.__version__)
    assert "still training" not in finished and "report by PyBT" not in finished
    with pytest.raises(InvalidArgumentError, match="status"):
        render_html(empty, status="done")
    with pytest.raises(InvalidArgumentError, match="created_at"):
        render_html(empty, created_at="yesterday")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="version"):
        render_html(empty, version=5)  # type: ignore[arg-type]


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
def test_no_exploits(drawn: list[str]) -> None:
    calm = pbt_run(exploit=False)
    assert not calm.history.exploits
    fig = plot_scores(calm.history)
    (jumps,) = by_gid(fig.axes[0].collections, "exploit-jumps")
    assert len(jumps.get_segments()) == 0
    lineage_fig = plot_lineage(calm.history)
    (bold,) = by_gid(lineage_fig.axes[0].lines, "lineage")
    assert bold.get_ydata()[0] == calm.trainer.best_member
    page = render_html(calm.history, calm.config)
    assert page.count('<img src="data:image/png;base64,') == 5 and "Every exploit" not in page
    assert drawn == ["plot_scores", "plot_metrics", "plot_hyperparameters", "plot_lineage", "plot_schedule"]


def test_a_single_members_records_and_an_empty_history(run: Run) -> None:
    alone = RunHistory.from_rows(
        [row for row in run.history.steps if row["member"] == 2],
        metric=run.history.metric,
        mode=run.history.mode,
    )
    page = render_html(alone)  # draws every figure of one member's records
    assert page.count('<img src="data:image/png;base64,') == 5
    assert alone.best().member == 2  # type: ignore[union-attr]
    empty = render_html(RunHistory(), {})
    assert "<img" not in empty and "nothing to plot" in empty
    assert "none (no completed step)" in empty and "No configuration recorded" in empty
    assert RunHistory().frame().empty


def test_async_records_going_back_in_epochs(tmp_path: Any, drawn: list[str]) -> None:
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
    assert "plot_metrics" not in drawn  # the score is its only metric: the scores figure shows it
