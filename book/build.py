"""The course as a book: a static web site of every notebook with its outputs, with the README as
its home page, the paper notes and the docs, a table of contents and search. One command:

    python book/build.py                        # the published build: notebooks run in quick mode
    IMAGENET5_SMOKE=1 python book/build.py      # a smoke build, for checks (minutes)

Its last line is the path of the site's index.html (open it in a browser; no server needed).

1. **Execute** each notebook with nbclient, in quick mode (``IMAGENET5_QUICK=1``; smoke mode with
   ``IMAGENET5_SMOKE=1``), offline (the digits set) unless ``IMAGENET5_OFFLINE=0`` is set, in a
   fresh runs folder, so that every output comes from this run. The executed copy goes to
   ``book/_build/executed/<mode>/NN_x.ipynb`` with ``NN_x.json`` beside it: the wall time, the
   mode, the machine, the cache key. Execution is cached: the key hashes the notebook's code
   cells, every file of ``common/``, the mode and the offline flag, so a rebuild re-executes only
   a notebook whose code, or whose ``common/`` code, changed; a prose change takes the cached
   outputs (merged into the new prose) and only renders again. ``--force`` re-executes all.
2. **Stage** the site's sources in ``book/_build/src``: the README as ``index.md`` (with the table
   of contents), every executed notebook with a line at its top saying which mode and machine
   produced it, its downloadable copy, ``paper_notes/``, ``docs/`` and CONTRIBUTING.md.
3. **Render** with Sphinx, MyST-NB (execution off: the outputs are those of step 1) and the
   sphinx-book-theme (``book/conf.py``) into ``book/_build/html``. Any Sphinx warning (a broken
   link, a missing page) fails the build.

Why Sphinx with MyST-NB and the sphinx-book-theme: pip alone installs them and the build runs
offline (the theme's assets ship in its package); MyST-NB renders the stored outputs with
execution off, so step 1's cached executor decides what runs and in which mode; search and a
table of contents come built in; ``-W`` turns a broken link or a missing page into a failed
build. (Jupyter Book 1 is the same stack behind a wrapper.)

``--only 00 09`` executes and renders only those notebooks (the others become one-line pages, so
that every link still resolves): for checks, as ``tests/test_book.py`` does.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
#: Where everything the build makes goes (ignored by git).
OUT = BOOK / "_build"
#: Bump when the executed copies or their records change shape, to ignore older cache entries.
CACHE_VERSION = 1
#: The longest one cell may run before the build gives up on its notebook (a quick-mode training
#: cell takes minutes on a laptop CPU; a full-mode one is never run by the build).
CELL_TIMEOUT = 4 * 3600

MODE_LINES = {
    "smoke": ("smoke mode** (`IMAGENET5_SMOKE=1`: a few hundred images and at most 2 epochs per "
              "training, for checks: its numbers only show that every cell runs)"),
    "quick": ("quick mode** (`IMAGENET5_QUICK=1`: a data subset and a few epochs per training, so "
              "that every training cell learns visibly on a CPU)"),
}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def build_mode() -> str:
    """smoke with IMAGENET5_SMOKE=1, else quick: the published build never runs full mode."""
    return "smoke" if _flag("IMAGENET5_SMOKE") else "quick"


def offline() -> bool:
    """Offline (the digits set, no download) unless IMAGENET5_OFFLINE is set to something false."""
    value = os.environ.get("IMAGENET5_OFFLINE")
    return True if value is None else _flag("IMAGENET5_OFFLINE")


# 1 · Execute ------------------------------------------------------------------------------------
def notebooks(root: Path) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def select(paths: list[Path], only: list[str] | None) -> list[Path]:
    """The notebooks named by ``only`` ("00", "00_toolkit" or "00_toolkit.ipynb"), all if None."""
    if not only:
        return paths
    chosen = []
    for name in only:
        stem = Path(name).stem
        match = [p for p in paths if p.stem == stem or p.stem.split("_")[0] == stem]
        if not match:
            raise SystemExit(f"--only {name}: no such notebook; choose among "
                             + ", ".join(p.stem for p in paths))
        chosen += [p for p in match if p not in chosen]
    return chosen


def _tree_digest(folder: Path) -> str:
    """One hash of every file under ``folder`` (names and contents; caches left out)."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def code_cells(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def cache_key(nb, mode: str, is_offline: bool, common_digest: str) -> str:
    """What a notebook's outputs depend on: its code cells (not its prose), the package it imports,
    the mode and whether downloads are allowed."""
    what = {"version": CACHE_VERSION, "mode": mode, "offline": is_offline,
            "code": code_cells(nb), "common": common_digest}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def machine() -> dict:
    """What the notebooks run on: CPU model, cores, threads, torch, the GPU if any. Called in the
    notebook's own kernel, after its last cell (``MACHINE_PROBE``), where torch is imported."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in
                   Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        if platform.system() == "Darwin":
            cpu = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], text=True,
                                 capture_output=True).stdout.strip() or cpu
    gpu = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else
           "Apple MPS" if torch.backends.mps.is_available() else None)
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "gpu": gpu, "python": platform.python_version(),
            "system": platform.system()}


#: A last cell run in each notebook's kernel (then removed): it prints ``machine()`` as JSON.
MACHINE_PROBE = f"""\
import importlib.util as _u, json as _j
_s = _u.spec_from_file_location("_book_build", {str(Path(__file__).resolve())!r})
_m = _u.module_from_spec(_s)
_s.loader.exec_module(_m)
print(_j.dumps(_m.machine()))"""


def _outputs_report(nb) -> dict:
    """Counts a reader of the page would care about: error outputs and stderr streams."""
    errors = stderr = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            errors += out.get("output_type") == "error"
            stderr += out.get("output_type") == "stream" and out.get("name") == "stderr"
    return {"error_outputs": errors, "stderr_outputs": stderr}


def execute(path: Path, mode: str, is_offline: bool, root: Path,
            nb=None) -> tuple[object, float, dict]:
    """Run one notebook top to bottom in a fresh kernel, in the mode asked for, with a fresh runs
    folder (nothing resumed from earlier runs), from the notebooks folder as JupyterLab would.
    ``nb``: the notebook to run from ``path``'s folder, if not ``path`` as read from disk
    (``tools/notebook_times.py --probe`` adds a cell). Each executed cell's metadata keeps its
    start and end times (nbclient's ``record_timing``)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4) if nb is None else nb
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="imagenet5-book-runs-") as runs:
        os.environ.pop("IMAGENET5_SMOKE" if mode == "quick" else "IMAGENET5_QUICK", None)
        os.environ["IMAGENET5_SMOKE" if mode == "smoke" else "IMAGENET5_QUICK"] = "1"
        os.environ["IMAGENET5_OFFLINE"] = "1" if is_offline else "0"
        os.environ["IMAGENET5_RUNS"] = runs
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(root)] + [p for p in saved.get("PYTHONPATH", "").split(os.pathsep) if p])
        try:
            nb.cells.append(nbformat.v4.new_code_cell(MACHINE_PROBE))
            start = time.perf_counter()
            NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            seconds = time.perf_counter() - start
            printed = "".join(o.get("text", "") for o in nb.cells.pop().outputs
                              if o.get("name") == "stdout")
            return nb, seconds, json.loads(printed.strip().splitlines()[-1])
        finally:
            os.environ.clear()
            os.environ.update(saved)


