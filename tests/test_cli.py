"""Tests for the ``pybt`` command line, run in process through pybt.cli.main."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import pybt
from pybt.cli import main


def test_demo_prints_the_result_table(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("keras")
    pytest.importorskip("sklearn")
    assert main(["demo", "--population", "2", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 Keras MLPs" in out and "2 epochs each" in out

    accuracy = re.search(r"best validation accuracy\s+([0-9.]+)\s+\(member (\d)\)", out)
    assert accuracy is not None, out
    assert 0.0 < float(accuracy.group(1)) <= 1.0
    assert int(accuracy.group(2)) in (0, 1)

    assert re.search(r"time\s+\d+:\d\d \(\d+\.\d s\)", out), out

    table = out.split("winning schedule (the hyperparameters that trained them):\n", 1)[1].splitlines()
    header = next(line.split() for line in table if "member" in line.split())
    assert {"epochs", "member", "learning_rate", "batch_size"} <= set(header)
    rows = [line.split() for line in table if re.match(r"\s*\d+-\d+\s", line)]
    stretches = [dict(zip(header, row, strict=True)) for row in rows]
    # Two epochs in one step of two: one stretch, 0-2, on the winning member, with values
    # from the default space.
    assert len(stretches) == 1, table
    assert stretches[0]["epochs"] == "0-2"
    assert stretches[0]["member"] == accuracy.group(2)
    assert 1e-7 <= float(stretches[0]["learning_rate"]) <= 1e-1
    assert 8 <= int(stretches[0]["batch_size"]) <= 512
    assert "Next: pybt demo --run-dir" in out


def test_demo_keeps_a_run_folder_and_says_what_to_run_next(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("keras")
    pytest.importorskip("sklearn")
    run_dir = tmp_path / "demo"
    assert main(["demo", "--population", "3", "--epochs", "4", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"Next: pybt report {run_dir}" in out
    run = pybt.load_run(run_dir)
    assert run.finished and len(run.history.steps) == 3 * 2
    assert (run_dir / "best.keras").is_file()


def test_a_bad_argument_is_reported_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("keras")
    pytest.importorskip("sklearn")
    assert main(["demo", "--population", "1", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pybt: error: population_size")
    assert "received 1" in err
    assert "Traceback" not in err


def test_unknown_command_exits_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2
    assert "usage: pybt" in capsys.readouterr().err
