"""Record the numbers a notebook measures: for its prose and for the tests.

``record("fid_dcgan", 143.2, "against the held-out digits")`` shows one line in the cell's
output, ``fid_dcgan = 143.2   (against the held-out digits)``, and stores the number under
a gantut MIME type beside it. Three readers use it:

- **the notebook's prose**, through myst-nb's glue: markdown cites the number as
  ``{glue:text}`fid_dcgan:.1f``` (a Python format spec after the colon). JupyterLab shows
  that role as written, and the recorded line in the output is where the reader finds the
  value; the book shows the number in the sentence. The book's extension
  (``book/_ext/gantut_book.py``) turns every record into a myst-nb glue entry of that name
  (as ``myst_nb.glue(name, value, display=False)`` would write it), drops the recorded
  lines from the page (the prose shows the numbers), and hides code cells that only record;
  a role whose name was not recorded is a build warning.
- **the corrections page**, which quotes the notebooks' correction boxes with their glued
  numbers;
- **the tests**: :func:`read_records` returns every recorded number of an executed notebook
  by name, e.g. for a test that asserts "non-saturating beats saturating".

The output is one ``display_data`` with ``text/plain`` and the gantut MIME type: nothing a
JupyterLab user cannot see, no hidden glue outputs, and the same output as before, which
the cells whose outputs nbval compares rely on.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

MIME = "application/vnd.gantut.record+json"
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")  # usable in a {glue:text}`name:.1f` role


def record(name: str, value, note: str = "") -> None:
    """Show ``name = value`` (with an optional note) and store the value for prose and tests.

    ``value`` is a number, a string, or a list/tuple of them (tensors and NumPy scalars are
    converted); a non-finite float is stored as the string ``"nan"``/``"inf"``.
    """
    from IPython.display import display

    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(f"record name {name!r}: use letters, digits, '_', '.' or '-', starting "
                         "with a letter (markdown cites it as {glue:text}`NAME:.1f`)")
    if hasattr(value, "tolist"):  # tensors, NumPy scalars and arrays
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    text = f"{name} = {shown}" + (f"   ({note})" if note else "")
    display({MIME: {"name": name, "value": value}, "text/plain": text}, raw=True)


def read_records(notebook: str | Path) -> dict:
    """All numbers recorded in an executed notebook, by name (the last one wins)."""
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    out = {}
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if MIME in data:
                rec = data[MIME]
                out[rec["name"]] = rec["value"]
    return out