def with_outputs(nb, executed):
    """The current notebook (its prose as it is now) with the outputs of an executed copy whose
    code cells are the same."""
    ours = [c for c in nb.cells if c.cell_type == "code"]
    theirs = [c for c in executed.cells if c.cell_type == "code"]
    assert [c.source for c in ours] == [c.source for c in theirs], "cache key collision"
    for a, b in zip(ours, theirs):
        a.outputs, a.execution_count = b.outputs, b.execution_count
    nb.metadata.update({k: v for k, v in executed.metadata.items() if k == "widgets"})
    return nb


def executed_notebooks(paths: list[Path], mode: str, is_offline: bool, out: Path, root: Path,
                       force: bool = False) -> dict[Path, tuple[object, dict]]:
    """Each notebook with its outputs and its record, executed or taken from the cache."""
    import nbformat

    folder = out / "executed" / mode
    folder.mkdir(parents=True, exist_ok=True)
    digest = _tree_digest(root / "common")
    results, failed = {}, []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        key = cache_key(nb, mode, is_offline, digest)
        cached, record_path = folder / path.name, folder / f"{path.stem}.json"
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        if not force and record.get("key") == key and cached.exists():
            results[path] = (with_outputs(nb, nbformat.read(cached, as_version=4)), record)
            print(f"{path.name}: outputs from the cache (executed {record['finished']}, "
                  f"{record['seconds']:.0f} s)", flush=True)
            continue
        print(f"{path.name}: executing in {mode} mode ...", flush=True)
        # Every exception is caught on purpose: whatever stops this notebook (a cell's error, a
        # dead kernel, a cell timeout, a kernel that does not start) is reported with the others
        # at the end, and the next notebook still runs.
        try:
            executed, seconds, where = execute(path, mode, is_offline, root)
        except Exception as err:                            # noqa: BLE001 (reported, go on)
            failed.append(f"{path.name}: {type(err).__name__}: {str(err)[-3000:]}")
            print(f"{path.name}: FAILED ({type(err).__name__})", flush=True)
            continue
        record = {"notebook": f"notebooks/{path.name}", "mode": mode, "offline": is_offline,
                  "seconds": round(seconds, 1), "machine": where, "key": key,
                  "finished": datetime.datetime.now().isoformat(timespec="seconds"),
                  **_outputs_report(executed)}
        _write_atomic(cached, nbformat.writes(executed))
        _write_atomic(record_path, json.dumps(record, indent=1) + "\n")
        results[path] = (executed, record)
        print(f"{path.name}: executed in {seconds:.0f} s", flush=True)
    if failed:
        raise SystemExit("Some notebooks failed to run, so no site was built:\n"
                         + "\n".join(failed)
                         + "\nRun the notebook in JupyterLab in the same mode to see the cell.")
    return results


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# 2 · Stage -------------------------------------------------------------------------------------
def machine_text(m: dict) -> str:
    gpu = f"GPU {m['gpu']}" if m.get("gpu") else "no GPU"
    return (f"{m['cpu']}, {m['cores']} cores ({m['threads']} threads), {gpu}, "
            f"torch {m['torch']}, Python {m['python']}")


