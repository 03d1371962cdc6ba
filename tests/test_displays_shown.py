"""Every table, diagram and summary a notebook cell builds is shown.

A display object (``common.table``, ``Recipe.table()``, ``common.block_diagram(s)``,
``common.summary``, ``common.output_shapes``, ``plot_histories(show=False)``) appears in a notebook
only as its cell's last value; built anywhere else in the cell its value is dropped and it
vanishes without an error, which neither a Run All nor nbval notices. So this scan of every
notebook's code fails on a display call whose value is dropped: an expression statement that is
not the cell's last top-level statement (or sits in a loop, a branch, a ``with`` or a function), a
last one silenced by a trailing ``;``, or a value assigned to a name that nothing reads later.
Show it with ``display(...)`` (IPython's, always there in a notebook) or make it the last line.
"""
import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

#: Functions and methods of ``common`` whose value is something to show.
DISPLAY_CALLS = {"table", "Table", "block_diagram", "block_diagrams", "summary", "output_shapes"}


def _name(call: ast.Call) -> str | None:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


def _is_display(node, local: set[str]) -> bool:
    if not isinstance(node, ast.Call):
        return False
    name = _name(node)
    if name == "plot_histories":                        # shows itself unless show=False
        return any(k.arg == "show" and isinstance(k.value, ast.Constant) and k.value.value is False
                   for k in node.keywords)
    return name in DISPLAY_CALLS or name in local


def _code(source: str) -> str:
    """A cell's code without IPython's magics and shell lines (not Python)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


def dropped_displays(cells: list[str]) -> list[str]:
    """Where a display object built in one of ``cells`` (code, in order) would never be shown."""
    trees = [ast.parse(_code(c)) for c in cells]
    local: set[str] = set()                             # the notebook's own display helpers
    while True:
        found = {f.name for t in trees for f in ast.walk(t) if isinstance(f, ast.FunctionDef)
                 and any(isinstance(r, ast.Return) and _is_display(r.value, local)
                         for r in ast.walk(f))} - local
        if not found:
            break
        local |= found
    problems = []
    for i, (tree, source) in enumerate(zip(trees, cells)):
        where = f"code cell {i + 1}"
        last = tree.body[-1] if tree.body else None
        for node in ast.walk(tree):
            if isinstance(node, ast.Expr) and _is_display(node.value, local):
                text = ast.unparse(node.value)[:60]
                if node is not last:
                    problems.append(f"{where}, line {node.lineno}: {text}... is built and dropped")
                elif source.rstrip().endswith(";"):
                    problems.append(f"{where}, line {node.lineno}: {text}... is silenced by ';'")
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and _is_display(node.value, local):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = {t.id for t in targets if isinstance(t, ast.Name)}
                later = {n.id for t in trees[i:] for n in ast.walk(t)
                         if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
                for name in sorted(names - later):
                    problems.append(f"{where}, line {node.lineno}: {name} = "
                                    f"{ast.unparse(node.value)[:50]}... is never shown")
    return problems


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_every_display_object_a_cell_builds_is_shown(notebook):
    cells = ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"]
             if c["cell_type"] == "code"]
    problems = dropped_displays(cells)
    assert not problems, (f"{notebook.name}: these would not appear (wrap them in display(...) "
                          "or make them the cell's last line):\n  " + "\n  ".join(problems))


def test_the_scan_finds_each_way_a_display_is_lost_and_accepts_the_ways_it_is_shown():
    lost = dropped_displays([
        "common.table(rows)\nx = 1",                               # not the last statement
        "for r in recipes:\n    r.table()",                        # in a loop
        "common.summary(model);",                                  # silenced
        "t = common.block_diagram(['3x3'])\nprint('done')",        # assigned, never read
        "fig = common.plot_histories(h, show=False)\ny = 2",
        "def results():\n    return common.table(rows)\n\nresults()\nz = 3",   # a local helper
        "with torch.device('meta'):\n    common.output_shapes(m, (1, 3, 32, 32))",
    ])
    assert [p.split(",")[0] for p in lost] == [f"code cell {i}" for i in range(1, 8)], lost
    assert not dropped_displays([
        "display(common.table(rows))\nx = 1",
        "recipe.table()",
        "common.plot_histories(h)\nx = 1",                         # shows itself
        "t = common.table(rows)\nx = 1",
        "print(t)",                                                # read in a later cell
        "shapes = common.output_shapes(m, (1, 3, 32, 32))\nassert shapes['fc'] == (1, 10)",
        "%time common.summary(model)\ncommon.summary(model)",
    ])
