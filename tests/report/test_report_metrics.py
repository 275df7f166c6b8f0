"""The figure of every metric: one panel per evaluated and training metric, every member's line,
a metric beside its training twin, and a member that copied a donor going on from the donor's
point. Drawn from hand-made records (an asynchronous run going back in epochs)."""

from __future__ import annotations

import math
from typing import Any

import pytest

pytest.importorskip("matplotlib")

import matplotlib.pyplot as plt

from pybt.errors import InvalidArgumentError
from pybt.history import RunHistory
from pybt.report import plot_metrics
from pybt.report.figures.metrics import metric_rows
from tests.report.runs import by_gid, member_lines


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def metrics(score: float, epoch: int) -> dict[str, float]:
    """Accuracy, a loss falling over three decades, its training twin, and a training-only metric."""
    return {
        "accuracy": score,
        "loss": 10.0 ** (1 - epoch),
        "train_loss": 10.0 ** (0.5 - epoch),
        "train_seconds": 1.0 + score,
    }


def history() -> RunHistory:
    """Member 1 trains to epoch 5, copies member 0 at epoch 3 (going back two epochs) and goes on."""
    steps: list[dict[str, Any]] = []
    sequence = 0

    def add(member: int, epoch: int, score: float) -> None:
        nonlocal sequence
        sequence += 1
        steps.append(
            {"member": member, "epoch": epoch, "hyperparameters": {"lr": 0.1}, "score": score,
             "metrics": metrics(score, epoch), "seconds": 0.5, "sequence": sequence}
        )  # fmt: skip

    for epoch, score in enumerate([0.05, 0.07, 0.08, 0.09, 0.1], start=1):
        add(1, epoch, score)
    for epoch, score in enumerate([0.2, 0.4, 0.6], start=1):
        add(0, epoch, score)
    sequence += 1
    exploit = {"member": 1, "donor": 0, "epoch": 3, "member_epoch": 5, "sequence": sequence,
               "old_hyperparameters": {"lr": 0.1}, "new_hyperparameters": {"lr": 0.12}}  # fmt: skip
    add(0, 4, 0.7)
    add(1, 4, 0.75)
    add(1, 5, 0.9)
    return RunHistory.from_rows(steps, [exploit], metric="accuracy", mode="max")


def panels(fig: Any) -> dict[str, Any]:
    """The visible panels by metric name (the first word of each title)."""
    return {ax.get_title(loc="left").split(" ")[0]: ax for ax in fig.axes if ax.get_visible() and ax.lines}


def test_a_metric_sits_beside_its_training_twin() -> None:
    names = ["accuracy", "loss", "train_loss", "train_seconds"]
    assert metric_rows(names) == [("accuracy", None), ("loss", "train_loss"), (None, "train_seconds")]
    assert metric_rows(["score"]) == [("score", None)]


def test_every_metric_gets_a_panel_with_every_member() -> None:
    run = history()
    fig = plot_metrics(run)
    drawn = panels(fig)
    assert sorted(drawn) == ["accuracy", "loss", "train_loss", "train_seconds"]
    for name, ax in drawn.items():
        assert sorted(line.get_gid() for line in member_lines(ax)) == ["member-0", "member-1"], name
        assert len(by_gid(ax.lines, "lineage")) == 1  # the best member's lineage underlaid
    assert "the score" in drawn["accuracy"].get_title(loc="left")
    assert "during training" in drawn["train_loss"].get_title(loc="left")
    # The loss and its training twin share one axis, a log one: they fall over three decades.
    assert drawn["loss"].get_shared_y_axes().joined(drawn["loss"], drawn["train_loss"])
    assert drawn["loss"].get_yscale() == drawn["train_loss"].get_yscale() == "log"
    assert drawn["accuracy"].get_yscale() == "linear"  # higher is better: never a log axis
    # Member 1 went back to epoch 3 when it copied member 0, and goes on from member 0's point.
    (line,) = by_gid(drawn["loss"].lines, "member-1")
    points = [(x, y) for x, y in zip(line.get_xdata(), line.get_ydata(), strict=True) if not math.isnan(x)]
    assert [x for x, _ in points] == [1, 2, 3, 4, 5, 3, 4, 5]
    donor_loss = next(s.metrics["loss"] for s in run.steps if (s.member, s.epoch) == (0, 3))
    assert points[5] == (3, donor_loss)


def test_chosen_metrics_and_no_steps() -> None:
    fig = plot_metrics(history(), names=["train_seconds"])
    assert list(panels(fig)) == ["train_seconds"]
    with pytest.raises(InvalidArgumentError, match="names"):
        plot_metrics(history(), names=["val_auc"])
    with pytest.raises(InvalidArgumentError, match="names"):
        plot_metrics(history(), names="loss")  # type: ignore[arg-type]
    empty = plot_metrics(RunHistory())
    assert any("No metrics recorded yet" in text.get_text() for text in empty.axes[0].texts)
