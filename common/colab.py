"""Colab: the course's address, the set-up cell every notebook starts with, and Google Drive.

The course's address is written once, here (``REPOSITORY``, ``BRANCH``). Every notebook's set-up
cell and every "Open in Colab" badge (in the notebooks and in the README) is generated from it,
and ``tests/test_colab.py`` fails when one of them names another address. A fork changes
``REPOSITORY`` (and ``BRANCH`` if its notebooks live on another branch), then runs::

    python -m common.colab            # rewrite every set-up cell and badge, sync the .ipynb files
    python -m common.colab --check    # only list what differs (exit status 1 if anything does)

The same command puts the canonical set-up cell (``SETUP_CELL``) into a notebook whose set-up
cell is older or was merged from another branch; it is idempotent.

Colab's runtimes disconnect and lose everything under /content, where the course is cloned. The
set-up cell's switch ``KEEP_ON_DRIVE`` (off by default: nobody's Drive is touched unasked) calls
``keep_on_drive(True)``, which mounts Google Drive and points ``IMAGENET5_RUNS`` and
``IMAGENET5_DATA`` at a folder there. Run folders are keyed by recipe and data
(``common.run_dir_for``), so after a disconnect re-running the notebook resumes every training
from its last finished epoch.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from common.runtime import data_dir, runs_dir

#: The course's GitHub repository, ``owner/name``: the one place its address is written.
REPOSITORY = "the-imagenet-5/course"
#: The branch the badges open and the set-up cell clones.
BRANCH = "main"

ROOT = Path(__file__).resolve().parent.parent
#: Where the set-up cell clones the course on Colab, relative to the notebook's working folder.
CLONE = "imagenet5"
#: Where Drive is mounted, relative to the notebook's working folder: /content/drive on Colab.
DRIVE_MOUNT = "drive"
#: The folder on Drive (under MyDrive) that holds runs/ and data/.
DRIVE_FOLDER = "imagenet5"

#: The line of requirements.txt where Colab's set-up cell stops installing (what follows it would
#: replace Colab's own Jupyter).
NOT_ON_COLAB = "# Not on Colab"

#: The set-up cell, the first code cell of every notebook (the names in braces filled in by
#: ``setup_cell()``). On Colab it installs requirements.txt up to the line NOT_ON_COLAB; off Colab
#: it only puts the course root on the path.
SETUP_CELL = '''\
# Set-up. On Colab: fetch the course and install what Colab lacks from its requirements.txt
# (the lines above "{not_on_colab}"). Anywhere: put the course root (with common/) on the path.
# KEEP_ON_DRIVE = True (Colab only) keeps runs/ and data/ on your Google Drive, so that every
# training resumes from its last epoch after a disconnect: re-run the notebook from the top.
KEEP_ON_DRIVE = False
import sys, pathlib, subprocess
if "google.colab" in sys.modules and not pathlib.Path("{clone}").exists():
    subprocess.run("git clone -q -b {branch} {url} {clone} && sed '/^{not_on_colab}/,$d' {clone}/requirements.txt | pip install -q -r /dev/stdin", shell=True, check=True)
sys.path.insert(0, str(next(p for p in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents, pathlib.Path("{clone}").resolve()] if (p / "common").is_dir())))
import common.colab
common.colab.keep_on_drive(KEEP_ON_DRIVE)'''  # noqa: E501 (the cell as every notebook shows it)

#: The sentence in the markdown above every training cell (checked by tests/test_colab.py).
RESUME_NOTE = ("**After a disconnect**, re-run the notebook from the top: this training resumes "
               "from its last finished epoch (on Colab, if `KEEP_ON_DRIVE` was on in the set-up "
               "cell).")

BADGE = re.compile(r"https://colab\.research\.google\.com/github/[^\s)\"'\]]+")


def clone_url(repository: str = REPOSITORY) -> str:
    return f"https://github.com/{repository}"


def badge_url(path: str, repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    """The "Open in Colab" link of a notebook, ``path`` relative to the course root."""
    return f"https://colab.research.google.com/github/{repository}/blob/{branch}/{path}"


def setup_cell(repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    """The canonical set-up cell, naming the course's address."""
    return SETUP_CELL.format(url=clone_url(repository), branch=branch, clone=CLONE,
                             not_on_colab=NOT_ON_COLAB)


# --- Colab at run time ------------------------------------------------------------------------

def on_colab() -> bool:
    """Whether this Python runs in a Colab runtime (whose kernel imports ``google.colab``)."""
    return "google.colab" in sys.modules


#: What ``keep_on_drive(True)`` set, so that switching it off again restores the environment.
_SET: dict[str, str | None] = {}


