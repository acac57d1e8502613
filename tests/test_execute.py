"""The notebook executor: progress within a notebook, and a kernel that starts quietly."""

import io
import json

import nbformat

from gantut.execute import Progress, cell_times, execute, time_left


def _cells(*kinds_and_ids):
    return [{"cell_type": kind, "id": cid} for kind, cid in kinds_and_ids]


CELLS = _cells(("markdown", "a"), ("code", "b"), ("code", "c"), ("code", "d"))
LAST = {"a": 0.0, "b": 2.0, "c": 10.0, "d": 5.0}


def test_time_left_counts_the_cells_still_to_run():
    assert time_left(CELLS, -1, 0.0, LAST) == 17.0          # nothing ran yet
    assert time_left(CELLS, 1, 4.0, LAST) == 6.0 + 5.0      # c has run 4 of its 10 s
    assert time_left(CELLS, 1, 30.0, LAST) == 5.0           # c overruns: never below the rest
    assert time_left(CELLS, 3, 0.0, LAST) == 0.0            # all done
    assert time_left(CELLS, 1, 0.0, {}) is None             # no last run: no estimate
    assert time_left(_cells(("code", "new")), -1, 0.0, LAST) == 0.0  # a new cell: unknown, 0


def test_cell_times_of_an_executed_copy(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1"),
                                         nbformat.v4.new_code_cell("2")])
    nb.cells[0].metadata["papermill"] = {"duration": 1.5}
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    assert cell_times(path) == {nb.cells[0].id: 1.5}
    assert cell_times(tmp_path / "missing.ipynb") == {}
    (tmp_path / "bad.ipynb").write_text("{not json")
    assert cell_times(tmp_path / "bad.ipynb") == {}


def test_progress_line(tmp_path):
    previous = tmp_path / "n.ipynb"
    previous.write_text(json.dumps({"cells": [
        {**c, "metadata": {"papermill": {"duration": LAST[c["id"]]}}} for c in CELLS]}))
    out = io.StringIO()
    with Progress("n.ipynb", previous, stream=out) as progress:
        progress(-1, CELLS)
        assert "cell 0/3" in progress.line() and "about 17 s left" in progress.line()
        progress(2, CELLS)
        assert "cell 2/3" in progress.line() and "about 5 s left" in progress.line()
    assert out.getvalue().endswith("\r\x1b[K")  # the status line is cleared for the log line
    with Progress("n.ipynb", tmp_path / "none.ipynb", stream=io.StringIO()) as progress:
        progress(-1, CELLS)
        assert progress.line().endswith(" s") and "left" not in progress.line()


def test_execute_reports_each_cell_and_the_kernel_starts_quietly(tmp_path, capfd):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("profile = 'quick'\nseed = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_markdown_cell("text"),
        nbformat.v4.new_code_cell("print(profile, seed)"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    calls = []
    out, secs = execute(tmp_path / "tiny.ipynb", tmp_path / "out", "smoke",
                        on_cell=lambda i, cells: calls.append((i, len(cells))))
    # papermill adds a cell with the injected parameters after the parameters cell
    assert calls == [(-1, 4), (0, 4), (1, 4), (2, 4), (3, 4)]
    assert nbformat.read(out, as_version=4).cells[-1].outputs[0].text == "smoke 0\n"
    err = capfd.readouterr().err  # the kernel's own log goes to this process's stderr
    assert "without encryption" not in err and "KeyboardInterrupt" not in err
