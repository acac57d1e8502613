"""The code a notebook teaches is the code gantut runs (d2l's ``#@save``).

A notebook code cell whose first line is ``#@save gantut.MODULE`` writes, on the page,
functions or classes that later chapters import from ``gantut.MODULE``. This test reads
every such cell (without executing anything) and checks that each function and class it
defines has the same code as the package's, compared as syntax trees, so that comments,
docstrings, type annotations and line breaks may differ, but not a single operation.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import textwrap

import pytest

from gantut.execute import NOTEBOOKS

SAVE = re.compile(r"^#@save\s+(gantut(?:\.\w+)+)\s*$")


def saved_cells() -> list[tuple[str, str, str]]:
    """``(notebook name, module, cell source)`` for every ``#@save`` cell."""
    out = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            src = "".join(cell["source"])
            m = SAVE.match(src.split("\n", 1)[0]) if cell["cell_type"] == "code" else None
            if m:
                out.append((path.stem, m.group(1), src))
    return out


def _normalised(node: ast.AST) -> str:
    """The syntax tree of a def/class without docstrings and type annotations."""
    node = ast.parse(ast.unparse(node)).body[0]  # a fresh copy
    for n in ast.walk(node):
        if isinstance(n, ast.arg):
            n.annotation = None
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef):
            n.returns = None
        body = getattr(n, "body", None)
        if (isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            n.body = body[1:] or [ast.Pass()]
    return ast.dump(node)


def differences(cell_source: str, module_name: str) -> list[str]:
    """What differs between the defs of a ``#@save`` cell and the module's; [] when equal."""
    module = importlib.import_module(module_name)
    tree = ast.parse(cell_source)
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    if not defs:
        return [f"the #@save {module_name} cell defines no function or class"]
    problems = []
    for node in defs:
        obj = getattr(module, node.name, None)
        if obj is None:
            problems.append(f"{node.name} is not in {module_name}")
            continue
        theirs = ast.parse(textwrap.dedent(inspect.getsource(obj))).body[0]
        if _normalised(node) != _normalised(theirs):
            problems.append(f"{node.name} differs from {module_name}.{node.name}")
    return problems


CELLS = saved_cells()


@pytest.mark.parametrize("notebook,module,source", CELLS,
                         ids=[f"{nb}:{mod}:{i}" for i, (nb, mod, _) in enumerate(CELLS)])
def test_saved_code_equals_the_package(notebook, module, source):
    assert differences(source, module) == []


def test_the_check_catches_a_changed_operation_and_ignores_docstrings():
    same = 'def hinge_g_loss(f):\n    """another docstring"""\n    # a comment\n    return -f.mean()\n'
    assert differences(same, "gantut.losses") == []
    changed = "def hinge_g_loss(f):\n    return f.mean()\n"
    assert differences(changed, "gantut.losses") == ["hinge_g_loss differs from gantut.losses.hinge_g_loss"]
    assert differences("def nope():\n    pass\n", "gantut.losses") == ["nope is not in gantut.losses"]
