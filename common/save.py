"""Save the notebooks' ``#@save`` cells into ``common/models/`` (in the spirit of d2l's
``#@save``).

A code cell whose first line is ``#@save NAME`` belongs to ``common/models/NAME.py``. The file is
the marked cells of one notebook, in order, each without its marker line. What can be generated
is generated, so that a notebook cell holds only the idea:

- the module docstring: the notebook's title line and the paper's citation (the first paragraph
  of the title cell with an arxiv.org link);
- ``__all__``: the public names the saved cells define at top level (classes, functions and
  constants; not imports, not names starting with ``_``), placed after the imports;
- above each top-level item, one comment naming where it is explained, d2l's way:
  ``# Defined in notebooks/02_resnet.ipynb, section 3 · Build it, block by block`` (the nearest
  preceding ``##`` heading, and the ``###`` heading under it where there is one).

So the FIRST ``#@save NAME`` cell of a notebook holds only the imports of the file; a later cell
may import more where it needs to.

    python -m common.save            # rewrite every saved file from the notebooks
    python -m common.save --check    # exit 1 and show a diff where a file and its notebook differ
"""
from __future__ import annotations

import argparse
import ast
import difflib
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
MODELS = ROOT / "common" / "models"
MARKER = re.compile(r"^#@save\s+([A-Za-z_][A-Za-z0-9_]*)\s*$")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
WIDTH = 99
HEADER = (
    "# Generated from notebooks/{nb} by `python -m common.save`: do not edit here.\n"
    "# Edit the notebook's `#@save {name}` cells instead, then run `python -m common.save`.\n"
)


class SavedCell(NamedTuple):
    body: str          # the cell without its #@save line
    section: str       # where the notebook explains it, e.g. "3 · Build it, block by block"


def cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _headings(markdown: str) -> list[tuple[int, str]]:
    """``(level, text)`` of each Markdown heading of a cell, outside fenced code."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and (m := HEADING.match(line)):
            out.append((len(m.group(1)), m.group(2)))
    return out


def _section(headings: dict[int, str]) -> str:
    """"section 3 · Build it, block by block" (a ## heading), or "section 3 › A stage" under a
    ### heading; a heading is cut at its first ": " ("A stage: the convs of one resolution")."""
    levels = sorted(lvl for lvl in headings if lvl >= 2)
    if not levels:
        return "the introduction"
    top, near = (headings[lvl].split(": ", 1)[0] for lvl in (levels[0], levels[-1]))
    if len(levels) == 1:
        return f"section {top}"
    number = top.split(" · ", 1)[0] if " · " in top else f'"{top}"'
    return f"section {number} › {near}"


def saved_cells(notebook: Path) -> dict[str, list[SavedCell]]:
    """``{name: [SavedCell, ...]}`` for the ``#@save`` cells of one .ipynb, in order."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    out: dict[str, list[SavedCell]] = {}
    headings: dict[int, str] = {}
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            for level, text in _headings(cell_source(cell)):
                headings = {k: v for k, v in headings.items() if k < level} | {level: text}
            continue
        if cell.get("cell_type") != "code":
            continue
        first, _, body = cell_source(cell).partition("\n")
        m = MARKER.match(first.strip())
        if m:
            out.setdefault(m.group(1), []).append(SavedCell(body.strip("\n"), _section(headings)))
    return out


def _plain(markdown: str) -> str:
    """Markdown inline text as plain text: links as "text (url)", no emphasis marks."""
    def link(m: re.Match) -> str:
        return m.group(1) if m.group(1) == m.group(2) else f"{m.group(1)} ({m.group(2)})"

    text = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", link, markdown)
    text = " ".join(text.split())
    return re.sub(r"(\*\*|\*|__)(\S(?:.*?\S)?)\1", r"\2", text)


def module_docstring(notebook: Path, name: str) -> str:
    """The saved file's docstring: the notebook's title line, the paper's citation (the first
    paragraph of the title cell with an arxiv.org link), and where the code comes from."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    title_cell = next((cell_source(c) for c in cells if c.get("cell_type") == "markdown"), "")
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", title_cell) if p.strip()]
    if not paragraphs or not paragraphs[0].startswith("# "):
        raise ValueError(f"{notebook.name}: the first Markdown cell must start with the "
                         "notebook's title line, '# NN · Title'.")
    title = _plain(paragraphs[0].splitlines()[0][2:])
    citation = next((p for p in paragraphs[1:] if "arxiv.org" in p), None)
    parts = [title]
    if citation:
        parts.append(textwrap.fill(_plain(citation), WIDTH, break_long_words=False,
                                   break_on_hyphens=False))
    parts.append(textwrap.fill(
        f"The `#@save {name}` cells of notebooks/{notebook.name}, in order; the comment above "
        "each item names the section of the notebook that explains it.", WIDTH))
    text = "\n\n".join(parts).replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return f'"""{text}\n"""\n'


