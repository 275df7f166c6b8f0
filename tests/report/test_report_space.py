"""What the run's space decides in the report: log axes for log-scaled domains, a Choice's order,
the order of the schedule's columns across a resume; the configuration in words; and CSV numbers
written as the values the members used (no float32 noise).

Built from hand-made records, so each test runs in milliseconds; figures skip without matplotlib.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pybt
from pybt.errors import InvalidArgumentError
from pybt.history import RunHistory
from pybt.policy.done import StopAfter
from pybt.report import config_table, schedule_rows, write_csv
from pybt.report.rows import axis_scale
from pybt.report.spaces import domain_text, ordered_names
from pybt.report.tables import float_text
from pybt.store import describe

# lr spans less than two decades: only the space can say it is log-scaled.
SPACE = {
    "lr": pybt.LogUniform(1e-3, 1e-1),
    "batch": pybt.IntUniform(16, 256, log=True),
    "width": pybt.Uniform(0.001, 10.0),
    "opt": pybt.Choice(["sgd", "adam", "rmsprop"]),
}


def close(fig: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def history(
    hyperparameters: list[dict[str, Any]], metrics: list[dict[str, float]] | None = None
) -> RunHistory:
    """One member's steps, epoch 1, 2, ... with these hyperparameters (and metrics)."""
    steps = [
        {
            "sequence": i + 1,
            "member": 0,
            "epoch": i + 1,
            "hyperparameters": hp,
            "metrics": (metrics or [{"accuracy": 0.1 * (i + 1)}] * len(hyperparameters))[i],
            "score": 0.1 * (i + 1),
            "seconds": 0.1,
        }
        for i, hp in enumerate(hyperparameters)
    ]
    return RunHistory.from_rows(steps, metric="accuracy", mode="max")


HP = [
    {"lr": 0.01, "batch": 32, "width": 0.002, "opt": "adam"},
    {"lr": 0.05, "batch": 40, "width": 8.0, "opt": "sgd"},
]


def test_the_space_decides_the_axis_and_the_values_only_without_one() -> None:
    lr, width = [0.01, 0.05], [0.002, 8.0]
    assert axis_scale(lr) == ("linear", []) and axis_scale(lr, SPACE["lr"]) == ("log", [])
    assert axis_scale([32, 40], SPACE["batch"]) == ("log", [])
    assert axis_scale([32, 40], pybt.IntUniform(16, 256)) == ("linear", [])
    assert axis_scale(width) == ("log", []) and axis_scale(width, SPACE["width"]) == ("linear", [])
    # A run folder records the space described; the description decides the same way.
    recorded = describe(SPACE)
    assert recorded["lr"]["type"] == "pybt.space.LogUniform"
    assert (
        axis_scale(lr, recorded["lr"]) == ("log", []) and axis_scale(width, recorded["width"])[0] == "linear"
    )
    # A Choice's options keep their order; values outside them fall back to the values' order.
    assert axis_scale(["adam", "sgd"], SPACE["opt"]) == ("category", ["sgd", "adam", "rmsprop"])
    assert axis_scale(["adam", "nadam"], SPACE["opt"]) == ("category", ["adam", "nadam"])
    # A domain the report does not know (a Fixed, a user's own) leaves it to the values.
    assert (
        axis_scale(lr, pybt.space.Fixed(0.01)) == ("linear", [])
        and axis_scale(lr, {"type": "x.Y"})[0] == "linear"
    )


@pytest.mark.parametrize("recorded", [False, True], ids=["domains", "recorded description"])
def test_figures_take_log_axes_and_order_from_the_space(recorded: bool) -> None:
    pytest.importorskip("matplotlib")
    from pybt.report import plot_hyperparameters, plot_schedule

    space = describe(SPACE) if recorded else SPACE
    # Records as an old run folder left them: hyperparameters sorted by name.
    run = history([dict(sorted(hp.items())) for hp in HP])
    for draw in (plot_hyperparameters, plot_schedule):
        fig = draw(run, space=space)
        panels = [ax for ax in fig.axes if ax.lines]
        titles = [ax.get_title(loc="left") or ax.get_ylabel() for ax in panels]
        assert [title.split(" ")[0] for title in titles] == ["lr", "batch", "width", "opt"], titles
        assert [ax.get_yscale() for ax in panels] == ["log", "log", "linear", "linear"]
        assert [t.get_text() for t in panels[3].get_yticklabels()] == ["sgd", "adam", "rmsprop"]
        close(fig)
    # Without a space: the values decide (lr under two decades: linear), in the records' order.
    fig = plot_hyperparameters(run)
    panels = [ax for ax in fig.axes if ax.lines]
    assert [ax.get_title(loc="left").split(" ")[0] for ax in panels] == ["batch", "lr", "opt", "width"]
    assert [ax.get_yscale() for ax in panels] == ["linear", "linear", "linear", "log"]
    close(fig)
    with pytest.raises(InvalidArgumentError, match="space"):
        plot_schedule(run, space=repr(SPACE))  # type: ignore[arg-type]


