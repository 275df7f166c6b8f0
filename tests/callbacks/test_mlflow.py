"""The MLflow callback against a local SQLite tracking store, read back with ``MlflowClient``: a
parent run with the configuration, the report and the winner; a nested run per member with its
metrics, hyperparameters and exploits by epoch; KILLED / FAILED endings; resumes that log each
step once; and the user's own active run left alone."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("mlflow")

import mlflow
from mlflow import MlflowClient

import pybt
from pybt.callbacks import Callback, MLflow
from pybt.errors import MissingDependencyError, PyBTError, TrainingError
from pybt.history import RunHistory
from tests.callbacks import runs

# MLflow's own SQLAlchemy store trips a deprecation warning of SQLAlchemy's: not PyBT's to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")


def make_trainer(callbacks: list[Callback], **overrides: Any) -> pybt.Trainer:
    # No member fails unless a test asks for it, and another seed than the TensorBoard tests'.
    arguments = {"hyperparameters": {"lr": pybt.Uniform(0.0, 0.8)}, "seed": 5, **overrides}
    return runs.make_trainer(callbacks, **arguments)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One SQLite tracking store for the module (creating its tables takes seconds)."""
    folder = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # MLflow's Default experiment keeps its artifacts under the working folder
        MlflowClient(f"sqlite:///{folder}/mlflow.db").search_experiments()
    yield f"sqlite:///{folder}/mlflow.db", folder


def callback(store: tuple[str, Path], experiment: str, **options: Any) -> MLflow:
    uri, folder = store
    return MLflow(uri, experiment, artifact_location=(folder / experiment).as_uri(), **options)


def runs_of(client: MlflowClient, experiment: str) -> tuple[Any, list[Any]]:
    """The experiment's parent runs (newest first) and all its member runs."""
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    found = list(client.search_runs([experiment_id], order_by=["attributes.start_time DESC"]))
    parents = [run for run in found if "mlflow.parentRunId" not in run.data.tags]
    return parents, [run for run in found if "mlflow.parentRunId" in run.data.tags]


