"""The course as a whole: notebooks paired with their .py, saved code equal to the notebook cells,
the template every notebook follows, and the files the README promises."""
import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

from common import save
from common.colab import setup_cell

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SETUP = setup_cell()        # the canonical set-up cell (common/colab.py)


def cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_there_are_notebooks():
    assert any(p.name.startswith("00_") for p in NOTEBOOKS)


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_and_its_py_are_in_sync(ipynb):
    py = ipynb.with_suffix(".py")
    assert py.exists(), f"{py.name} is missing: run jupytext --sync {ipynb.name}"
    a, b = jupytext.read(ipynb), jupytext.read(py)
    assert cells(a) == cells(b), f"run: jupytext --sync {py.relative_to(ROOT)}"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_template(ipynb):
    raw = json.loads(ipynb.read_text())
    assert raw["metadata"]["kernelspec"]["name"] == "python3"   # JupyterLab starts it unasked
    assert all(not c.get("outputs") for c in raw["cells"] if c["cell_type"] == "code"), \
        "commit notebooks without outputs"
    nb = jupytext.read(ipynb)
    first = nb.cells[0].source
    assert first.startswith("# ") and "colab.research.google.com/github/" in first
    assert f"blob/main/notebooks/{ipynb.name}" in first
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code[0].strip() == SETUP, "the first code cell is the course's set-up cell"


def test_saved_code_equals_the_notebook_cells():
    found = save.diffs()
    assert not found, "run `python -m common.save`:\n" + "\n".join(found)


def test_every_saved_file_has_a_notebook():
    rendered = set(save.render_all())
    for f in (ROOT / "common" / "models").glob("*.py"):
        if f.name not in ("__init__.py", "registry.py"):
            assert f in rendered, f"{f.name} is not saved from any notebook"