def test_log_axes_are_labelled_in_plain_numbers() -> None:
    pytest.importorskip("matplotlib")
    from pybt.report import plot_hyperparameters

    fig = plot_hyperparameters(history(HP), names=["lr", "batch"], space=SPACE)
    fig.canvas.draw()
    for ax in fig.axes[:2]:
        labels = [t.get_text() for t in ax.get_yticklabels(which="both") if t.get_text()]
        assert labels and not any("$" in label or "times" in label for label in labels), labels
    assert "0.01" in [t.get_text() for t in fig.axes[0].get_yticklabels(which="both")]
    batch = [t.get_text() for t in fig.axes[1].get_yticklabels(which="both") if t.get_text()]
    assert all(label.isdigit() for label in batch), batch  # no 32.5 for a batch size
    close(fig)


def test_schedule_columns_follow_the_space_across_a_resume() -> None:
    # Before the resume the journal sorted keys; after it, records keep the space's order.
    before = [dict(sorted(hp.items())) for hp in HP]
    after = [dict(HP[1]), {**HP[1], "lr": 0.02}]
    run = history([*before, *after])
    headers, rows = schedule_rows(run, space=SPACE)
    assert headers == ["epochs", "member", "lr", "batch", "width", "opt"]
    assert rows[0][2:] == [0.01, 32, 0.002, "adam"]
    assert schedule_rows(run, space=describe(SPACE))[0] == headers
    # Without a space: the order the records first gave (here, the old folder's sorted one).
    assert schedule_rows(run)[0] == ["epochs", "member", "batch", "lr", "opt", "width"]
    assert ordered_names(["b", "z", "a"], {"a": None, "b": None}) == ["a", "b", "z"]
    with pytest.raises(InvalidArgumentError, match="space"):
        schedule_rows(run, space=["lr"])  # type: ignore[arg-type]


def test_the_configuration_in_words() -> None:
    config = {"population_size": 1, "space": describe(SPACE), "stopping_criteria": describe(StopAfter(8))}
    table = config_table(config)
    assert "lr: LogUniform(0.001, 0.1)\n" in table and "batch: IntUniform(16, 256, log=True)" in table
    assert "opt: Choice(['sgd', 'adam', 'rmsprop'])" in table and "StopAfter(epochs=8" in table
    # In text, the space's lines line up in the value column.
    lines = table.splitlines()
    first = next(line for line in lines if line.startswith("space"))
    batch = next(line for line in lines if "batch:" in line)
    assert first.index("lr:") == batch.index("batch:") and not batch[: batch.index("batch:")].strip()
    # A live space and its recorded description read the same.
    for name, domain in SPACE.items():
        assert domain_text(domain) == domain_text(describe(SPACE)[name]), name


def test_csv_numbers_are_the_values_the_members_used(tmp_path: Path) -> None:
    noisy = float(np.float32(0.001))
    assert noisy == 0.0010000000474974513
    assert float_text(noisy) == "0.001" and float_text(float(np.float32(0.9277778))) == "0.9277778"
    assert float_text(0.1) == "0.1" and float_text(1 / 3) == repr(1 / 3)  # float64: exact repr
    assert float_text(-2.5) == "-2.5" and float_text(float("nan")) == "nan" and float_text(1e300) == "1e+300"
    run = history(
        [{"lr": noisy, "batch": 32}, {"lr": 0.0123456789, "batch": 40}],
        [{"accuracy": float(np.float32(0.85333335)), "loss": -0.25}, {"accuracy": 0.5, "loss": 0.1}],
    )
    path = write_csv(tmp_path / "history.csv", run)
    text = path.read_text()
    assert "0.0010000000474974513" not in text and "0.8533333539962769" not in text
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["hp_lr"] for row in rows] == ["0.001", "0.0123456789"]
    assert rows[0]["metric_accuracy"] == "0.85333335" and rows[0]["metric_loss"] == "-0.25"
    # Each cell reads back as the value the member used: float32 values as that float32.
    assert np.float32(float(rows[0]["hp_lr"])) == np.float32(noisy)
    assert float(rows[1]["hp_lr"]) == 0.0123456789 and rows[1]["hp_batch"] == "40"