def label(record: dict, download: str | None, notes: str | None) -> str:
    """The note at the top of a notebook's page: which mode and machine produced its outputs,
    and that they are not the paper's numbers."""
    data = ("offline: on the digits set (scikit-learn's 1,797 handwritten digits, standing in "
            "for CIFAR-10) and without pretrained weights" if record["offline"] else
            "with downloads allowed (each training output names its data set)")
    lines = [f"> **Outputs of one run in {MODE_LINES[record['mode']]}, {data}. "
             f"Machine: {machine_text(record['machine'])}; {record['seconds']:.0f} s in all, on "
             f"{record['finished'][:10]}. **{record['mode'].capitalize()}-mode numbers are not "
             f"the paper's**: those come from full-length training on CIFAR-10 or ImageNet "
             f"(full mode, on a GPU)."]
    links = []
    if download:
        links.append(f"[Download this notebook with these outputs](path:{download})")
    if notes:
        links.append(f"reading notes on the paper: [{notes.split('/')[-1]}]({notes})")
    if links:
        rest = [link[0].upper() + link[1:] for link in links[1:]]
        lines.append(">\n> " + " · ".join(links[:1] + rest))
    return "\n".join(lines)


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _widget_text(model_id: str, models: dict) -> str | None:
    """The text a widget showed when its cell finished, from the saved widget state: tqdm's bar
    (an HBox of HTML, a progress bar and HTML) as "100%|##########| 300/300 [00:12<00:00]"."""
    import html as _html

    model = models.get(model_id)
    if model is None:
        return None
    name, state = model.get("model_name", ""), model.get("state", {})
    if name in ("HBoxModel", "VBoxModel"):
        parts = [_widget_text(c.removeprefix("IPY_MODEL_"), models) for c in state["children"]]
        return None if None in parts else ("" if name == "HBoxModel" else "\n").join(parts)
    if name in ("HTMLModel", "LabelModel"):
        return _html.unescape(re.sub(r"<[^>]+>", "", state.get("value", "")))
    if name in ("FloatProgressModel", "IntProgressModel"):
        low, high, value = state.get("min", 0), state.get("max", 100), state.get("value", 0)
        filled = round(10 * (value - low) / (high - low)) if high > low else 10
        return "|" + "█" * filled + " " * (10 - filled) + "|"
    return None


