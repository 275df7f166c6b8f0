"""Reading a run folder changes nothing and trusts nothing: reports of a read-only folder (read
by a user who may not write to it), files written in place of planted links, spreadsheet
formulas defused, and names shown literally in figures."""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import pybt
from pybt.cli import main
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter

ROOT = Path(__file__).resolve().parents[2]
RUN_SCRIPT = """
import numpy as np, pybt
from pybt.model import FunctionModel
from pybt.policy.done import StopAfter
from pybt.policy.ready import ReadyAfter

def step(state, h):
    return {"w": state["w"] + h["lr"]}

def trainer(run_dir):
    return pybt.Trainer(
        FunctionModel(lambda seed: {"w": np.zeros(2)}, step, lambda state: -abs(3.0 - float(state["w"][0]))),
        population_size=3,
        hyperparameters={"lr": pybt.Uniform(0.0, 1.0), "kind": pybt.Choice(["=1+2", "@x", "plain"])},
        stopping_criteria=StopAfter(6), ready_strategy=ReadyAfter(2), run_dir=run_dir, seed=2, verbose=0,
    )
"""
# Packages a user without access to this checkout's virtual environment needs for the report.
READER_PACKAGES = ("numpy", "matplotlib", "mpl_toolkits", "PIL", "kiwisolver", "contourpy", "fontTools",
                   "cycler", "pyparsing", "dateutil", "packaging", "six")  # fmt: skip


def package_paths(name: str) -> list[Path]:
    spec = importlib.util.find_spec(name)
    if spec is None:
        return []
    paths = [Path(p) for p in spec.submodule_search_locations or [spec.origin]]
    libs = paths[0].parent / f"{'pillow' if name == 'PIL' else name}.libs"
    return paths + ([libs] if libs.is_dir() else [])


@pytest.fixture(scope="module")
def reader() -> Iterator[tuple[list[str], dict[str, str], Path, object]]:
    """How to run Python as a user who is not root, with PyBT and matplotlib importable."""
    pytest.importorskip("matplotlib")
    sandbox = Path(tempfile.mkdtemp(prefix="pybt-read-only-"))
    sandbox.chmod(0o755)
    try:
        if os.geteuid() != 0:
            yield [sys.executable], dict(os.environ), sandbox, None
            return
        # Root ignores file modes: read as "nobody", with a Python and packages it may read.
        python = shutil.which("python3", path="/usr/bin:/usr/local/bin")
        assert python, "a system python3 to run as another user"
        version = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
        )
        assert version.stdout.strip() == str(sys.version_info[:2]), "the system python3 matches this one"
        site = sandbox / "site"
        shutil.copytree(ROOT / "pybt", site / "pybt")
        for name in READER_PACKAGES:
            for path in package_paths(name):
                (shutil.copytree if path.is_dir() else shutil.copy)(path, site / path.name)
        for path in sandbox.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        (site).chmod(0o755)
        environment = {
            "PYTHONPATH": str(site),
            "MPLBACKEND": "Agg",
            "HOME": str(sandbox),
            "PATH": "/usr/bin:/bin",
        }

        def as_nobody() -> None:
            os.setgid(65534)
            os.setuid(65534)

        yield [python], environment, sandbox, as_nobody
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)


