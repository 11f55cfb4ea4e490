"""The teaching notebooks: committed without outputs, and each runs top to bottom.

Each notebook is executed with nbclient in a fresh ipykernel, from an
ordinary synchronous test: pytest-trio's trio mode runs only ``async``
tests, and nbclient's ``execute()`` drives its own asyncio loop, which no
trio run is around to collide with. The kernel is ipykernel's ``python3``
kernelspec; jupyter_client starts it with this very interpreter (the
kernelspec says ``python``, which it replaces with ``sys.executable``), so a
fresh venv needs nothing registered by hand. A last, appended cell checks
exactly that, so a kernel from another Python (without this checkout
installed) fails here rather than in some import.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_the_three_lessons_are_there():
    names = [path.name for path in PATHS]
    for name in ("01_tour.ipynb", "02_embedded_vs_streaming.ipynb", "03_failures_and_resumption.ipynb"):
        assert name in names


@pytest.mark.parametrize("path", PATHS, ids=[path.stem for path in PATHS])
def test_notebook_is_committed_without_outputs(path: Path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for number, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {number} has outputs; strip them before committing"
            assert cell.execution_count is None, f"{path.name} cell {number} has an execution count"
    # A lesson is mostly prose: every code cell follows some explanation.
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds[0] == "markdown" and kinds.count("markdown") >= kinds.count("code") - 2
    assert json.loads(path.read_text(encoding="utf-8"))["nbformat"] == 4


@pytest.mark.parametrize("path", PATHS, ids=[path.stem for path in PATHS])
def test_notebook_runs_top_to_bottom(path: Path):
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    client = NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    [printed] = notebook.cells[-1].outputs
    assert printed.text.strip() == sys.executable
    # Every plotting cell drew a figure.
    for cell in notebook.cells:
        if cell.cell_type == "code" and re.search(r"\bplot_\w+\(", cell.source):
            assert any("image/png" in output.get("data", {}) for output in cell.outputs), cell.source
