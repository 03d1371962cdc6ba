"""The course as a book (``book/build.py``): one small smoke build, checked as a reader would.

The build runs on a copy of the course's pages (README, CONTRIBUTING, docs/, paper_notes/, every
notebook) with ``common/`` linked in and one small notebook added, executed alone (``--only``):
the other notebooks become one-line pages, so the test costs one kernel and one Sphinx run, not
the notebooks' smoke runs (nbval makes those). Then every page must exist, no output may be an
error or a warning, every image and every internal link (with its #anchor) must resolve, and the
executed notebook must be downloadable with its outputs.
"""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "book" / "build.py"

_spec = importlib.util.spec_from_file_location("book_build", BUILD)
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

SMALL = "99_book_check"


def small_notebook() -> nbformat.NotebookNode:
    """A notebook with each kind of output a course page shows: a Markdown table, a block diagram,
    a matplotlib plot, printed text, a progress bar (fit's, in quick mode); a Colab badge; links
    to a docs page and an anchor."""
    from common.colab import badge_url, setup_cell

    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    return nbformat.v4.new_notebook(cells=[
        md(f"# 99 · The book's check\n\n[![Open In Colab](https://colab.research.google.com/assets/"
           f"colab-badge.svg)]({badge_url(f'notebooks/{SMALL}.ipynb')})\n\nThe notes: "
           "`paper_notes/resnet.md`; the modes: [settings](../docs/settings.md); the "
           "[curriculum](../README.md#curriculum)."),
        code(setup_cell()),
        md("## Outputs\n\n<a id=\"try-it\"></a>An explicit anchor, as the try-it-first "
           "subsections have, and [a link to it with `code`](#try-it)."),
        code("import matplotlib.pyplot as plt\nimport common\n"
             "display(common.table([('ResNet-20', 0.27)], header=('model', 'params (M)')))\n"
             "print('printed text')"),
        code('common.block_diagram(["3x3, 16", "3x3, 16"], notes=["BN, ReLU", "BN"], '
             'after=["ReLU"])'),
        code("plt.plot([1, 2, 3], [0.5, 0.7, 0.9])\nplt.title('a curve')\nplt.show()"),
        code("from tqdm.auto import tqdm\nfor _ in tqdm(range(3), unit='step'):\n    pass"),
        nbformat.v4.new_code_cell("print('folded code, shown output')",
                                  metadata={"jupyter": {"source_hidden": True}}),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                "language": "python"}})