def static_widgets(nb):
    """Widgets (the progress bars of fit in quick mode) as the text they last showed: a static
    page has no kernel to draw them, and loading a widget renderer would need the web."""
    models = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view is not None:
                text = _widget_text(view.get("model_id", ""), models)
                out["data"] = {"text/plain": text if text is not None else
                               out["data"].get("text/plain", "(an interactive widget)")}
    return nb


def labelled(nb, text: str):
    """A copy of nb with ``text`` right under the title line of its first cell."""
    nb = copy.deepcopy(nb)
    first = next(c for c in nb.cells if c.cell_type == "markdown")
    title, _, rest = first.source.partition("\n")
    first.source = f"{title}\n\n{text}\n{rest}"
    return nb


def notes_of(nb, root: Path) -> str | None:
    """The paper notes a notebook names (``paper_notes/<paper>.md``), if any."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = re.search(r"paper_notes/(\w+)\.md", cell.source)
            if found and (root / "paper_notes" / f"{found[1]}.md").exists():
                return f"../paper_notes/{found[1]}.md"
    return None


def stub(path: Path):
    """A one-cell page for a notebook left out of a partial build (``--only``)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    title = next(c.source.partition("\n")[0] for c in nb.cells if c.cell_type == "markdown")
    nb.cells = [nbformat.v4.new_markdown_cell(
        f"{title}\n\nNot built in this partial build (`--only`): this page holds its title only.")]
    return nb


def page_order(readme: str, pages: list[str]) -> list[str]:
    """The site's pages in the order the README first links them; the others after, by name."""
    linked = []
    for target in re.findall(r"\]\(([^)#\s]+)", readme):
        if target in pages and target not in linked:
            linked.append(target)
    return linked + sorted(set(pages) - set(linked))


TOC_GROUPS = (("Notebooks", "notebooks/"), ("Reading notes on the papers", "paper_notes/"),
              ("Reference", ""))


def home_page(readme: str, pages: list[str]) -> str:
    """The README with the site's table of contents (hidden: the theme shows it at the side)."""
    ordered = page_order(readme, pages)
    toc = []
    for caption, prefix in TOC_GROUPS:
        group = [p for p in ordered if p.startswith(prefix) and not any(
            p.startswith(other) for _, other in TOC_GROUPS if other and other != prefix)]
        ordered = [p for p in ordered if p not in group]
        if group:
            toc.append(f"\n```{{toctree}}\n:hidden:\n:caption: {caption}\n\n"
                       + "\n".join(Path(p).with_suffix("").as_posix() for p in group) + "\n```\n")
    return readme.rstrip() + "\n" + "".join(toc)


def _write_if_changed(path: Path, data: str | bytes) -> None:
    """Write only what changed, so that Sphinx re-reads only the pages that did."""
    data = data.encode() if isinstance(data, str) else data
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def home_links(text: str, depth: int) -> str:
    """Links to the README point to the site's home page, index.md (the README staged there), from
    a page ``depth`` folders below the root."""
    return re.sub(r"\]\(((?:\.\./)*)README\.md",
                  lambda m: f"]({m[1]}index.md" if m[1] == "../" * depth else m[0], text)


def _anchor_links(text: str, anchors: set) -> str:
    """A Markdown link to an explicit ``<a id="...">`` anchor of the same page as an HTML link:
    MyST reads ``[text](#id)`` as a cross-reference to a heading or label and fails on a plain
    HTML id, which JupyterLab and GitHub follow (the try-it-first subsections use them)."""
    def html(m):
        label = re.sub(r"`([^`]+)`", r"<code>\1</code>", m[1])
        return f'<a href="#{m[2]}">{label}</a>'
    return re.sub(r"\[([^\]]+)\]\(#([^)\s]+)\)",
                  lambda m: html(m) if m[2] in anchors else m[0], text)


