"""``pybt report RUN_DIR``: an HTML page or a CSV from a run folder, and clear errors; and what
importing the report loads (nothing of it with ``import pybt``, no matplotlib until a figure).

The CSV and the import checks need NumPy only; the page needs matplotlib and skips without it.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pybt
from pybt.cli import main
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter
from pybt.store import load_run


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
    # The metric and mode the run resolved are shown with the configuration.
    history = load_run(run_dir).history
    assert f"<td>mode</td><td>{history.mode}</td>" in page
    captured = capsys.readouterr()
    assert "report.html" in captured.out
    assert "drawing lineage" in captured.err  # progress for a command that takes seconds


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
