"""``MLflow(tracking_uri, experiment_name)``: a run as MLflow runs, one for the population and one
nested run per member, seen with ``mlflow ui``.

The population's run holds the configuration as params (population size, space, policies,
seed, ...), the tag ``pybt.version``, and at the end ``best_score`` / ``best_member`` /
``best_epoch`` and the artifacts: ``history.csv``, ``report.html`` (when matplotlib is installed;
otherwise skipped with a logged note and a ``pybt.report`` tag) and the winner in its
framework's format under ``model/`` (the run folder's ``best.*`` when there is a ``run_dir``,
otherwise ``trainer.export``). Each member's run (``member-00``, ...; tag ``mlflow.parentRunId``)
holds, with step = the member's epoch, every metric of each step, every numeric hyperparameter
as ``hyperparameters/<name>`` (so its schedule is a chart), ``exploited_from`` (the donor's id,
at the epoch the member took over), ``failed`` (1 at a failed step) and, at the end,
``final/score`` (where it stands).

Runs end FINISHED, or KILLED (interrupted) / FAILED (an error, in the tag ``pybt.error``) when
``train()`` ends with an exception. Calling ``train()`` again goes on in the same runs; a new
process resuming a run folder starts new runs that first log the records kept in the journal,
so each parent run tells the whole run once (steps redone after the newest checkpoint are not
logged twice). Everything goes through an ``MlflowClient`` with explicit run ids: the fluent
API's active run (yours, if you started one) is left alone. Values wait in memory and are sent
in batches at every checkpoint cut, at the end, and otherwise every ``flush_secs`` seconds.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pybt._imports import require
from pybt._validate import check_real, is_real
from pybt._version import __version__
from pybt.callbacks.base import Callback, TrainResult
from pybt.errors import MissingDependencyError, describe_exception, invalid_argument
from pybt.history import ExploitRecord, StepRecord
from pybt.store.run_store import EXPORT_NAME

if TYPE_CHECKING:
    from pybt.history import FailureRecord, Record
    from pybt.trainer import Trainer

logger = logging.getLogger(__name__)

EXTRA = "mlflow"
_BATCH = 1000  # MLflow's most metrics per log_batch call
_PARAMS_BATCH = 100  # and its most params or tags per call
_VALUE_LIMIT = 6000  # the longest param value MLflow takes


@dataclass
class _Pending:
    """A member's metrics ``(key, value, timestamp_ms, step)`` and tags not yet sent."""

    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


