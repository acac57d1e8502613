"""The numbers a notebook records (:mod:`gantut.report`) when executed in the smoke profile,
for the claims tests (``tests/test_*claims*.py``).

Each notebook runs through the same cached executor as ``tests/test_notebooks.py`` (a copy in
``build/smoke``), so every claims test reads one execution per notebook and source version.
"""

import functools

from gantut.execute import NOTEBOOKS, ROOT, execute
from gantut.report import read_records

SMOKE_DIR = ROOT / "build" / "smoke"


@functools.cache
def records(stem: str) -> dict:
    """The recorded numbers of ``notebooks/<stem>.ipynb`` executed in the smoke profile."""
    out, _ = execute(NOTEBOOKS / f"{stem}.ipynb", SMOKE_DIR, "smoke", cell_timeout=300)
    return read_records(out)
