"""Save the notebooks' ``#@save`` cells into ``common/models/`` (in the spirit of d2l's ``#@save``).

A code cell whose first line is ``#@save NAME`` belongs to ``common/models/NAME.py``. The file is
the marked cells of one notebook, in order, each without its marker line, under a short header.
Later notebooks import the blocks from there, so every block has one source: its notebook.

    python -m common.save            # rewrite every saved file from the notebooks
    python -m common.save --check    # exit 1 and show a diff where a file and its notebook differ
"""
from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
MODELS = ROOT / "common" / "models"
MARKER = re.compile(r"^#@save\s+([A-Za-z_][A-Za-z0-9_]*)\s*$")
HEADER = (
    "# Generated from notebooks/{nb} by `python -m common.save`: do not edit here.\n"
    "# Edit the notebook's `#@save {name}` cells instead, then run `python -m common.save`.\n"
)


def cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def saved_cells(notebook: Path) -> dict[str, list[str]]:
    """``{name: [cell body, ...]}`` for the ``#@save`` cells of one .ipynb, in order."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    out: dict[str, list[str]] = {}
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        first, _, body = cell_source(cell).partition("\n")
        m = MARKER.match(first.strip())
        if m:
            out.setdefault(m.group(1), []).append(body.strip("\n"))
    return out


def render_all(notebooks_dir: Path = NOTEBOOKS) -> dict[Path, str]:
    """The text every saved file should have: ``{path: text}``."""
    files: dict[Path, str] = {}
    owner: dict[str, str] = {}
    for nb in sorted(notebooks_dir.glob("*.ipynb")):
        for name, bodies in saved_cells(nb).items():
            if name in owner:
                raise ValueError(
                    f"#@save {name} is used by both {owner[name]} and {nb.name}: "
                    "each saved file must come from one notebook."
                )
            owner[name] = nb.name
            text = HEADER.format(nb=nb.name, name=name) + "\n" + "\n\n\n".join(bodies) + "\n"
            files[MODELS / f"{name}.py"] = text
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
        print("saved code differs from its notebook" if found else "saved code matches the notebooks")
        return 1 if found else 0
    for path, text in render_all().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
