"""How long a paper notebook is to read: the first path, the whole, and where the first block is.

The first path is what a learner reads on a first pass: every cell except

- a section (``##``) or subsection (``###``) whose heading says it is off the path: "Going
  deeper", "Reference", or "(skip on a first read)", down to the next heading of its level or
  higher;
- what a markdown cell folds away in ``<details>`` ... ``</details>`` (hints, long tables);
- the code of cells folded in JupyterLab (cell metadata ``jupyter.source_hidden``);
- the set-up cell (``common/colab.py``'s ``SETUP_CELL``, the same in every notebook: read once).

Reading time is estimated at the rates the learner's read of 2026-12-06 used
(``../shared/reviews/student-read-2026-12-06.md``): 180 words a minute for prose, 12 lines a
minute for code; outputs and figures are not counted, so the estimate is a lower bound and a
relative size. A subsection headed "... (try it first)" (a write-it-yourself offer before a
block) is on the first path, but not counted in the minutes before the first working block: a
learner skips it or spends that time writing code. The *first working block* is the first code
cell that defines a subclass of ``nn.Module`` (or of a block already defined), or a function
that builds an ``nn.Sequential`` (VGG's stage), and is not a write-it-yourself skeleton (a cell
that raises ``NotImplementedError``), reported with its class name and the minutes of
first-path reading before it.

    python tools/reading_path.py notebooks/02_resnet.ipynb      # one notebook
    python tools/reading_path.py                                # every paper notebook
    python tools/reading_path.py --rev 50c5507                  # the same at an earlier commit
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAPER_NOTEBOOKS = ("01", "02", "03", "04", "05", "06", "08")
WORDS_PER_MINUTE = 180
CODE_LINES_PER_MINUTE = 12
OFF_PATH = re.compile(r"going deeper|^reference\b|reference:|skip on a first read", re.I)
HEADING = re.compile(r"^(#{1,3}) (.*)$", re.M)
CLASS = re.compile(r"^class (\w+)\(([^)]*)\)", re.M)
SETUP_FIRST_LINE = "# Set-up. On Colab: fetch the course"
TRY_FIRST = re.compile(r"try it first", re.I)
SEQUENTIAL = re.compile(r"^def (\w+)\(.*?\bnn\.Sequential\(", re.M | re.S)


def words(markdown: str) -> int:
    text = re.sub(r"\$[^$]*\$", " x ", markdown)            # a formula reads as a word or two
    text = re.sub(r"\]\([^)]*\)", "]", text)                # link targets are not read
    text = re.sub(r"[|#*`>_-]+", " ", text)
    return len(re.findall(r"[\w'’.,:;()%×=+/]+", text))


def code_lines(code: str) -> int:
    return sum(1 for line in code.splitlines() if line.strip())


def _without_details(markdown: str) -> str:
    return re.sub(r"<details>.*?</details>", " ", markdown, flags=re.S)


def measure(nb: dict) -> dict:
    """Words, code lines and minutes on the first path and in all; the first working block, with
    the minutes of first-path reading before it (without, and with, the optional "try it first"
    subsections, which a learner either skips or spends writing code rather than reading)."""
    on_path, level_off, trying, level_try = True, None, False, None
    path_words = path_code = all_words = all_code = try_words = try_code = 0
    first_block, blocks = None, {"Module"}
    for index, cell in enumerate(nb["cells"]):
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "markdown":
            for hashes, title in HEADING.findall(src):
                level = len(hashes)
                if level_off is not None and level <= level_off:
                    on_path, level_off = True, None
                if level_try is not None and level <= level_try:
                    trying, level_try = False, None
                if on_path and level >= 2 and OFF_PATH.search(title):
                    on_path, level_off = False, level
                if TRY_FIRST.search(title):
                    trying, level_try = True, level
            n = words(src)
            all_words += n
            if on_path:
                path_words += words(_without_details(src))
                try_words += words(_without_details(src)) if trying else 0
        else:
            n = code_lines(src)
            all_code += n
            hidden = cell.get("metadata", {}).get("jupyter", {}).get("source_hidden", False)
            hidden = hidden or src.startswith(SETUP_FIRST_LINE)
            counted = n if on_path and not hidden else 0      # code lines read on the path
            path_code += counted
            try_code += counted if trying else 0
            found = [name for name, bases in CLASS.findall(src)
                     if any(b.split(".")[-1].strip() in blocks for b in bases.split(","))]
            blocks.update(found)
            found += SEQUENTIAL.findall(src)        # a block written as a function (VGG's stage)
            if "NotImplementedError" in src:        # a skeleton for the learner, not a block
                found = []
            if found and first_block is None and on_path:
                without_try = _minutes(path_words - try_words, path_code - counted - try_code)
                with_try = _minutes(path_words, path_code - counted)
                first_block = (index, found[0], round(without_try, 1), round(with_try, 1))
    return dict(path_words=path_words, path_code=path_code, all_words=all_words,
                all_code=all_code, path_minutes=round(_minutes(path_words, path_code)),
                all_minutes=round(_minutes(all_words, all_code)), first_block=first_block)


def _minutes(n_words: int, n_code: int) -> float:
    return n_words / WORDS_PER_MINUTE + n_code / CODE_LINES_PER_MINUTE


def load(name: str, rev: str | None) -> dict:
    if rev is None:
        return json.loads((ROOT / name).read_text())
    return json.loads(subprocess.run(["git", "show", f"{rev}:{name}"], cwd=ROOT, check=True,
                                     capture_output=True, text=True).stdout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="default: every paper notebook")
    parser.add_argument("--rev", help="measure the notebooks as they are at this git revision")
    args = parser.parse_args(argv)
    names = args.notebooks or [str(p.relative_to(ROOT)) for p in
                               sorted((ROOT / "notebooks").glob("*.ipynb"))
                               if p.name[:2] in PAPER_NOTEBOOKS]
    print("| notebook | first path: words / code lines / min | in all: words / code lines / "
          "min | first working block: cell, class, min |")
    print("|---|---|---|---|")
    for name in names:
        m = measure(load(str(Path(name)), args.rev))
        block = "none" if m["first_block"] is None else \
            "cell {}, `{}`, {} ({} with the try-it-first cells)".format(*m["first_block"])
        print(f"| {Path(name).stem} | {m['path_words']:,} / {m['path_code']:,} / "
              f"{m['path_minutes']} | {m['all_words']:,} / {m['all_code']:,} / "
              f"{m['all_minutes']} | {block} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