def _site_copy(nb):
    """The page's copy: links to the README go to the home page, and a code cell folded in
    JupyterLab (``jupyter.source_hidden``: plumbing, long listings) is folded on the page too
    (MyST-NB's ``hide-input`` tag: its outputs show, its code behind a "Show code" toggle)."""
    nb = copy.deepcopy(nb)
    anchors = {a for cell in nb.cells if cell.cell_type == "markdown"
               for a in re.findall(r'<a id="([^"]+)"></a>', cell.source)}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _anchor_links(home_links(cell.source, depth=1), anchors)
        elif cell.get("metadata", {}).get("jupyter", {}).get("source_hidden"):
            tags = cell.metadata.setdefault("tags", [])
            if "hide-input" not in tags:
                tags.append("hide-input")
    return nb


IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif")


def stage(results: dict, stubs: list[Path], src: Path, root: Path) -> None:
    """The site's sources, mirroring the repository's layout so that its relative links work."""
    import nbformat

    files: dict[str, str | bytes] = {}
    for path, (nb, record) in results.items():
        nb = static_widgets(copy.deepcopy(nb))
        files[f"notebooks/{path.name}"] = nbformat.writes(labelled(_site_copy(nb), label(
            record, download=f"../downloads/{path.name}", notes=notes_of(nb, root))))
        files[f"downloads/{path.name}"] = nbformat.writes(labelled(nb, label(
            record, download=None, notes=None)))
    for path in stubs:
        files[f"notebooks/{path.name}"] = nbformat.writes(stub(path))
    for folder in ("docs", "paper_notes"):
        for md in sorted((root / folder).glob("*.md")):
            files[f"{folder}/{md.name}"] = home_links(md.read_text(), depth=1)
        for image in sorted((root / folder).rglob("*")):   # figures the pages show, as they are
            if image.suffix.lower() in IMAGE_SUFFIXES:
                files[image.relative_to(root).as_posix()] = image.read_bytes()
    files["CONTRIBUTING.md"] = home_links((root / "CONTRIBUTING.md").read_text(), depth=0)
    pages = [p for p in files if not p.startswith("downloads/") and p.endswith((".md", ".ipynb"))]
    files["index.md"] = home_page((root / "README.md").read_text(), pages)
    for rel, text in files.items():
        _write_if_changed(src / rel, text)
    for p in sorted(src.rglob("*"), reverse=True):          # pages that are gone, empty folders
        rel = p.relative_to(src).as_posix()
        if p.is_file() and rel not in files:
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()


# 3 · Render ------------------------------------------------------------------------------------
def render(src: Path, out: Path) -> Path:
    """Sphinx with MyST-NB, execution off; every warning is an error."""
    from sphinx.cmd.build import build_main

    html = out / "html"
    status = build_main(["-b", "html", "-c", str(BOOK), "-d", str(out / "doctrees"), "-q",
                         "-W", "--keep-going",
                         str(src), str(html)])
    if status:
        raise SystemExit(f"Sphinx reported the problems above (exit status {status}); the site in "
                         f"{html} is incomplete.")
    return html / "index.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NN",
                        help="execute and render only these notebooks (for checks)")
    parser.add_argument("--out", type=Path, default=OUT,
                        help=f"the build folder (default {OUT.relative_to(ROOT)})")
    parser.add_argument("--force", action="store_true",
                        help="re-execute every notebook, even those whose outputs are cached")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="the course folder to build (default: this checkout; tests build "
                             "a small one)")
    args = parser.parse_args(argv)
    mode, is_offline, out, root = build_mode(), offline(), args.out.resolve(), args.root.resolve()
    every = notebooks(root)
    chosen = select(every, args.only)
    print(f"Building the book in {mode} mode ({'offline' if is_offline else 'online'}): "
          f"{len(chosen)} of {len(every)} notebooks, into {out}", flush=True)
    start = time.perf_counter()
    results = executed_notebooks(chosen, mode, is_offline, out, root, force=args.force)
    executed = time.perf_counter()
    stage(results, [p for p in every if p not in chosen], out / "src", root)
    index = render(out / "src", out)
    print(f"executed or cached in {executed - start:.0f} s, rendered in "
          f"{time.perf_counter() - executed:.0f} s; per-notebook times and machine: "
          f"{out / 'executed' / mode}/*.json", flush=True)
    print(index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
