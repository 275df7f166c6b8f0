"""The TensorBoard callback, read back with TensorBoard's own event multiplexer: a run per member
with its metrics, hyperparameters, exploits and final HParams; one point per step, the newest,
after a member goes back to its donor's epoch and after a resume; events on disk at every
checkpoint and when train() is interrupted."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tensorboardX")
pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing import event_file_loader, plugin_event_multiplexer
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.util import tensor_util

import pybt
from pybt.callbacks import Callback, TensorBoard
from pybt.errors import MissingDependencyError, PyBTError
from pybt.history import ExploitRecord, RunHistory, StepRecord
from tests.callbacks import runs

make_trainer = runs.make_trainer


def read(log_dir: Path) -> plugin_event_multiplexer.EventMultiplexer:
    # Keep every point (TensorBoard's server samples long series; these are short).
    multiplexer = plugin_event_multiplexer.EventMultiplexer(size_guidance={"tensors": 0})
    multiplexer.AddRunsFromDirectory(str(log_dir))
    multiplexer.Reload()
    return multiplexer


def points(multiplexer: Any, run: str, tag: str) -> list[tuple[int, Any]]:
    if tag not in multiplexer.Runs()[run]["tensors"]:
        return []
    return [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in multiplexer.Tensors(run, tag)]


def scalars(multiplexer: Any, run: str, tag: str) -> list[tuple[int, float]]:
    return [(step, pytest.approx(float(value), rel=1e-6)) for step, value in points(multiplexer, run, tag)]


def texts(multiplexer: Any, run: str, tag: str) -> list[tuple[int, str]]:
    return [(step, value.item().decode()) for step, value in points(multiplexer, run, f"{tag}/text_summary")]


def latest(history: RunHistory, member: int, value: Callable[[StepRecord], float]) -> list[tuple[int, float]]:
    """What the member's run shows: a value per epoch, the newest; a copy of a donor that trained
    fewer epochs drops the member's points after the donor's epoch."""
    curve: dict[int, float] = {}
    for record in history.member_records(member):
        if isinstance(record, ExploitRecord):
            curve = {epoch: v for epoch, v in curve.items() if epoch <= record.epoch}
        elif isinstance(record, StepRecord):
            curve[record.epoch] = value(record)
    return sorted(curve.items())


def expected(history: RunHistory, member: int, metric: str) -> list[tuple[int, float]]:
    curve = latest(history, member, lambda record: record.metrics[metric])
    return [(epoch, pytest.approx(v, rel=1e-6)) for epoch, v in curve]


def raw_steps(log_dir: Path, run: str, tag: str) -> list[int]:
    """Every step written for ``tag``, straight from the event files (purges not applied)."""
    steps = []
    for path in sorted((log_dir / run).iterdir()):
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return steps


def test_each_member_is_a_run_of_metrics_hyperparameters_exploits_and_final_hparams(tmp_path: Path) -> None:
    log_dir = tmp_path / "tb"
    trainer = make_trainer([TensorBoard(log_dir)])
    trainer.train()
    history = trainer.run_history
    assert history.exploits and history.failures, "the run exercises exploits and failures"
    multiplexer = read(log_dir)
    assert sorted(multiplexer.Runs()) == ["member-00", "member-01", "member-02", "member-03"]
    for member in range(4):
        run = f"member-{member:02d}"
        for metric in ("accuracy", "loss", "train_loss"):
            assert scalars(multiplexer, run, f"metrics/{metric}") == expected(history, member, metric)
        lr = latest(history, member, lambda record: record.hyperparameters["lr"])
        assert scalars(multiplexer, run, "hyperparameters/lr") == [(e, pytest.approx(v)) for e, v in lr]
        assert "hyperparameters/optimizer/text_summary" not in multiplexer.Runs()[run]["tensors"]
        exploits = [e for e in history.exploits if e.member == member]
        shown = texts(multiplexer, run, "exploits")
        assert [step for step, _ in shown] == [e.epoch for e in exploits]
        for (_, text), record in zip(shown, exploits, strict=True):
            assert f"member {member} copied member {record.donor} at epoch {record.epoch}" in text
            assert (
                f"| lr | {record.old_hyperparameters['lr']!r} | {record.new_hyperparameters['lr']!r} |"
                in text
            )
        failures = [f for f in history.failures if f.member == member]
        assert [(step, "lr too high" in text) for step, text in texts(multiplexer, run, "failures")] == [
            (f.epoch, True) for f in failures
        ]

        # HParams: the hyperparameters the final weights were trained with, and the final score.
        content = multiplexer.PluginRunToTagToContent("hparams")[run]
        start = hparams_metadata.parse_session_start_info_plugin_data(content["_hparams_/session_start_info"])
        experiment = hparams_metadata.parse_experiment_plugin_data(content["_hparams_/experiment"])
        last = history.lineage_steps(member)[-1]
        assert start.hparams["lr"].number_value == pytest.approx(last.hyperparameters["lr"])
        assert start.hparams["optimizer"].string_value == last.hyperparameters["optimizer"]
        assert {"final/score", "final/accuracy"} <= {info.name.tag for info in experiment.metric_infos}
        standing = history.standing(member)
        assert standing is not None
        assert scalars(multiplexer, run, "final/score") == [(standing.epoch, pytest.approx(standing.score))]


def test_a_member_that_goes_back_to_its_donors_epoch_shows_each_epoch_once(tmp_path: Path) -> None:
    """A donor that trained fewer epochs: the member's points after the donor's epoch are dropped
    (TensorBoard's restart marker), so its curve is what its weights went through last."""
    trainer = make_trainer([], population_size=2)
    history, log_dir = trainer.run_history, tmp_path / "tb"
    callback = TensorBoard(log_dir)
    callback.on_train_begin(trainer)
    sequence = iter(range(1, 100))

    def step_record(member: int, epoch: int, accuracy: float) -> None:
        record = StepRecord(next(sequence), member, epoch, {"lr": 0.1}, {"accuracy": accuracy}, accuracy, 0.0)
        history.add(record)  # in the history before the callbacks hear of it, as the trainer does
        callback.on_step(trainer, record)

    for epoch in (1, 2, 3, 4):
        step_record(0, epoch, epoch)
    for epoch in (1, 2):
        step_record(1, epoch, 10 + epoch)
    exploit = ExploitRecord(next(sequence), 0, 1, 2, 4, {"lr": 0.1}, {"lr": 0.12})
    history.add(exploit)
    callback.on_exploit(trainer, exploit)
    for epoch in (3, 4):
        step_record(0, epoch, 100 + epoch)
    callback.on_train_end(trainer, None)

    multiplexer = read(log_dir)
    assert scalars(multiplexer, "member-00", "metrics/accuracy") == [(1, 1), (2, 2), (3, 103), (4, 104)]
    assert [step for step, _ in texts(multiplexer, "member-00", "exploits")] == [2]
    assert raw_steps(log_dir, "member-00", "metrics/accuracy") == [1, 2, 3, 4, 3, 4], "both were written"
    assert scalars(multiplexer, "member-01", "metrics/accuracy") == [(1, 11), (2, 12)]


class FirstCheckpointProbe(Callback):
    """Reads the log folder at the first checkpoint cut, after TensorBoard has heard of it."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.seen: dict[str, list[Any]] | None = None
        self.expected: dict[str, list[Any]] | None = None

    def on_checkpoint(self, trainer: pybt.Trainer, sequence: int) -> None:
        if self.seen is None:
            multiplexer = read(self.log_dir)
            runs = [f"member-{m:02d}" for m in range(trainer.population_size)]
            self.seen = {run: scalars(multiplexer, run, "metrics/accuracy") for run in runs}
            history = trainer.run_history
            self.expected = {run: expected(history, m, "accuracy") for m, run in enumerate(runs)}


def test_events_reach_disk_at_checkpoints_and_interrupts_and_a_resume_shows_each_step_once(
    tmp_path: Path,
) -> None:
    run_dir, log_dir = tmp_path / "run", tmp_path / "tb"
    probe = FirstCheckpointProbe(log_dir)
    # flush_secs large: only the checkpoint cut and the end of train() write the events.
    first = make_trainer([TensorBoard(log_dir, flush_secs=1e9), probe], run_dir=run_dir)
    runs.INTERRUPT["after"] = 4 * 5 + 2  # in the middle of the sixth round, after a cut at epoch 4
    try:
        with pytest.raises(KeyboardInterrupt):
            first.train()
    finally:
        runs.INTERRUPT["after"] = None
    assert probe.seen is not None and probe.seen == probe.expected
    assert any(probe.seen.values())
    interrupted = read(log_dir)
    for member in range(4):
        run = f"member-{member:02d}"
        assert scalars(interrupted, run, "metrics/accuracy") == expected(
            first.run_history, member, "accuracy"
        )

    second = make_trainer([TensorBoard(log_dir)], run_dir=run_dir)
    second.train()
    final = pybt.load_run(run_dir).history
    resumed = read(log_dir)
    redone = 0
    for member in range(4):
        run = f"member-{member:02d}"
        assert scalars(resumed, run, "metrics/accuracy") == expected(final, member, "accuracy")
        redone += len(raw_steps(log_dir, run, "metrics/accuracy")) - len(expected(final, member, "accuracy"))
    assert redone > 0, "steps after the newest cut were written twice and are shown once"


def test_importing_the_callbacks_loads_no_framework() -> None:
    code = (
        "import sys\n"
        "from pybt.callbacks import MLflow, TensorBoard\n"
        "loaded = {'tensorboardX', 'tensorboard', 'mlflow'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_wrong_arguments_and_a_missing_tensorboardx_are_pybt_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(PyBTError, match="log_dir"):
        TensorBoard(a_file)
    with pytest.raises(PyBTError, match="log_dir"):
        TensorBoard(3)  # type: ignore[arg-type]
    with pytest.raises(PyBTError, match="flush_secs"):
        TensorBoard(tmp_path, flush_secs=-1)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(MissingDependencyError, match=r"pybt\[tensorboard\]"):
        TensorBoard(tmp_path)
