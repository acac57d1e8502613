"""Record the key numbers a notebook measures, so that tests can check its claims.

In a notebook, ``record("fid_dcgan", 143.2)`` shows ``fid_dcgan = 143.2`` and stores the
number in the cell's output under a gantut MIME type. After the notebook has been
executed (``python -m gantut.execute``), :func:`read_records` returns every recorded
number by name, e.g. for a test that asserts "non-saturating beats saturating".
"""

from __future__ import annotations

import json
import math
from pathlib import Path

MIME = "application/vnd.gantut.record+json"


def record(name: str, value, note: str = "") -> None:
    """Show ``name = value`` (with an optional note) and store it in the cell's output."""
    from IPython.display import display

    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    text = f"{name} = {shown}" + (f"   ({note})" if note else "")
    display({MIME: {"name": name, "value": value}, "text/plain": text}, raw=True)


def read_records(notebook: str | Path) -> dict:
    """All numbers recorded in an executed notebook, by name (the last one wins)."""
    nb = json.loads(Path(notebook).read_text())
    out = {}
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if MIME in data:
                rec = data[MIME]
                out[rec["name"]] = rec["value"]
    return out