class Page(HTMLParser):
    """What a page refers to: links, images, ids, and the classes of its elements."""

    def __init__(self, path: Path):
        super().__init__()
        self.links, self.images, self.ids, self.classes = [], [], set(), []
        self.feed(path.read_text())

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        self.classes += (a.get("class") or "").split()
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    for name in ("README.md", "CONTRIBUTING.md"):
        shutil.copy(ROOT / name, course / name)
    for folder in ("docs", "paper_notes", "notebooks"):
        shutil.copytree(ROOT / folder, course / folder, ignore=shutil.ignore_patterns("*.py"))
    (course / "common").symlink_to(ROOT / "common", target_is_directory=True)
    nbformat.write(small_notebook(), course / "notebooks" / f"{SMALL}.ipynb")
    figures = course / "paper_notes" / "figures"          # a figure in the notes, as a page shows
    figures.mkdir(exist_ok=True)
    import matplotlib.pyplot as plt
    plt.imsave(figures / f"{SMALL}.png", [[0.0, 1.0], [1.0, 0.0]])
    with open(course / "paper_notes" / "vgg.md", "a") as notes:
        notes.write(f"\n\n![The book's check](figures/{SMALL}.png)\n")
    out = course / "_build"
    run = subprocess.run([sys.executable, str(BUILD), "--root", str(course), "--out", str(out),
                          "--only", SMALL], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "IMAGENET5_SMOKE": "1"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    index = Path(run.stdout.strip().splitlines()[-1])
    return course, out, index


def test_the_last_line_is_the_home_page_and_every_page_exists(site):
    course, out, index = site
    assert index == out / "html" / "index.html" and index.exists()
    html = out / "html"
    sources = [*course.glob("docs/*.md"), *course.glob("paper_notes/*.md"),
               *course.glob("notebooks/*.ipynb"), course / "CONTRIBUTING.md"]
    for source in sources:
        page = html / source.relative_to(course).with_suffix(".html")
        assert page.exists(), f"no page for {source.relative_to(course)}"
    home = index.read_text()
    assert "Curriculum" in home and "00_toolkit.html" in home and "09_transfer.html" in home
    assert (html / "search.html").exists()
    assert "curriculum" in (html / "searchindex.js").read_text().lower()


def test_the_notebook_page_shows_its_outputs_and_says_what_produced_them(site):
    course, out, _ = site
    page = out / "html" / "notebooks" / f"{SMALL}.html"
    text, parsed = page.read_text(), Page(page)
    record = json.loads((out / "executed" / "smoke" / f"{SMALL}.json").read_text())
    assert record["mode"] == "smoke" and record["offline"] and record["seconds"] > 0
    assert record["error_outputs"] == 0 and record["stderr_outputs"] == 0
    assert record["machine"]["cores"] >= 1 and record["machine"]["torch"]
    # the label at the top, before the first section
    head = text[:text.index('id="outputs"')]
    assert "smoke mode" in head and "not the paper" in head and record["machine"]["cpu"] in head
    assert "../paper_notes/resnet.html" in parsed.links           # the notes it names
    assert any(link.startswith("https://colab.research.google.com/github/")
               for link in parsed.links)
    assert re.search(r"<table.*?ResNet-20.*?</table>", text, re.S)  # the Markdown table
    assert "printed text" in text
    assert "3/3" in text and "HBox(" not in text and "widget-view" not in text  # the bar, as text
    assert sum(src.startswith("../_images/") for src in parsed.images) >= 2   # diagram and plot
    assert not {"traceback", "stderr", "error"} & set(parsed.classes)
    # a cell folded in JupyterLab is folded on the page: its output shown, its code behind a toggle
    assert "folded code, shown output" in text and "tag_hide-input" in parsed.classes
    assert "#try-it" in parsed.links and "try-it" in parsed.ids        # the explicit anchor
    # the download: the executed notebook with its outputs
    download = [link for link in parsed.links if link.endswith(f"{SMALL}.ipynb")
                and "colab" not in link]
    assert download, "no link to download the executed notebook"
    nb = nbformat.read(page.parent / unquote(download[0]), as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert {"display_data", "stream"} <= {o.output_type for o in outputs}
    assert "smoke mode" in nb.cells[0].source


def test_every_image_and_internal_link_of_every_page_resolves(site):
    _, out, _ = site
    html = out / "html"
    pages = [p for p in html.rglob("*.html") if not {"_static", "_sources"} & set(p.parts)]
    ids, parsed = {}, {}
    for p in pages:
        parsed[p] = Page(p)
        ids[p.resolve()] = parsed[p].ids
    broken = []
    for p, page in parsed.items():
        for src in page.images:
            if not urlsplit(src).scheme and not (p.parent / unquote(src)).exists():
                broken.append(f"{p.relative_to(html)}: image {src}")
        for href in page.links:
            parts = urlsplit(href)
            if parts.scheme or href.startswith(("mailto:", "javascript:")):
                continue
            target = (p.parent / unquote(parts.path)).resolve() if parts.path else p.resolve()
            if not target.exists():
                broken.append(f"{p.relative_to(html)}: link {href}")
            elif parts.fragment and target.suffix == ".html" and parts.fragment not in (
                    ids[target] if target in ids else Page(target).ids):
                broken.append(f"{p.relative_to(html)}: anchor {href}")
    assert not broken, "\n".join(broken)
    notes = parsed[html / "paper_notes" / "vgg.html"]
    assert any(SMALL in src for src in notes.images), notes.images     # the notes' figure shown


def test_a_prose_change_keeps_the_cached_outputs_a_code_or_common_change_does_not():
    nb = small_notebook()
    key = build.cache_key(nb, "smoke", True, "common-1")
    nb.cells[0].source += "\n\nOne more sentence."
    assert build.cache_key(nb, "smoke", True, "common-1") == key
    assert build.cache_key(nb, "smoke", True, "common-2") != key            # common/ changed
    assert build.cache_key(nb, "quick", True, "common-1") != key
    nb.cells[3].source += "\nprint('more')"
    assert build.cache_key(nb, "smoke", True, "common-1") != key
    # the cached outputs go into the new prose
    prose, executed = small_notebook(), small_notebook()
    prose.cells[0].source += "\n\nOne more sentence."
    executed.cells[3].outputs = [nbformat.v4.new_output("stream", text="cached\n")]
    merged = build.with_outputs(prose, executed)
    assert merged.cells[0].source.endswith("One more sentence.")
    assert merged.cells[3].outputs[0].text == "cached\n"


def test_readme_book_command_is_what_the_pages_workflow_runs():
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- book-command -->\s*```(?:bash|sh)?\n(.+?)\n```", readme, re.S)
    assert m, "the README marks the book's command with <!-- book-command -->"
    command = m.group(1).strip()
    assert command.endswith("python book/build.py")
    workflow = (ROOT / ".github" / "workflows" / "book.yml").read_text()
    assert re.search(rf"^\s*run: {re.escape(command)}\s*$", workflow, re.M), \
        "the workflow must run exactly the README's book command"
