"""The course as a whole: notebooks paired with their .py, saved code equal to the notebook cells,
the template every notebook follows, and the files the README promises."""
import json
import re
from pathlib import Path

import jupytext
import pytest

from common import save

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SETUP = (ROOT / "CONTRIBUTING.md").read_text().split("## The set-up cell", 1)[1]
SETUP = SETUP.split("```python\n", 1)[1].split("```", 1)[0].strip()


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


def test_save_marker_collects_cells_in_order(tmp_path):
    nb = {"cells": [
        {"cell_type": "code", "source": "#@save demo\nA = 1\n"},
        {"cell_type": "code", "source": "B = 2\n"},
        {"cell_type": "markdown", "source": "#@save demo\nnot code"},
        {"cell_type": "code", "source": ["#@save demo\n", "C = A + 1\n"]},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "99_demo.ipynb").write_text(json.dumps(nb))
    text = save.render_all(tmp_path)[save.MODELS / "demo.py"]
    assert text.endswith("A = 1\n\n\nC = A + 1\n") and "99_demo.ipynb" in text


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -r requirements.txt" in ci
    m = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```", readme, re.S)
    assert m, "the README marks its test command with <!-- test-command -->"
    test_cmd = m.group(1).strip().splitlines()[-1]
    assert test_cmd in ci


def test_requirements_never_pin_torch():
    reqs = (ROOT / "requirements.txt").read_text()
    for name in ("torch", "torchvision", "torchinfo", "jupyterlab", "matplotlib", "nbval",
                 "jupytext", "tqdm", "pytest", "ipywidgets"):
        assert re.search(rf"^{name}\b", reqs, re.M), name
    assert not re.search(r"^torch(vision)?\s*(==|<)", reqs, re.M), "loose lower bounds only"