class MLflow(Callback):
    """Logs a run to MLflow: a parent run for the population, a nested run per member.

    ``tracking_uri``: where (``None``: MLflow's own default, e.g. ``MLFLOW_TRACKING_URI``);
    ``experiment_name``: created if missing (``None``: ``MLFLOW_EXPERIMENT_NAME``, else MLflow's
    Default experiment); ``run_name``: the parent run's name (``None``: MLflow picks one);
    ``artifact_location``: for an experiment this creates; ``log_report`` / ``log_model``: the
    HTML report and the winner as artifacts; ``flush_secs``: the longest wait between batches.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str | None = None,
        *,
        run_name: str | None = None,
        artifact_location: str | None = None,
        log_report: bool = True,
        log_model: bool = True,
        flush_secs: float = 5.0,
    ) -> None:
        for name, value, example in (
            ("tracking_uri", tracking_uri, "'sqlite:///mlflow.db' or 'http://localhost:5000'"),
            ("experiment_name", experiment_name, "'pbt-digits'"),
            ("run_name", run_name, "'pbt-digits-1'"),
            ("artifact_location", artifact_location, "'file:///data/mlartifacts'"),
        ):
            if value is not None and not (isinstance(value, str) and value):
                raise invalid_argument(name, value, "a non-empty string or None", f"e.g. {example}.")
        self.tracking_uri, self.experiment_name = tracking_uri, experiment_name
        self.run_name, self.artifact_location = run_name, artifact_location
        self.log_report, self.log_model = bool(log_report), bool(log_model)
        self.flush_secs = check_real("flush_secs", flush_secs, 0.0)
        require("mlflow", EXTRA)
        tracking = require("mlflow.tracking", EXTRA, "mlflow")
        self._entities = require("mlflow.entities", EXTRA, "mlflow")
        self._client = tracking.MlflowClient(tracking_uri=tracking_uri)
        self._trainer: Trainer | None = None
        self.parent_run_id: str | None = None
        self.member_run_ids: dict[int, str] = {}
        self._experiment_id = ""
        self._pending: defaultdict[int, _Pending] = defaultdict(_Pending)
        self._objective_logged = False
        self._last_flush = time.monotonic()

    def __repr__(self) -> str:
        return f"MLflow(tracking_uri={self.tracking_uri!r}, experiment_name={self.experiment_name!r})"

    # ---- hooks ----------------------------------------------------------------------------------
    def on_train_begin(self, trainer: Trainer) -> None:
        client = self._client
        if self.parent_run_id is not None and self._trainer is trainer:  # train() again: same runs
            for run_id in (self.parent_run_id, *self.member_run_ids.values()):
                client.update_run(run_id, status="RUNNING")
            return
        self._trainer, self.member_run_ids, self._pending = trainer, {}, defaultdict(_Pending)
        self._experiment_id = self._experiment()
        tags = {"pybt.version": __version__, "pybt.kind": "population"}
        if trainer.run_dir is not None:
            tags["pybt.run_dir"] = str(Path(trainer.run_dir).resolve())
        history = trainer.run_history
        if len(history):
            tags["pybt.resumed_after_record"] = str(history.last_sequence)
        run = client.create_run(self._experiment_id, tags=tags, run_name=self.run_name)
        self.parent_run_id = run.info.run_id
        self._log_params(run_config(trainer))
        self._objective_logged = False
        # Records reloaded from a run folder go first, so this parent run tells the whole run.
        for record in history.records():
            self._note(trainer, record)
        self.flush()

    def on_step(self, trainer: Trainer, record: StepRecord) -> None:
        self._note(trainer, record)
        if time.monotonic() - self._last_flush >= self.flush_secs:
            self.flush()

    def on_exploit(self, trainer: Trainer, record: ExploitRecord) -> None:
        self._note(trainer, record)

    def on_failure(self, trainer: Trainer, record: FailureRecord) -> None:
        self._note(trainer, record)

    def on_checkpoint(self, trainer: Trainer, sequence: int) -> None:
        self.flush()

    def on_train_end(self, trainer: Trainer, result: TrainResult | None) -> None:
        if self.parent_run_id is None:
            return
        if result is None:
            # Called from train()'s exception handler: the exception on its way out says why.
            error = sys.exc_info()[1]
            self.flush()
            if error is not None:
                why = describe_exception(error)[:_VALUE_LIMIT]
                self._client.set_tag(self.parent_run_id, "pybt.error", why)
            stopped = error is None or isinstance(error, (KeyboardInterrupt, SystemExit))
            self._terminate("KILLED" if stopped else "FAILED")
            return
        history, now = trainer.run_history, _now_ms()
        for member in history.members:
            standing = history.standing(member)
            if standing is not None:
                self._metric(member, "final/score", standing.score, standing.epoch, now)
        self.flush()
        Metric = self._entities.Metric
        best = [("best_score", result.score), ("best_member", result.member), ("best_epoch", result.epoch)]
        self._client.log_batch(
            self.parent_run_id, metrics=[Metric(key, float(value), now, result.epoch) for key, value in best]
        )
        with tempfile.TemporaryDirectory(prefix="pybt-mlflow-") as folder:
            self._log_artifacts(trainer, result, Path(folder))
        self._terminate("FINISHED")

    # ---- logging --------------------------------------------------------------------------------
    def flush(self) -> None:
        """Send every member's waiting metrics and tags, one batch per member."""
        Metric, RunTag = self._entities.Metric, self._entities.RunTag
        for member, pending in self._pending.items():
            if not pending.metrics and not pending.tags:
                continue
            run_id = self._member_run(member)
            metrics = [Metric(*values) for values in pending.metrics]
            tags = [RunTag(key, value) for key, value in pending.tags.items()]
            for start in range(0, max(len(metrics), 1), _BATCH):
                self._client.log_batch(run_id, metrics=metrics[start : start + _BATCH], tags=tags)
                tags = []
            pending.metrics, pending.tags = [], {}
        self._last_flush = time.monotonic()

    def _note(self, trainer: Trainer, record: Record) -> None:
        now = _now_ms()
        if isinstance(record, StepRecord):
            if not self._objective_logged and trainer.metric is not None:
                # The scored metric and its direction are known once the first step is scored.
                self._log_params({"metric": trainer.metric, "mode": trainer.mode})
                self._objective_logged = True
            for name, value in record.metrics.items():
                self._metric(record.member, _key(name), value, record.epoch, now)
            for name, value in record.hyperparameters.items():
                if is_real(value):
                    self._metric(record.member, f"hyperparameters/{_key(name)}", value, record.epoch, now)
        elif isinstance(record, ExploitRecord):
            self._metric(record.member, "exploited_from", record.donor, record.epoch, now)
        else:
            self._metric(record.member, "failed", 1.0, record.epoch, now)
            self._pending[record.member].tags["pybt.last_error"] = record.error[:_VALUE_LIMIT]

    def _metric(self, member: int, key: str, value: float, step: int, now: int) -> None:
        self._pending[member].metrics.append((key, float(value), now, int(step)))

    def _member_run(self, member: int) -> str:
        run_id = self.member_run_ids.get(member)
        if run_id is None:
            assert self._trainer is not None and self.parent_run_id is not None
            width = max(2, len(str(max(self._trainer.population_size - 1, 0))))
            tags = {
                "mlflow.parentRunId": self.parent_run_id,
                "pybt.kind": "member",
                "pybt.member": str(member),
                "pybt.version": __version__,
            }
            name = f"member-{member:0{width}d}"
            run = self._client.create_run(self._experiment_id, tags=tags, run_name=name)
            run_id = self.member_run_ids[member] = run.info.run_id
        return run_id

    def _log_params(self, values: dict[str, Any]) -> None:
        assert self.parent_run_id is not None
        Param = self._entities.Param
        params = [Param(key, str(value)[:_VALUE_LIMIT]) for key, value in values.items()]
        for start in range(0, len(params), _PARAMS_BATCH):
            self._client.log_batch(self.parent_run_id, params=params[start : start + _PARAMS_BATCH])

    def _experiment(self) -> str:
        name = self.experiment_name or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        if not name:
            return os.environ.get("MLFLOW_EXPERIMENT_ID") or "0"  # "0": MLflow's Default experiment
        found = self._client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        return self._client.create_experiment(name, artifact_location=self.artifact_location)

    def _terminate(self, status: str) -> None:
        for run_id in (*self.member_run_ids.values(), self.parent_run_id):
            self._client.set_terminated(run_id, status=status)

    # ---- artifacts ------------------------------------------------------------------------------
    def _log_artifacts(self, trainer: Trainer, result: TrainResult, folder: Path) -> None:
        # The report is a lower layer than the callbacks: imported here, when a run has ended.
        from pybt.report import write_csv, write_html

        parent = self.parent_run_id
        self._client.log_artifact(parent, str(write_csv(folder / "history.csv", trainer.run_history)))
        if self.log_report:
            try:
                title = f"PyBT run {self.run_name or parent}"
                config = run_config(trainer)
                page = write_html(folder / "report.html", trainer.run_history, config, title=title)
            except MissingDependencyError as error:
                self._skipped("report", str(error))
            else:
                self._client.log_artifact(parent, str(page))
        if self.log_model:
            model = self._winner_file(trainer, result, folder)
            if model is not None:
                self._client.log_artifact(parent, str(model), artifact_path="model")

    def _winner_file(self, trainer: Trainer, result: TrainResult, folder: Path) -> Path | None:
        """The winner in its framework's format: the run folder's export, or one made now."""
        if trainer.run_dir is not None:
            exported = sorted(Path(trainer.run_dir).glob(f"{EXPORT_NAME}.*"))
            if exported:
                return exported[0]
        standing = trainer.run_history.standing(result.member)
        if standing is None or (standing.epoch, standing.score) != (result.epoch, result.score):
            self._skipped(
                "model", "the winner is a state no member holds now (result='best_ever'); a run_dir keeps it"
            )
            return None
        try:
            return trainer.export(folder / EXPORT_NAME, member=result.member)
        except Exception as error:  # an executor closed with its members: the run's result still stands
            self._skipped("model", f"exporting the winner failed: {describe_exception(error)}")
            return None

    def _skipped(self, what: str, why: str) -> None:
        logger.warning("MLflow: no %s artifact: %s", what, why)
        self._client.set_tag(self.parent_run_id, f"pybt.{what}", f"skipped: {why}"[:_VALUE_LIMIT])