def _tree(body: str, where: str) -> ast.Module:
    try:
        return ast.parse(body)
    except SyntaxError as err:
        raise ValueError(f"{where}: a #@save cell must be plain Python ({err.msg}, line "
                         f"{err.lineno} of the cell).") from err


def _check_first_cell(tree: ast.Module, where: str) -> None:
    others = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    if not others:
        return
    node = others[0]
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
            and isinstance(node.value.value, str):
        what = "a module docstring (it is generated from the notebook's title cell)"
    elif _names(node) == ["__all__"]:
        what = "__all__ (it is generated from the names the saved cells define)"
    else:
        what = f"code other than imports (line {node.lineno}: move it to the next #@save cell)"
    raise ValueError(f"{where}: the first #@save cell holds only the imports of the saved file, "
                     f"but it has {what}.")


def _names(node: ast.stmt) -> list[str]:
    """The names a top-level statement defines (def, class, assignment)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    targets = node.targets if isinstance(node, ast.Assign) else \
        [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def public_names(bodies: list[str]) -> list[str]:
    """The public top-level names the cells define, in order: what ``__all__`` lists."""
    out: list[str] = []
    for body in bodies:
        for node in ast.parse(body).body:
            out += [n for n in _names(node) if not n.startswith("_") and n not in out]
    return out


def with_provenance(body: str, line: str) -> str:
    """The cell with ``line`` (a comment) above each top-level item that is not an import,
    above the item's decorators and the comments directly above it."""
    lines = body.split("\n")
    starts = []
    for node in ast.parse(body).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        while start > 0 and lines[start - 1].lstrip().startswith("#"):
            start -= 1
        starts.append(start)
    for start in reversed(starts):
        lines.insert(start, line)
    return "\n".join(lines)


def _all(names: list[str]) -> str:
    inner = textwrap.fill(", ".join(f'"{n}"' for n in names), WIDTH - 4, break_long_words=False,
                          break_on_hyphens=False)
    if not names:
        return "__all__ = []\n"
    return "__all__ = [\n" + textwrap.indent(inner, "    ") + ",\n]\n"


def render(notebook: Path, name: str, cells: list[SavedCell]) -> str:
    """The text of ``common/models/<name>.py`` from one notebook's ``#@save <name>`` cells."""
    where = f"notebooks/{notebook.name}, #@save {name}"
    for i, cell in enumerate(cells):
        tree = _tree(cell.body, where)
        if i == 0:
            _check_first_cell(tree, where)
        elif "__all__" in [n for node in tree.body for n in _names(node)]:
            raise ValueError(f"{where}: remove __all__ from the cell; it is generated from the "
                             "names the saved cells define.")
    imports, rest = cells[0].body, [c for c in cells[1:] if c.body.strip()]
    items = [with_provenance(c.body, f"# Defined in notebooks/{notebook.name}, {c.section}")
             for c in rest]
    return (HEADER.format(nb=notebook.name, name=name) + "\n"
            + module_docstring(notebook, name)
            + (imports + "\n\n" if imports.strip() else "")
            + _all(public_names([c.body for c in rest]))
            + "".join("\n\n" + item + "\n" for item in items))


def render_all(notebooks_dir: Path = NOTEBOOKS) -> dict[Path, str]:
    """The text every saved file should have: ``{path: text}``."""
    files: dict[Path, str] = {}
    owner: dict[str, str] = {}
    for nb in sorted(notebooks_dir.glob("*.ipynb")):
        for name, cells in saved_cells(nb).items():
            if name in owner:
                raise ValueError(
                    f"#@save {name} is used by both {owner[name]} and {nb.name}: "
                    "each saved file must come from one notebook."
                )
            owner[name] = nb.name
            files[MODELS / f"{name}.py"] = render(nb, name, cells)
    return files


def diffs(notebooks_dir: Path = NOTEBOOKS) -> list[str]:
    """Unified diffs between each saved file on disk and its notebook cells (empty: in sync)."""
    out = []
    for path, want in render_all(notebooks_dir).items():
        have = path.read_text(encoding="utf-8") if path.exists() else ""
        if have != want:
            rel = path.relative_to(ROOT)
            out.append("".join(difflib.unified_diff(
                have.splitlines(True), want.splitlines(True),
                f"{rel} (on disk)", f"{rel} (from the notebook)")))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    args = ap.parse_args(argv)
    if args.check:
        found = diffs()
        for d in found:
            print(d)
        print("saved code differs from its notebook" if found
              else "saved code matches the notebooks")
        return 1 if found else 0
    for path, text in render_all().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
