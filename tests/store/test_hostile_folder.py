"""A run folder is data, never code or paths: whatever is written into it, PyBT reads values,
checks them, and refuses what it did not write — with a PyBTError naming the folder."""

from __future__ import annotations

import io
import resource
import sqlite3
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import pybt
from pybt.store import JOURNAL_NAME, DamagedRunFolderError, load_run
from pybt.store.files import load_npz, npz_bytes

sys.path.insert(0, str(Path(__file__).parent))
from resumable_run import make_trainer


@pytest.fixture()
def finished(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    make_trainer(str(run_dir)).train()
    return run_dir


def edit(run_dir: Path, sql: str, *parameters: object) -> None:
    with sqlite3.connect(run_dir / JOURNAL_NAME) as db:
        db.execute(sql, parameters)


def newest_checkpoint(run_dir: Path) -> tuple[int, int, str]:
    with sqlite3.connect(run_dir / JOURNAL_NAME) as db:
        cut = db.execute("SELECT MAX(id) FROM cuts").fetchone()[0]
        member, path = db.execute(
            "SELECT member, path FROM checkpoints WHERE cut = ? LIMIT 1", (cut,)
        ).fetchone()
    return cut, member, path


@pytest.mark.parametrize(
    ("sql", "said"),
    [
        ("UPDATE steps SET member = 'a' WHERE sequence = 1", "not an integer"),
        ("UPDATE steps SET member = 99 WHERE sequence = 1", "not a member of this run"),
        ("UPDATE steps SET hyperparameters = '{not json' WHERE sequence = 1", "not valid JSON"),
        ("UPDATE steps SET metrics = '[1, 2]' WHERE sequence = 1", "not a dict"),
        (
            "UPDATE exploits SET reason = 'because' WHERE sequence = (SELECT MIN(sequence) FROM exploits)",
            "not 'exploit' or 'failure'",
        ),
        ("UPDATE run SET value = '\"lots\"' WHERE key = 'config'", "configuration is not a dict"),
        ("UPDATE cuts SET trainer_state = '{\"rng\": 1}' WHERE id = (SELECT MAX(id) FROM cuts)", "lacks"),
    ],
)
def test_journal_values_are_checked_before_use(finished: Path, sql: str, said: str) -> None:
    edit(finished, sql)
    with pytest.raises(DamagedRunFolderError) as error:
        make_trainer(str(finished)).train()
    assert said in str(error.value) and str(finished / JOURNAL_NAME) in str(error.value)
    assert isinstance(error.value, pybt.PyBTError)


def test_flipped_bytes_in_the_journal_are_named(finished: Path) -> None:
    journal = finished / JOURNAL_NAME
    data = bytearray(journal.read_bytes())
    for offset in range(100, len(data), 509):  # damage every page, the header left alone
        data[offset] ^= 0xFF
    journal.write_bytes(bytes(data))
    with pytest.raises(pybt.PyBTError, match=r"journal\.sqlite"):
        load_run(finished)


def test_a_checkpoint_path_outside_the_folder_is_refused(finished: Path, tmp_path: Path) -> None:
    outside = tmp_path / "x.npz"
    outside.write_bytes(npz_bytes({"theta": np.zeros(2)}))
    cut, member, _ = newest_checkpoint(finished)
    edit(finished, "UPDATE checkpoints SET path = '../../x.npz' WHERE cut = ? AND member = ?", cut, member)
    edit(finished, "DELETE FROM run WHERE key = 'finished'")  # so the trainer must read the cut
    with pytest.raises(DamagedRunFolderError, match="outside its folder"):
        make_trainer(str(finished)).train()


def npz_bomb(size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("theta.npy", "w", force_zip64=True) as entry:
            np.lib.format.write_array_header_1_0(
                entry, {"descr": "<f8", "fortran_order": False, "shape": (size,)}
            )
            chunk = bytes(2**20)
            for _ in range(size * 8 // len(chunk)):
                entry.write(chunk)
    return buffer.getvalue()


def npy_header_lie(size: int) -> bytes:
    """An uncompressed archive whose array header claims ``size`` floats and holds 2."""
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {"descr": "<f8", "fortran_order": False, "shape": (size,)})
    npy.write(np.zeros(2).tobytes())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("theta.npy", npy.getvalue())
    return buffer.getvalue()


def test_npz_that_would_inflate_are_refused_before_they_are_read() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert load_npz(npz_bomb(2**27)) is None  # 1 GiB of zeros in ~1 MiB
    assert load_npz(npy_header_lie(2**40)) is None  # 8 TiB claimed
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200, f"refusing them must not allocate what they claim ({grown_mib:.0f} MiB)"
    assert load_npz(npz_bytes({"theta": np.arange(3.0)}))["theta"].tolist() == [0.0, 1.0, 2.0]


def test_a_bomb_in_place_of_the_newest_checkpoint_is_passed_over(finished: Path) -> None:
    import hashlib

    _, _, path = newest_checkpoint(finished)
    bomb = npz_bomb(2**25)
    (finished / "checkpoints" / path).write_bytes(bomb)
    digest = hashlib.sha256(bomb).hexdigest()
    edit(finished, "UPDATE checkpoints SET sha256 = ? WHERE path = ?", digest, path)
    edit(finished, "DELETE FROM run WHERE key = 'finished'")
    expected = make_trainer(None)
    _, expected_score = expected.train()
    _, score = make_trainer(str(finished)).train()  # falls back to the cut before
    assert score == expected_score


def test_int_keyed_dict_values_come_back_as_they_went(tmp_path: Path) -> None:
    options = [{1: "relu", 2: "tanh"}, {1: "tanh", 2: (3, 4)}]
    trainer = make_trainer(str(tmp_path / "run"))

    def with_layers() -> pybt.Trainer:
        space = {"h0": pybt.Uniform(0, 1), "h1": pybt.Uniform(0, 1), "layers": pybt.Choice(options)}
        return pybt.Trainer(
            trainer.model,
            population_size=3,
            hyperparameters=space,
            run_dir=str(tmp_path / "other"),
            stopping_criteria=trainer.stopping_criteria,
            ready_strategy=trainer.ready_strategy,
            seed=3,
            verbose=0,
        )

    again = with_layers()
    again.train()
    stored = load_run(tmp_path / "other").history
    assert all(step.hyperparameters["layers"] in options for step in stored.steps)
    resumed = with_layers()
    assert resumed.train()[1] == again.run_history.best().score


def test_values_a_journal_cannot_keep_are_refused_before_training(tmp_path: Path) -> None:
    base = make_trainer(None)
    with pytest.raises(pybt.PyBTError, match=r"hyperparameters\['kind'\]"):
        pybt.Trainer(
            base.model,
            population_size=2,
            hyperparameters={"h0": 0.5, "h1": 0.5, "kind": pybt.Choice([{1, 2}, {3}])},
            run_dir=str(tmp_path / "run"),
            verbose=0,
        )
    assert not (tmp_path / "run").exists(), "nothing was written"
