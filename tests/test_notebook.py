"""Tests for notebooks/digits.ipynb: it runs headless, top to bottom, without an error.

The notebook is executed by nbclient in a fresh Jupyter kernel, with its parameters cell
(tagged ``parameters``) replaced by a smaller population, so it takes seconds; then its
outputs are checked for the story it tells: the trainer ran with those parameters, PBT
exploited, every plot was drawn, and the comparison with random search was printed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
NotebookClient = pytest.importorskip("nbclient").NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "digits.ipynb"
TEST_PARAMETERS = "POPULATION = 4\nEPOCHS = 8\nSEED = 1\n"


def text_of(cell: Any) -> str:
    """Everything a code cell printed or displayed as text."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    parameters = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1, "one cell tagged 'parameters' holds the size of the experiment"
    assert re.findall(r"^(\w+) =", parameters[0].source, re.M) == ["POPULATION", "EPOCHS", "SEED"]
    parameters[0].source = TEST_PARAMETERS
    for cell in notebook.cells:  # the stored outputs must not stand in for this run's
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None

    environment = {
        # The kernel inherits this process's environment: Keras on torch, one math thread.
        "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "torch"),
        "OMP_NUM_THREADS": "1",
    }
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        client = NotebookClient(
            notebook,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path_factory.mktemp("notebook"))}},
        )
        client.execute()  # raises CellExecutionError on the first cell that fails
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return notebook


def test_every_code_cell_ran_without_an_error(executed: Any) -> None:
    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    errors = [output for cell in code for output in cell.outputs if output["output_type"] == "error"]
    assert errors == []


def test_the_notebook_tells_the_story_with_the_test_parameters(executed: Any) -> None:
    text = "\n".join(text_of(cell) for cell in executed.cells if cell.cell_type == "code")
    assert "population 4, 8 epochs each" in text

    best = re.search(r"best member: (\d), validation accuracy ([.\d]+)", text)
    assert best is not None, text
    assert float(best.group(2)) > 0.85

    exploits = re.search(r"(\d+) exploits in the run:", text)
    assert exploits is not None and int(exploits.group(1)) >= 1, text
    copies = re.findall(r"epoch\s+(\d+): member (\d) copied member (\d)", text)
    assert len(copies) == int(exploits.group(1))
    assert all(epoch == "4" for epoch, _, _ in copies), "ReadyAfter(4) with 8 epochs: exploits at epoch 4"

    lineage = re.findall(r"epochs\s+(\d+)-(\d+)\s+trained on member (\d)", text)
    assert lineage and lineage[0][0] == "0" and lineage[-1][1] == "8" and lineage[-1][2] == best.group(1)

    comparison = re.search(r"best validation accuracy\s+([.\d]+)\s+([.\d]+)", text)
    assert comparison is not None, text
    assert float(comparison.group(1)) == float(best.group(2))
    assert re.search(r"population mean accuracy\s+[.\d]+\s+[.\d]+", text)


def test_every_plot_was_drawn(executed: Any) -> None:
    images = [
        output
        for cell in executed.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    # Scores, hyperparameters, schedule, lineage, and the random search's scores.
    assert len(images) == 5
