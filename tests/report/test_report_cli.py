"""``pybt report RUN_DIR``: an HTML page or a CSV from a run folder, and clear errors; and what
importing the report loads (nothing of it with ``import pybt``, no matplotlib until a figure).

The CSV and the import checks need NumPy only; the page needs matplotlib and skips without it.
"""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pybt
from pybt.callbacks import Callback
from pybt.cli import main
from pybt.history import RunHistory
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.report import render_html
from pybt.report.header import format_time
from pybt.store import load_run


class ReportWhileRunning(Callback):
    """Runs ``pybt report`` at the first checkpoint, while the trainer holds the folder."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.code = folder, None

    def on_checkpoint(self, trainer: pybt.Trainer, sequence: int) -> None:
        if self.code is None and importlib.util.find_spec("matplotlib") is not None:
            # What the page says is the point here, not its figures: they are named, not drawn.
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr("pybt.report.page.figure_png", lambda *args, **kwargs: b"")
                self.code = main(["report", str(self.folder), "--out", str(self.folder / "mid-run.html")])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    trainer = pybt.Trainer(
        FunctionModel(
            lambda seed: np.zeros(2), lambda s, h: s + h["rate"], lambda s: -abs(float(s.sum()) - 3)
        ),
        population_size=4,
        hyperparameters={"rate": pybt.LogUniform(0.01, 1.0)},
        stopping_criteria=StopAfter(8),
        ready_strategy=ReadyAfter(2),
        run_dir=str(folder),
        seed=2,
        verbose=0,
        callbacks=[ReportWhileRunning(folder)],
    )
    trainer.train()
    return folder


def test_report_writes_one_self_contained_page(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    assert main(["report", str(run_dir)]) == 0
    page = (run_dir / "report.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == 4
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert f"<h1>PyBT run · {run_dir.name}</h1>" in page and "run run" not in page
    # The metric and mode the run resolved are shown with the configuration, at the top.
    run = load_run(run_dir)
    assert f"<td>mode</td><td>{run.history.mode}</td>" in page
    assert "<td>space</td><td>rate: LogUniform(0.01, 1)</td>" in page
    assert page.index("<h2>Configuration</h2>") < page.index("<img")
    # How the run stands: finished, when it started and last recorded, which PyBT recorded it.
    assert '<span class="badge finished">finished</span>' in page
    assert run.created_at is not None and run.updated_at is not None and run.version
    assert f"started {format_time(run.created_at)}" in page
    assert f"last record {format_time(run.updated_at, run.created_at)}" in page
    assert f"recorded by PyBT {run.version}" in page
    # Only the score was recorded: no figure of every metric that would repeat the scores.
    assert "Every metric" not in page
    captured = capsys.readouterr()
    assert "report.html" in captured.out
    assert "drawing lineage" in captured.err  # progress for a command that takes seconds


def test_a_report_taken_while_the_run_trains_says_so(run_dir: Path) -> None:
    pytest.importorskip("matplotlib")
    page = (run_dir / "mid-run.html").read_text()
    assert page.count("<img") == 4  # written while the run trained, its figures in place
    assert '<span class="badge running">running</span>' in page
    assert "was still training when this report was made" in page
    header = page[page.index("<main>") : page.index("<h2>")]
    assert "finished" not in header and "badge finished" not in page


def test_an_interrupted_run_says_it_stopped(tmp_path: Path) -> None:
    def step(state: np.ndarray, hyperparameters: dict) -> np.ndarray:
        if state[0] >= 2:
            raise KeyboardInterrupt  # what Ctrl-C does part-way through a run
        return state + 1

    trainer = pybt.Trainer(
        FunctionModel(lambda seed: np.zeros(1), step, lambda s: {"accuracy": float(s[0]) / 8}),
        population_size=2,
        hyperparameters={"rate": pybt.LogUniform(0.01, 1.0)},
        stopping_criteria=StopAfter(8),
        ready_strategy=ReadyAfter(2),
        run_dir=str(tmp_path / "run"),
        seed=0,
        verbose=0,
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    run = load_run(tmp_path / "run")
    assert run.status == "interrupted"
    # The page of the run's header alone (no figures to draw: the CLI's tests above draw them).
    page = render_html(RunHistory(), status=run.status, created_at=run.created_at, version=run.version)
    assert '<span class="badge interrupted">interrupted</span>' in page
    assert "stopped before it finished" in page


def test_report_csv_has_a_row_per_member_step(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "history.csv"
    assert main(["report", str(run_dir), "--csv", "--out", str(out)]) == 0
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 * 8
    assert {"member", "epoch", "score", "hp_rate"} <= set(rows[0])


def test_report_of_a_folder_without_a_journal_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "nothing-here")]) == 2
    error = capsys.readouterr().err
    assert "run_dir" in error and "journal.sqlite" in error and "Traceback" not in error


def test_import_pybt_loads_no_report_and_the_report_needs_no_matplotlib() -> None:
    # A fresh interpreter: this one has imported the report and matplotlib already.
    script = (
        "import sys\n"
        "import pybt\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'pandas') or 'report' in m]\n"
        "assert not loaded, loaded\n"
        "sys.modules['matplotlib'] = None  # what an environment without matplotlib looks like\n"
        "import pybt.report\n"
        "from pybt.history import RunHistory\n"
        "assert 'Best member' in pybt.report.summary(RunHistory())\n"
        "try:\n"
        "    pybt.report.plot_scores(RunHistory())\n"
        "except pybt.PyBTError as error:\n"
        "    assert 'pybt[plot]' in str(error), error\n"
        "else:\n"
        "    raise AssertionError('plot_scores drew without matplotlib')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
