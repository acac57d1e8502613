"""The notebooks: committed clean, parameterised, and each one runs in the smoke profile.

Executed copies go to ``build/smoke`` through the same executor as ``make book``
(``gantut.execute``), so later tests (and the book checks) can read them; a copy whose
notebook, profile and gantut sources are unchanged is reused.
"""

from pathlib import Path

import nbformat
import pytest

from gantut.execute import NOTEBOOKS, ROOT, execute

SMOKE_DIR = ROOT / "build" / "smoke"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))


def ids(paths):
    return [p.stem for p in paths]


def test_there_are_notebooks():
    assert ALL, "no notebooks found"


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_committed_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or cell.metadata.get("keep_output"):
            continue
        assert not cell.outputs, f"{path.name} cell {i} carries outputs: strip them"
        assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_parameters_cell(path: Path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    src = cells[0].source
    for name in ("profile", "seed", "device"):
        assert f"{name} =" in src, f"{path.name}: parameters cell lacks {name}"
    assert 'os.environ.get("GANTUT_PROFILE", "quick")' in src


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_runs_in_smoke_profile(path: Path):
    """papermill raises on the first failing cell; every cell has a 300 s timeout."""
    out, _ = execute(path, SMOKE_DIR, "smoke", cell_timeout=300)
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
