"""Nothing lost: every fact of the course at an earlier commit still stands somewhere in it now.

A rewrite that moves text between a notebook, its reference section and the paper notes must not
drop a number, a source or a quotation on the way. This script extracts, from the notebooks'
markdown and comments and from ``paper_notes/``, ``docs/`` and the README at a git revision, the
tokens that carry facts:

- numbers with a decimal point or a thousands separator, percentages, ratios like ``3.86 G``;
- arXiv identifiers, URLs, commit hashes (7-40 hex digits with a letter and a digit);
- citations: ``sec. 3.4``, ``section 4.2``, ``Table 6``, ``Fig. 2``, ``Eqn. (1)``,
  ``appendix A.1``;
- quotations: text between double quotes of 20 characters or more (the paper's exact words);

and looks for each in the whole course as it stands in the working tree (notebooks, paper notes,
docs, README, CONTRIBUTING and ``common/``), whitespace and the ``# `` of jupytext comments folded.
It prints what it cannot find, with the file and a line of context, so that each can be judged:
moved (then it would have been found), corrected on purpose (say so in the issue's note), or lost
(put it back).

    python tools/course_facts.py 50c5507                 # every file of the course
    python tools/course_facts.py 50c5507 notebooks/02_resnet.py paper_notes/resnet.md

Exit status 1 when a fact is missing, 0 otherwise.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("notebooks/*.py", "paper_notes/*.md", "docs/*.md", "README.md")
CORPUS = SOURCES + ("CONTRIBUTING.md", "common/**/*.py", "book/**/*.md")

PATTERNS = {
    "quote": re.compile(r"\"([^\"]{20,400}?)\""),
    "url": re.compile(r"https?://[^\s)\]>\"'`]+"),
    "arxiv": re.compile(r"\b\d{4}\.\d{4,5}\b"),
    "commit": re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b"),
    "citation": re.compile(r"\b(?:sec\.|section|Section|Table|Tables|Fig\.|Figure|Eqn\.|Eq\.|"
                           r"appendix|Appendix)\s*\(?[0-9A-G][0-9.]*[a-z]?\)?"),
    "number": re.compile(r"(?<![\w.])[-−+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|"
                         r"(?<![\w.])[-−+]?\d+\.\d+(?:e-?\d+)?(?![\w.])|"
                         r"(?<![\w.])\d+(?:\.\d+)?\s?%"),
}


def fold(text: str) -> str:
    """One line of text, the jupytext comment marks and markdown emphasis dropped."""
    text = re.sub(r"(?m)^\s*# ?", " ", text)
    text = text.replace("**", "").replace("`", "")
    return re.sub(r"\s+", " ", text)


def _blocks(path: str, text: str) -> list[str]:
    """The paragraphs of a file that state facts: in a notebook's .py its markdown cells and its
    runs of comment lines (the code is checked by the tests), elsewhere every paragraph."""
    if not path.endswith(".py"):
        return re.split(r"\n\s*\n", text)
    blocks, current, markdown = [], [], False
    for line in text.splitlines() + ["# %%"]:
        stripped = line.strip()
        if line.startswith("# %%") or not stripped or stripped == "#":
            blocks.append("\n".join(current))
            current, markdown = [], ("[markdown]" in line if line.startswith("# %%") else markdown)
        elif markdown or stripped.startswith("#"):
            current.append(stripped)
        elif "#" in line:                      # a comment at the end of a code line
            blocks.append(line.split("#", 1)[1])
    return [b for b in blocks if b.strip()]


def facts(text: str):
    """(kind, token) for every fact-carrying token of ``text`` (already folded)."""
    for kind, pattern in PATTERNS.items():
        for m in pattern.finditer(text):
            token = (m.group(1) if kind == "quote" else m.group(0)).strip().rstrip(".,;:")
            if kind == "number" and re.fullmatch(r"[-−+]?0?\.?0*\d?", token.replace(",", "")):
                continue                      # 0, 1, 0.5-like tokens say nothing
            yield kind, token


def git_files(rev: str, patterns) -> dict[str, str]:
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    out = {}
    for name in names:
        if any(Path(name).match(p) for p in patterns):
            out[name] = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=ROOT, check=True,
                                       capture_output=True, text=True).stdout
    return out


def corpus() -> str:
    seen, parts = set(), []
    for pattern in CORPUS:
        for path in sorted(ROOT.glob(pattern)):
            if path.is_file() and path not in seen and "__pycache__" not in path.parts:
                seen.add(path)
                parts.append(fold(path.read_text(errors="replace")))
    return " \n ".join(parts)


def missing(rev: str, only=()) -> list[tuple[str, str, str, str]]:
    """(file, kind, token, context) for each fact of ``rev`` not found in the working tree."""
    old = git_files(rev, SOURCES)
    if only:
        old = {k: v for k, v in old.items() if k in only}
    now = corpus()
    now_nospace = now.replace(" ", "")
    out, done = [], set()
    for name, text in old.items():
        for block in _blocks(name, text):
            folded = fold(block)
            for kind, token in facts(folded):
                if (kind, token) in done:
                    continue
                done.add((kind, token))
                if token in now or token.replace(" ", "") in now_nospace:
                    continue
                at = folded.find(token)
                context = folded[max(0, at - 70): at + len(token) + 70]
                out.append((name, kind, token, context))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the git revision to compare with, e.g. 50c5507")
    parser.add_argument("files", nargs="*", help="only these files of that revision")
    args = parser.parse_args(argv)
    found = missing(args.rev, set(args.files))
    for name, kind, token, context in found:
        print(f"{name}: {kind}: {token!r}\n    ...{context}...")
    print(f"{len(found)} facts of {args.rev} not found in the course as it stands")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