def keep_on_drive(keep: bool, folder: str = DRIVE_FOLDER) -> Path | None:
    """The set-up cell's ``KEEP_ON_DRIVE`` switch. On Colab, ``keep=True`` mounts Google Drive
    (Colab asks for your consent) and sets ``IMAGENET5_RUNS`` and ``IMAGENET5_DATA`` to
    ``MyDrive/<folder>/runs`` and ``.../data``, so that checkpoints and datasets outlive the
    runtime; returns that folder. ``keep=False`` touches nothing (and undoes an earlier
    ``keep_on_drive(True)`` of this session). Off Colab the switch does nothing and says so."""
    if not keep:
        for name, before in _SET.items():
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before
        _SET.clear()
        if on_colab():
            print(f"Checkpoints go to {runs_dir()}, which a disconnect erases; set KEEP_ON_DRIVE "
                  "= True in the set-up cell to keep them on Google Drive.")
        return None
    if not on_colab():
        print(f"KEEP_ON_DRIVE acts on Colab only: here checkpoints go to {runs_dir()} and data to "
              f"{data_dir()} (IMAGENET5_RUNS and IMAGENET5_DATA move them).")
        return None
    from google.colab import drive  # optional: only Colab has it

    mount = Path(DRIVE_MOUNT).absolute()       # /content/drive: Colab's working folder is /content
    if not (mount / "MyDrive").is_dir():
        drive.mount(str(mount))
    if not (mount / "MyDrive").is_dir():
        raise RuntimeError(f"Google Drive did not appear at {mount / 'MyDrive'} after mounting. "
                           "Run the set-up cell again and allow access to Drive, or set "
                           "KEEP_ON_DRIVE = False to keep runs/ in the runtime.")
    where = mount / "MyDrive" / folder
    for name, sub in (("IMAGENET5_RUNS", "runs"), ("IMAGENET5_DATA", "data")):
        _SET.setdefault(name, os.environ.get(name))
        os.environ[name] = str(where / sub)
        (where / sub).mkdir(parents=True, exist_ok=True)
    print(f"Kept on Google Drive: checkpoints in {runs_dir()}, datasets in {data_dir()}. After a "
          "disconnect, re-run the notebook from the top: each training resumes from its last "
          "finished epoch.")
    return where


# --- the script: set-up cells and badges from REPOSITORY ----------------------------------------

def _rewrite_setup_cell(text: str, name: str) -> str:
    """A notebook's .py (jupytext percent format) with its set-up cell made the canonical one: its
    first code cell when that is a set-up cell (its first line starts with ``# Set-up``), else a
    new cell inserted before that first code cell."""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith("# %%")
                  and not re.match(r"# %% \[(markdown|md|raw)\]", line)), None)
    if start is None:
        raise ValueError(f"{name}: no code cell (a '# %%' line) to put the set-up cell before")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("# %%")),
               len(lines))
    body = lines[start + 1:end]
    if not body or not body[0].startswith("# Set-up"):
        return "\n".join(lines[:start] + ["# %%", *setup_cell().split("\n"), ""] + lines[start:])
    blank = 0
    while blank < len(body) and body[len(body) - 1 - blank] == "":
        blank += 1
    return "\n".join(lines[:start + 1] + setup_cell().split("\n") + [""] * blank + lines[end:])


def _rewrite_badges(text: str, own: str | None = None) -> str:
    """Every Colab badge link in ``text`` pointed at REPOSITORY and BRANCH, keeping the notebook
    it opens (``own``: the path a notebook's badges must open, its own)."""
    def fix(m):
        path = own or "notebooks/" + m.group(0).rsplit("/notebooks/", 1)[-1]
        return badge_url(path)
    return BADGE.sub(fix, text)


def notebook_sources(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.py"))


def rewrite(root: Path = ROOT, write: bool = True) -> list[str]:
    """Make every notebook's set-up cell and badges, and the README's badges, name REPOSITORY;
    with ``write``, save what changed and sync each changed notebook's .ipynb. Returns the paths
    that differed."""
    changed = []
    for py in notebook_sources(root):
        text = py.read_text()
        new = _rewrite_badges(_rewrite_setup_cell(text, py.name),
                              f"notebooks/{py.with_suffix('.ipynb').name}")
        if new != text:
            changed.append(str(py.relative_to(root)))
            if write:
                py.write_text(new)
                _sync(py)
    readme = root / "README.md"
    text = readme.read_text()
    new = _rewrite_badges(text)
    if new != text:
        changed.append("README.md")
        if write:
            readme.write_text(new)
    return changed


def _sync(py: Path) -> None:
    """``jupytext --sync`` with the .py as the source (the newer file of the pair)."""
    os.utime(py)
    subprocess.run([sys.executable, "-m", "jupytext", "--sync", "--quiet", str(py)], check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Write the canonical set-up cell and Colab badges (naming common.colab."
                    "REPOSITORY) into every notebook and the README.")
    ap.add_argument("--check", action="store_true", help="only list what differs; exit 1 if any")
    args = ap.parse_args(argv)
    changed = rewrite(write=not args.check)
    verb = "differs" if args.check else "rewritten"
    for path in changed:
        print(f"{path}: {verb}")
    if not changed:
        print(f"every set-up cell and badge names {REPOSITORY} ({BRANCH})")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