def history_of(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((metric.step, metric.value) for metric in client.get_metric_history(run_id, key))


def check_members(client: MlflowClient, members: list[Any], parent: str, history: RunHistory) -> None:
    """Each member's run holds every step of its records once, by epoch."""
    assert sorted(run.info.run_name for run in members) == [
        "member-00",
        "member-01",
        "member-02",
        "member-03",
    ]
    for run in members:
        member = int(run.data.tags["pybt.member"])
        assert run.data.tags["mlflow.parentRunId"] == parent
        steps = [s for s in history.steps if s.member == member]
        run_id = run.info.run_id
        assert history_of(client, run_id, "accuracy") == sorted(
            (s.epoch, s.metrics["accuracy"]) for s in steps
        )
        assert history_of(client, run_id, "train_loss") == sorted(
            (s.epoch, s.metrics["train_loss"]) for s in steps
        )
        lr = sorted((s.epoch, s.hyperparameters["lr"]) for s in steps)
        assert history_of(client, run_id, "hyperparameters/lr") == lr
        exploits = sorted((e.epoch, float(e.donor)) for e in history.exploits if e.member == member)
        assert history_of(client, run_id, "exploited_from") == exploits


def test_a_parent_run_for_the_population_and_a_nested_run_per_member(
    store: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = MlflowClient(store[0])
    trainer = make_trainer([callback(store, "population")], run_dir=tmp_path / "run")
    # The user's own active run, in the fluent API, is neither ended nor made a parent.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store[0])
    user_experiment = client.create_experiment("user", artifact_location=(store[1] / "user").as_uri())
    with mlflow.start_run(experiment_id=user_experiment) as mine:
        _, score = trainer.train()
        assert mlflow.active_run().info.run_id == mine.info.run_id
    assert mlflow.active_run() is None
    assert [run.info.run_id for run in client.search_runs([user_experiment])] == [mine.info.run_id]

    history = trainer.run_history
    assert history.exploits, "the run exercises exploits"
    [parent], members = runs_of(client, "population")
    assert parent.info.status == "FINISHED" and {run.info.status for run in members} == {"FINISHED"}
    assert parent.data.tags["pybt.version"] == pybt.__version__
    params = parent.data.params
    assert params["population_size"] == "4" and params["seed"] == str(trainer.seed)
    assert params["space.lr"] == repr(trainer.space["lr"]) and params["stopping_criteria"] == "StopAfter(8)"
    assert params["exploit_strategy"] == repr(trainer.exploit_strategy)
    assert (params["metric"], params["mode"]) == ("accuracy", "max")
    assert parent.data.metrics["best_score"] == pytest.approx(score)
    check_members(client, members, parent.info.run_id, history)
    for run in members:
        standing = history.standing(int(run.data.tags["pybt.member"]))
        assert history_of(client, run.info.run_id, "final/score") == [(standing.epoch, standing.score)]

    artifacts = {item.path for item in client.list_artifacts(parent.info.run_id)}
    assert {"history.csv", "report.html", "model"} <= artifacts
    assert [item.path for item in client.list_artifacts(parent.info.run_id, "model")] == ["model/best.npz"]
    downloaded = client.download_artifacts(parent.info.run_id, "model/best.npz", str(tmp_path))
    assert Path(downloaded).read_bytes() == (tmp_path / "run" / "best.npz").read_bytes()


def test_interrupted_runs_end_killed_and_a_resume_logs_the_whole_run_once(
    store: tuple[str, Path], tmp_path: Path
) -> None:
    client = MlflowClient(store[0])
    first = make_trainer([callback(store, "resumed", log_report=False)], run_dir=tmp_path / "run")
    runs.INTERRUPT["after"] = 4 * 5 + 2  # in the middle of the sixth round, after a cut at epoch 4
    try:
        with pytest.raises(KeyboardInterrupt):
            first.train()
    finally:
        runs.INTERRUPT["after"] = None
    [interrupted], members = runs_of(client, "resumed")
    assert interrupted.info.status == "KILLED" and {run.info.status for run in members} == {"KILLED"}
    assert "KeyboardInterrupt" in interrupted.data.tags["pybt.error"]

    second = make_trainer([callback(store, "resumed", log_report=False)], run_dir=tmp_path / "run")
    second.train()
    resumed, *_ = runs_of(client, "resumed")[0]
    assert resumed.info.status == "FINISHED" and "pybt.resumed_after_record" in resumed.data.tags
    members = [
        run
        for run in runs_of(client, "resumed")[1]
        if run.data.tags["mlflow.parentRunId"] == resumed.info.run_id
    ]
    check_members(client, members, resumed.info.run_id, pybt.load_run(tmp_path / "run").history)


def test_train_again_goes_on_in_the_same_runs_and_without_matplotlib_the_report_is_skipped(
    store: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    client = MlflowClient(store[0])
    trainer = make_trainer([callback(store, "again")])  # no run_dir: the winner is exported now
    runs.INTERRUPT["after"] = 4 * 3 + 1
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.train()
    finally:
        runs.INTERRUPT["after"] = None
    trainer.train()
    [parent], members = runs_of(client, "again")
    assert parent.info.status == "FINISHED" and {run.info.status for run in members} == {"FINISHED"}
    check_members(client, members, parent.info.run_id, trainer.run_history)
    artifacts = {item.path for item in client.list_artifacts(parent.info.run_id)}
    assert "report.html" not in artifacts and "history.csv" in artifacts
    assert parent.data.tags["pybt.report"].startswith("skipped: matplotlib is not installed")
    exported = client.download_artifacts(parent.info.run_id, "model/best.npz", str(tmp_path))
    best = trainer.run_history.best()
    assert best is not None and best.member == trainer.best_member
    assert np.load(exported)["w"][0] == pytest.approx(best.score)


def test_a_failed_run_ends_failed_with_its_error(store: tuple[str, Path]) -> None:
    client = MlflowClient(store[0])
    trainer = make_trainer([callback(store, "failed")], hyperparameters={"lr": pybt.Uniform(0.95, 1.0)})
    with pytest.raises(TrainingError):
        trainer.train()
    [parent], members = runs_of(client, "failed")
    assert parent.info.status == "FAILED" and {run.info.status for run in members} == {"FAILED"}
    assert "Every member failed" in parent.data.tags["pybt.error"]
    for run in members:
        assert history_of(client, run.info.run_id, "failed") == [(0, 1.0)]
        assert "lr too high" in run.data.tags["pybt.last_error"]


def test_wrong_arguments_and_a_missing_mlflow_are_pybt_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PyBTError, match="tracking_uri"):
        MLflow(tracking_uri=3)  # type: ignore[arg-type]
    with pytest.raises(PyBTError, match="experiment_name"):
        MLflow(experiment_name="")
    with pytest.raises(PyBTError, match="flush_secs"):
        MLflow(flush_secs=-1)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingDependencyError, match=r"pybt\[mlflow\]"):
        MLflow()