def test_reading_a_read_only_folder_as_another_user(reader: tuple) -> None:
    command, environment, sandbox, as_user = reader
    run_dir = sandbox / "run"
    namespace: dict = {}
    exec(RUN_SCRIPT, namespace)
    _, score = namespace["trainer"](str(run_dir)).train()
    out = sandbox / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    subprocess.run(["chmod", "-R", "a-w", str(run_dir)], check=True)
    before = {path: path.stat().st_mtime_ns for path in run_dir.rglob("*")}
    script = (
        RUN_SCRIPT
        + f"""
import json, sys
from pybt.cli import main
run_dir, out = {str(run_dir)!r}, {str(out)!r}
assert main(["report", run_dir, "--out", out + "/report.html"]) == 0
assert main(["report", run_dir, "--csv", "--out", out + "/history.csv"]) == 0
run = pybt.store.load_run(run_dir)
_, again = trainer(run_dir).train()          # a finished run: its result, read, not trained
replayed, metrics = pybt.replay(run_dir, trainer(None).model)
print(json.dumps({{"uid": __import__("os").getuid(), "steps": len(run.history.steps), "again": again,
                   "finished": run.finished}}))
"""
    )
    result = subprocess.run(
        [*command, "-c", script],
        env=environment,
        preexec_fn=as_user,
        capture_output=True,
        text=True,
        timeout=300,
    )
    subprocess.run(["chmod", "-R", "u+w", str(run_dir)], check=True)
    assert result.returncode == 0, result.stderr
    report = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    assert report["uid"] != 0 and report["finished"] and report["again"] == score and report["steps"] == 18
    assert (out / "report.html").stat().st_size > 10_000 and (out / "history.csv").is_file()
    assert {path: path.stat().st_mtime_ns for path in run_dir.rglob("*")} == before, "nothing in it changed"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    namespace: dict = {}
    exec(RUN_SCRIPT, namespace)
    run_dir = tmp_path_factory.mktemp("safety") / "run"
    namespace["trainer"](str(run_dir)).train()
    return run_dir


@pytest.mark.parametrize("flag", [[], ["--csv"]], ids=["html", "csv"])
def test_a_link_planted_at_the_report_is_replaced_not_followed(
    run_folder: Path, tmp_path: Path, flag: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not flag:
        pytest.importorskip("matplotlib")
        # Where the page goes is the point, not its figures (the test above draws them).
        monkeypatch.setattr("pybt.report.page.figure_png", lambda *args, **kwargs: b"")
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    name = "history.csv" if flag else "report.html"
    link = run_folder / name
    link.unlink(missing_ok=True)
    link.symlink_to(target)
    assert main(["report", str(run_folder), *flag]) == 0
    assert target.read_text() == "keep me"
    assert not link.is_symlink() and link.stat().st_size > 0


def test_spreadsheet_formulas_are_quoted_in_the_csv(run_folder: Path) -> None:
    assert main(["report", str(run_folder), "--csv"]) == 0
    with (run_folder / "history.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    kinds = {row["hp_kind"] for row in rows}
    assert kinds <= {"'=1+2", "'@x", "plain"} and "'=1+2" in kinds
    assert all(not cell.startswith(("=", "+", "@")) for row in rows for cell in row.values())
    assert any(float(row["score"]) < 0 for row in rows), "negative numbers stay numbers"


def test_names_with_dollar_signs_are_drawn_literally(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    trainer = pybt.Trainer(
        FunctionModel(lambda seed: 0.0, lambda s, h: s + h[r"$\alpha$"], lambda s: {r"$x_{1}$ score": s}),
        population_size=3,
        hyperparameters={r"$\alpha$": pybt.Uniform(0, 1), "act": pybt.Choice([r"$\beta$", "$5 off", "y"])},
        stopping_criteria=StopAfter(4),
        ready_strategy=ReadyAfter(2),
        mode="max",
        run_dir=str(tmp_path / "run"),
        seed=0,
        verbose=0,
    )
    trainer.train()
    from pybt.report import plot_metrics

    figures = [trainer.plot(what) for what in ("scores", "hyperparameters", "lineage", "schedule")]
    for figure in [*figures, plot_metrics(trainer.run_history)]:
        figure.canvas.draw()  # mathtext would fail here on "$5 off" or "$x_{1}$ score"
        texts = [t.get_text() for t in figure.findobj(lambda a: hasattr(a, "get_text"))]
        assert not any("$" in text and r"\$" not in text for text in texts if text), texts
    assert main(["report", str(tmp_path / "run")]) == 0
    assert np.isfinite(trainer.run_history.best().score)