def _notebook(folder, cells, name="99_demo.ipynb"):
    """A minimal .ipynb of (cell_type, source) pairs; returns its path."""
    nb = {"cells": [{"cell_type": t, "source": src, "metadata": {}} for t, src in cells],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = folder / name
    path.write_text(json.dumps(nb))
    return path


TITLE = ("# 99 · Demo: A Paper\n\nA. Author, B. Author. *A Paper About\nDemos.* 2024. "
         "[arXiv:2401.00001](https://arxiv.org/abs/2401.00001)\n\n[![Open In Colab](badge)](link)"
         "\n\nSee also [arXiv:9999.99999](https://arxiv.org/abs/9999.99999).")


def test_save_marker_collects_cells_in_order(tmp_path):
    _notebook(tmp_path, [
        ("markdown", TITLE),
        ("code", "#@save demo\nimport math\n"),
        ("code", "#@save demo\nA = 1\n"),
        ("code", "B = 2\n"),
        ("markdown", "#@save demo\nnot code"),
        ("code", ["#@save demo\n", "C = A + 1\n"]),
    ])
    text = save.render_all(tmp_path)[save.MODELS / "demo.py"]
    assert text.index("import math") < text.index("A = 1") < text.index("C = A + 1")
    assert "B = 2" not in text and "not code" not in text
    assert text.startswith("# Generated from notebooks/99_demo.ipynb by `python -m common.save`: "
                           "do not edit here.")


def _module(text):
    """Run a generated file's text as a module; its namespace."""
    namespace = {}
    exec(compile(text, "generated", "exec"), namespace)
    return namespace


def test_generated_docstring_all_and_provenance(tmp_path):
    nb = _notebook(tmp_path, [
        ("markdown", TITLE),
        ("markdown", "## 1 · Reading"),
        ("code", "#@save demo\nimport math\nfrom typing import Sequence as _Seq\n"),
        ("markdown", "## 2 · Build it: in parts\n\nText.\n\n### The first part: a function"),
        ("code", "#@save demo\n# A comment that stays with f.\ndef f(x):\n    return math.sqrt(x)"
                 "\n\n\n_private = 1\nLIMIT, WIDTH = 3, 4\n"),
        ("markdown", "```\n## not a heading: fenced\n```"),
        ("code", "f(4)\n"),
        ("markdown", "## 3 · More"),
        ("code", "#@save demo\nclass Thing:\n    pass\n\n\n@staticmethod\ndef g():\n"
                 "    pass\n\n\nLIMIT = 5\n"),
    ])
    text = save.render_all(tmp_path)[save.MODELS / "demo.py"]
    ns = _module(text)
    assert ns["__doc__"].startswith("99 · Demo: A Paper\n\n")
    assert " ".join(ns["__doc__"].split()[5:]).startswith(
        "A. Author, B. Author. A Paper About Demos. 2024. arXiv:2401.00001 "
        "(https://arxiv.org/abs/2401.00001)")
    assert "9999.99999" not in ns["__doc__"]                     # only the first arXiv paragraph
    assert ns["__all__"] == ["f", "LIMIT", "WIDTH", "Thing", "g"]
    imported = {"math"}
    public = {n for n in ns if not n.startswith("_") and n not in imported}
    assert set(ns["__all__"]) == public
    lines = text.splitlines()
    where = "# Defined in notebooks/99_demo.ipynb, section "
    above = {lines[i + 1].split("(")[0].split(" =")[0]: line[len(where):]
             for i, line in enumerate(lines) if line.startswith(where)}
    assert above == {
        "# A comment that stays with f.": "2 › The first part",     # the ### under the ##
        "_private": "2 › The first part",
        "LIMIT, WIDTH": "2 › The first part",
        "class Thing:": "3 · More",                             # a new ## resets the ###
        "@staticmethod": "3 · More",                            # above the decorator
        "LIMIT": "3 · More",
    }
    assert text.index("__all__") < text.index(where)            # after the imports
    raw = json.loads(nb.read_text())
    raw["cells"][0]["source"] = TITLE.replace("99 · Demo: A Paper", "99 · Demo: Another Title")
    nb.write_text(json.dumps(raw))
    doc = _module(save.render_all(tmp_path)[save.MODELS / "demo.py"])["__doc__"]
    assert doc.startswith("99 · Demo: Another Title\n") and doc != ns["__doc__"]


@pytest.mark.parametrize("first, message", [
    ('"""A docstring."""\nimport math', "module docstring"),
    ("import math\n__all__ = ['f']", "__all__"),
    ("import math\nX = 1", "code other than imports \\(line 2"),
])
def test_the_first_saved_cell_holds_only_imports(tmp_path, first, message):
    _notebook(tmp_path, [("markdown", TITLE), ("code", "#@save demo\n" + first)])
    with pytest.raises(ValueError, match=r"99_demo.ipynb, #@save demo: the first #@save cell "
                                         r"holds only the imports.*" + message):
        save.render_all(tmp_path)


def test_a_later_cell_may_not_write_its_own_all(tmp_path):
    _notebook(tmp_path, [("markdown", TITLE), ("code", "#@save demo\nimport math"),
                         ("code", "#@save demo\n__all__ = ['x']\nx = 1")])
    with pytest.raises(ValueError, match="remove __all__"):
        save.render_all(tmp_path)


@pytest.mark.parametrize("path", sorted(save.render_all()), ids=lambda p: p.name)
def test_saved_files_export_exactly_their_public_names(path):
    module = importlib.import_module(f"common.models.{path.stem}")
    tree = ast.parse(path.read_text())
    imported = {(a.asname or a.name).split(".")[0] for node in tree.body
                if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
    public = {n for n in vars(module) if not n.startswith("_")} - imported
    assert len(module.__all__) == len(set(module.__all__)) and set(module.__all__) == public
    source = path.read_text().split("notebooks/")[1].split()[0]
    notebook = jupytext.read(ROOT / "notebooks" / source)
    headings = [line.lstrip("#").strip() for c in nb_cells(notebook, "markdown")
                for line in c.splitlines() if line.startswith("## ")]
    subheadings = [line[4:] for c in nb_cells(notebook, "markdown") for line in c.splitlines()
                   if line.startswith("### ")]
    for line in path.read_text().splitlines():
        if line.startswith("# Defined in notebooks/"):
            section = line.split(", section ", 1)[1]
            number, sep, sub = section.partition(" › ")
            if sep:
                assert any(h.startswith(number + " · ") for h in headings), line
                assert any(s.startswith(sub) for s in subheadings), line
            else:
                assert any(h.startswith(section) for h in headings), line


def nb_cells(notebook, kind):
    return [c.source for c in notebook.cells if c.cell_type == kind]


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -r requirements.txt" in ci
    m = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```", readme, re.S)
    assert m, "the README marks its test command with <!-- test-command -->"
    test_cmd = m.group(1).strip().splitlines()[-1]
    assert test_cmd in ci


def test_readme_links_every_docs_page_and_every_link_resolves():
    """The README keeps the first screens for newcomers and links each reference page of docs/
    in one line; a page nobody links, or a link to a file that is gone, fails."""
    readme = (ROOT / "README.md").read_text()
    pages = sorted((ROOT / "docs").glob("*.md"))
    linked = set(re.findall(r"\]\(docs/([\w.-]+\.md)\)", readme))
    assert pages and linked == {p.name for p in pages}
    for page in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *pages]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_requirements_never_pin_torch():
    reqs = (ROOT / "requirements.txt").read_text()
    for name in ("torch", "torchvision", "torchinfo", "jupyterlab", "matplotlib", "nbval",
                 "jupytext", "tqdm", "pytest", "ipywidgets"):
        assert re.search(rf"^{name}\b", reqs, re.M), name
    assert not re.search(r"^torch(vision)?\s*(==|<)", reqs, re.M), "loose lower bounds only"


# --- the package's rooms: lint, no import circle, imports inside functions -----------------------

def test_ruff_finds_nothing():
    """The rules pyproject.toml's [tool.ruff] sets (pycodestyle at 99 columns, pyflakes, bugbear,
    blind except, import order) hold for common/, the tests, conftest.py, book/ and tools/."""
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "common", "tests",
                           "conftest.py", "book", "tools"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "No module named ruff" not in done.stderr, "pip install -r requirements.txt (ruff)"
    assert done.returncode == 0, done.stdout + done.stderr


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _run_at_import(tree: ast.AST):
    """The nodes Python runs when it imports the module: all but the bodies of functions."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        yield node
        yield from _run_at_import(node)


def _imports_at_import(path: Path, modules: set[str]) -> set[str]:
    """The modules of ``common`` that ``path`` imports when it is imported: ``from X import y``
    counts as X.y where that is a module, else as X."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _run_at_import(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                      for a in node.names}
    return {m for m in found if m in modules and m != name}


def common_import_graph() -> dict[str, set[str]]:
    paths = sorted((ROOT / "common").rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports_at_import(p, modules) for p in paths}


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` (a path that comes back to its start), or [] when there is none."""
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        state[node] = "done"
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_cycle_finder_finds_a_cycle():
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert import_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_import_circle_inside_common():
    """Each room of common/ imports only rooms below it when it is imported (CONTRIBUTING.md's
    layout, lowest first): no module imports one that imports it back."""
    graph = common_import_graph()
    assert "common.runtime" in graph and graph["common.runtime"] == set()    # the lowest room
    assert "common.train.recipe" in graph["common.runs"]                      # the walk sees edges
    cycle = import_cycle(graph)
    assert not cycle, "import circle: " + " -> ".join(cycle)


#: What a function of common/ may import inside its body: optional or heavy packages that
#: ``import common`` does not pay for, each import with a comment saying why.
OPTIONAL_IMPORTS = ("matplotlib", "torchinfo", "sklearn", "IPython", "tqdm", "torchvision", "PIL",
                    "timm", "google.colab", "torch.distributed._tools")


def test_imports_inside_functions_are_only_optional_heavy_packages_and_say_why():
    found = []
    for path in sorted((ROOT / "common").rglob("*.py")):
        if "exercises" in path.parts:          # being split in its own change
            continue
        lines = path.read_text().splitlines()
        for fn in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                names = [a.name for a in node.names] if isinstance(node, ast.Import) \
                    else [node.module or ""]
                said = "#" in lines[node.lineno - 1] or "#" in lines[node.lineno - 2]
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                if getattr(node, "level", 0) or not all(n.startswith(OPTIONAL_IMPORTS)
                                                        for n in names):
                    found.append(f"{where}: {names} inside a function: import it at the top")
                elif not said:
                    found.append(f"{where}: {names}: say why it is imported here (a comment)")
    assert not found, "\n".join(found)


NOTEBOOK_SECTION = re.compile(r"notebook (\d\d)(?:'s)?[,:]? (?:section|sec\.) (\d+(?:\.\d+)?)")


def _sections(number: str) -> set:
    """The numbered sections of notebook ``number``: "## 6 · ..." is 6, "### 6.2 ..." is 6.2."""
    (path,) = (ROOT / "notebooks").glob(f"{number}_*.py")
    return set(re.findall(r"^# #{2,3} (\d+(?:\.\d+)?)\b", path.read_text(), re.M))


def test_a_reference_to_another_notebooks_section_names_one_it_has():
    """"notebook 05, section 6.2" must point at a numbered section notebook 05 has: rewrites
    renumber sections, and a paper's section written as a notebook's ("notebook 05, sec. 3.2"
    for the MobileNetV2 paper's) sends the reader to the wrong place."""
    sources = [*ROOT.glob("notebooks/*.py"), *ROOT.glob("paper_notes/*.md"),
               *ROOT.glob("docs/*.md"), ROOT / "README.md", *ROOT.glob("common/**/*.py")]
    wrong = [f"{p.relative_to(ROOT)}: notebook {nb}, section {sec}"
             for p in sources for nb, sec in NOTEBOOK_SECTION.findall(
                 re.sub(r"\s*\n\s*#?\s*", " ", p.read_text()))
             if sec not in _sections(nb)]
    assert not wrong, "\n".join(wrong)