def run_config(trainer: Trainer) -> dict[str, Any]:
    """The run's configuration as short texts (MLflow params, the report's table)."""
    model = type(trainer.model)
    config: dict[str, Any] = {
        "model": f"{model.__module__}.{model.__qualname__}",
        "population_size": trainer.population_size,
        "epochs_per_step": trainer.epochs_per_step,
        "stopping_criteria": _text(trainer.stopping_criteria),
        "ready_strategy": _text(trainer.ready_strategy),
        "exploit_strategy": _text(trainer.exploit_strategy),
        "explore_strategy": _text(trainer.explore_strategy),
        "executor": _text(trainer.executor),
        "result": trainer.result,
        "seed": trainer.seed,
    }
    if trainer.run_dir is not None:
        config["run_dir"] = str(trainer.run_dir)
    config.update({f"space.{name}": _text(domain) for name, domain in trainer.space.items()})
    return config


def _text(value: Any) -> str:
    """``repr`` where it says something (``StopAfter(20)``), the type's name where it is an address."""
    text = repr(value)
    return type(value).__name__ if " object at 0x" in text else text


def _key(name: str) -> str:
    """A metric name MLflow takes: letters, digits, ``_ - . space``; anything else becomes ``_``."""
    key = re.sub(r"[^\w.\- ]", "_", str(name))
    return key if key.strip(".") else "_" + key


def _now_ms() -> int:
    return int(time.time() * 1000)
