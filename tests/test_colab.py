"""Colab: the course's address written once, the set-up cell, and trainings that survive a
disconnect by keeping runs/ on Google Drive (common/colab.py).

The last test emulates Colab's layout: a fake ``google.colab`` (its ``drive.mount`` links a
temporary "Drive" folder), the notebook's working folder standing for /content, the course
cloned into it by the set-up cell (``git`` clones the repository under test, offline; ``pip`` is
recorded, not run). A training stops after one epoch, the runtime is wiped ("disconnect"), and
the re-run notebook resumes it from the Drive folder."""
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import jupytext
import pytest
import torch

import common
from common import colab

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
GIT = shutil.which("git")          # the real one, found before a test puts a fake first on PATH


def first_code_cell(path):
    return next(c.source for c in jupytext.read(path).cells if c.cell_type == "code")


# --- one address -------------------------------------------------------------------------------

def test_setup_cells_and_badges_are_what_the_script_writes():
    assert colab.rewrite(write=False) == [], "run: python -m common.colab"
    for nb in NOTEBOOKS:
        assert first_code_cell(nb) == colab.setup_cell(), f"{nb.name}: python -m common.colab"


def _course_files(root=ROOT):
    """The course's text files (what the set-up cell clones), without caches and scratch."""
    out = subprocess.run([GIT or "git", "-C", str(root), "ls-files", "--cached", "--others",
                          "--exclude-standard"], capture_output=True, text=True)
    if out.returncode:
        return [p for p in root.rglob("*") if p.suffix in {".py", ".ipynb", ".md", ".txt"}]
    return [root / p for p in out.stdout.splitlines() if (root / p).is_file()]


def foreign_addresses(files, root=ROOT):
    """Where a Colab badge or a set-up cell names another address than common.colab's, and
    where the course's address is written by hand outside common/colab.py."""
    found = []
    setup = colab.setup_cell()
    for path in files:
        if path.suffix not in {".py", ".ipynb", ".md", ".txt", ".toml", ".cfg", ".yml"}:
            continue
        name = path.relative_to(root).as_posix()
        text = path.read_text(errors="replace")
        badges_here = path.suffix == ".md" or path.parent.name == "notebooks"
        if path.suffix == ".ipynb":          # the cells' text, as the notebook shows it
            text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"])
        for url in colab.BADGE.findall(text) if badges_here else []:
            opens = url.split(f"/blob/{colab.BRANCH}/", 1)[-1]
            if url != colab.badge_url(opens) or not (root / opens).is_file():
                found.append(f"{name}: badge {url}")
            if path.parent.name == "notebooks" and opens != f"notebooks/{path.stem}.ipynb":
                found.append(f"{name}: its badge opens {opens}")
        if path.parent.name == "notebooks" and path.suffix in {".py", ".ipynb"}:
            cell = first_code_cell(path)
            for url in re.findall(r"https?://github\.com/[\w.-]+/[\w.-]+", cell):
                if url != colab.clone_url():
                    found.append(f"{name}: the set-up cell clones {url}")
        # What is left once the generated places are removed must not name the course.
        rest = colab.BADGE.sub("", text).replace(setup, "")
        expected = 1 if name == "common/colab.py" else 0
        if rest.count(colab.REPOSITORY) != expected:
            found.append(f"{name}: names {colab.REPOSITORY} {rest.count(colab.REPOSITORY)} times "
                         f"outside a badge or the set-up cell (expected {expected})")
    return found


def test_the_course_address_is_written_once():
    assert colab.setup_cell().count(colab.clone_url()) == 1
    assert foreign_addresses(_course_files()) == []


@pytest.mark.parametrize("edit, rewritten", [
    (lambda t: t.replace(f"github/{colab.REPOSITORY}/blob", "github/someone/fork/blob", 1), True),
    (lambda t: t.replace(f"blob/{colab.BRANCH}/notebooks/00_", "blob/dev/notebooks/00_", 1), True),
    (lambda t: t.replace(colab.clone_url(), "https://github.com/x/y", 1), True),
    (lambda t: t + f"\n# see {colab.clone_url()}\n", False),
], ids=["badge-repository", "badge-branch", "setup-cell", "by-hand"])
def test_another_address_is_caught(tmp_path, edit, rewritten):
    (tmp_path / "notebooks").mkdir()
    py = tmp_path / "notebooks" / "00_toolkit.py"
    original = (ROOT / "notebooks" / "00_toolkit.py").read_text()
    shutil.copy(ROOT / "notebooks" / "00_toolkit.ipynb", tmp_path / "notebooks")
    (tmp_path / "README.md").write_text("")
    py.write_text(original)
    assert foreign_addresses([py], tmp_path) == [] and colab.rewrite(tmp_path, write=False) == []
    py.write_text(edit(original))
    assert py.read_text() != original and foreign_addresses([py], tmp_path)
    # The script mends what it generates; an address written by hand is the test's to report.
    expected = ["notebooks/00_toolkit.py"] if rewritten else []
    assert colab.rewrite(tmp_path, write=False) == expected


def test_the_script_restores_an_old_setup_cell_and_is_idempotent(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    nb = ROOT / "notebooks" / "00_toolkit.py"
    old = nb.read_text().replace(colab.setup_cell(), "# Set-up: an older cell\nimport common")
    assert old != nb.read_text()
    (tmp_path / "notebooks" / "00_toolkit.py").write_text(old)
    (tmp_path / "README.md").write_text("[badge](https://colab.research.google.com/github/old/"
                                        "name/blob/master/notebooks/00_toolkit.ipynb)\n")
    synced = []
    monkeypatch.setattr(colab, "_sync", synced.append)     # jupytext --sync: not needed here
    assert colab.rewrite(tmp_path) == ["notebooks/00_toolkit.py", "README.md"]
    assert (tmp_path / "notebooks" / "00_toolkit.py").read_text() == nb.read_text()
    assert synced == [tmp_path / "notebooks" / "00_toolkit.py"]
    assert colab.badge_url("notebooks/00_toolkit.ipynb") in (tmp_path / "README.md").read_text()
    assert colab.rewrite(tmp_path) == [] and len(synced) == 1
    # A notebook without a set-up cell gets one, before its first code cell, which stays.
    new = nb.read_text().replace(colab.setup_cell() + "\n\n# %%\n", "")
    assert new.count("# %%\n") == nb.read_text().count("# %%\n") - 1
    (tmp_path / "notebooks" / "00_toolkit.py").write_text(new)
    assert colab.rewrite(tmp_path) == ["notebooks/00_toolkit.py"]
    assert (tmp_path / "notebooks" / "00_toolkit.py").read_text() == nb.read_text()


# --- what Colab installs ----------------------------------------------------------------------

def colab_requirements():
    """The requirement names of requirements.txt above its NOT_ON_COLAB line."""
    text = (ROOT / "requirements.txt").read_text()
    assert text.count(f"\n{colab.NOT_ON_COLAB}") == 1, f"one line starts {colab.NOT_ON_COLAB!r}"
    above = text.split(f"\n{colab.NOT_ON_COLAB}")[0]
    return [re.split(r"[<>=!~ ;\[]", line)[0] for line in above.splitlines()
            if line.strip() and not line.startswith("#")]


#: Imported, but not ours to install: the course itself, Colab's own module, IPython (every
#: Jupyter kernel has it) and PIL (a dependency of torchvision).
PROVIDED = {"common", "google", "IPython", "PIL"}
DISTRIBUTION = {"sklearn": "scikit-learn"}


def test_colab_installs_every_package_the_notebooks_and_common_import():
    imported = set()
    for path in [*(ROOT / "notebooks").glob("*.py"), *(ROOT / "common").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    needed = {DISTRIBUTION.get(m, m) for m in imported - PROVIDED - set(sys.stdlib_module_names)}
    missing = needed - set(colab_requirements())
    assert not missing, (f"{sorted(missing)}: add to requirements.txt above the line "
                         f"{colab.NOT_ON_COLAB!r}, so that Colab's set-up cell installs them")
    # Colab's own Jupyter stays: what would replace it is below the line.
    assert not {"jupyterlab", "ipykernel", "ipywidgets"} & set(colab_requirements())


# --- Colab's GPUs -------------------------------------------------------------------------------

@pytest.mark.parametrize("capability, emulated, expected", [
    ((7, 5), True, "float16"),      # T4: torch.cuda.is_bf16_supported() says True (emulation)
    ((7, 0), False, "float16"),     # V100
    ((8, 0), True, "bfloat16"),     # A100
    ((8, 9), True, "bfloat16"),     # L4
])
def test_fp16_with_a_scaler_on_a_gpu_without_native_bf16(monkeypatch, capability, emulated,
                                                         expected):
    from common import train
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device=None: types.SimpleNamespace(major=capability[0],
                                                                  minor=capability[1]))
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda device: emulated,
                        raising=False)
    dtype = train.amp_dtype(torch.device("cuda"), True)
    assert str(dtype) == f"torch.{expected}"
    scaled = "gradient scaling" in train.precision_text(torch.device("cuda"), True, dtype)
    assert scaled == (expected == "float16")


# --- the disconnect note above every training cell ---------------------------------------------

def _calls(node):
    return [n for n in ast.walk(node) if isinstance(n, ast.Call)]


def _name(call):
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


def _trains(node):
    """Whether code (a function, or a cell's code outside functions) trains a run that resumes:
    common.train_run (which always does), or common.fit(..., resume=True) with the run folder
    from common.run_dir_for."""
    calls = _calls(node)
    return any(_name(c) == "train_run" for c in calls) or (
        any(_name(c) == "fit" and any(k.arg == "resume" and getattr(k.value, "value", 0) is True
                                      for k in c.keywords) for c in calls)
        and any(_name(c) == "run_dir_for" for c in calls))


def training_cells(nb):
    """(markdown above, code) of every cell that trains a resumable run, directly or through a
    function of the notebook that does."""
    trees = [(i, ast.parse(c.source)) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    functions = {f.name for _, t in trees for f in ast.walk(t)
                 if isinstance(f, ast.FunctionDef) and _trains(f)}
    found = []
    for i, tree in trees:
        outside = ast.Module([s for s in tree.body if not isinstance(s, ast.FunctionDef)], [])
        if _trains(outside) or any(isinstance(c.func, ast.Name) and c.func.id in functions
                                   for c in _calls(outside)):
            above = next(c.source for c in reversed(nb.cells[:i]) if c.cell_type == "markdown")
            found.append((above, nb.cells[i].source))
    return found


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.name)
def test_training_cells_say_how_to_continue_after_a_disconnect(ipynb):
    note = " ".join(colab.RESUME_NOTE.split())
    for above, code in training_cells(jupytext.read(ipynb)):
        assert note in " ".join(above.split()), (
            f"{ipynb.name}: the markdown above this training cell lacks common.colab.RESUME_NOTE:"
            f"\n{code[:300]}")


def test_training_cells_are_found():
    """The detector finds the trainings it must (and the notebook 00 demonstration, which restarts
    its run afresh on purpose, is not one)."""
    counts = {nb.stem: len(training_cells(jupytext.read(nb))) for nb in NOTEBOOKS}
    assert counts.get("00_toolkit") == 0
    assert all(n >= 1 for name, n in counts.items() if name != "00_toolkit"), counts


# --- keep_on_drive, in this process ------------------------------------------------------------

@pytest.fixture
def fake_colab(tmp_path, monkeypatch):
    """google.colab importable, its drive.mount linking tmp/gdrive; the working folder
    tmp/content stands for /content."""
    gdrive = tmp_path / "gdrive"
    (gdrive / "MyDrive").mkdir(parents=True)
    content = tmp_path / "content"
    content.mkdir()
    mounts = []

    def mount(mountpoint, **kwargs):
        mounts.append(mountpoint)
        os.symlink(gdrive, mountpoint)

    google = types.ModuleType("google")
    google.colab = types.ModuleType("google.colab")
    google.colab.drive = types.SimpleNamespace(mount=mount)
    for name, module in (("google", google), ("google.colab", google.colab),
                         ("google.colab.drive", google.colab.drive)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.chdir(content)
    monkeypatch.setenv("IMAGENET5_RUNS", str(tmp_path / "before"))
    monkeypatch.delenv("IMAGENET5_DATA", raising=False)
    return types.SimpleNamespace(gdrive=gdrive, content=content, mounts=mounts)


def test_keep_on_drive_is_off_by_default_and_touches_nothing(fake_colab, capsys):
    assert "\nKEEP_ON_DRIVE = False\n" in colab.setup_cell()
    assert colab.keep_on_drive(False) is None
    assert fake_colab.mounts == [] and not (fake_colab.content / "drive").exists()
    assert common.runs_dir() == fake_colab.content.parent / "before"
    assert "KEEP_ON_DRIVE = True" in capsys.readouterr().out     # the hint, on Colab


def test_keep_on_drive_moves_runs_and_data_to_drive(fake_colab, capsys):
    where = colab.keep_on_drive(True)
    drive = fake_colab.content / "drive" / "MyDrive" / "imagenet5"
    assert fake_colab.mounts == [str(fake_colab.content / "drive")]
    assert where == drive and common.runs_dir("x") == drive / "runs" / "x"
    assert common.data_dir() == drive / "data"
    assert (fake_colab.gdrive / "MyDrive" / "imagenet5" / "runs").is_dir()
    assert "re-run the notebook" in capsys.readouterr().out
    colab.keep_on_drive(True)                                  # the set-up cell re-run
    assert len(fake_colab.mounts) == 1
    colab.keep_on_drive(False)                                 # switched off again
    assert common.runs_dir() == fake_colab.content.parent / "before"
    assert "IMAGENET5_DATA" not in os.environ


def test_keep_on_drive_off_colab_does_nothing(fake_colab, monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "google.colab")
    assert colab.keep_on_drive(True) is None and fake_colab.mounts == []
    assert "Colab only" in capsys.readouterr().out
    assert common.runs_dir() == fake_colab.content.parent / "before"


def test_keep_on_drive_says_what_to_do_when_drive_does_not_appear(fake_colab, monkeypatch):
    monkeypatch.setattr(sys.modules["google.colab"].drive, "mount", lambda *a, **k: None)
    with pytest.raises(RuntimeError, match="allow access to Drive, or set KEEP_ON_DRIVE = False"):
        colab.keep_on_drive(True)
    assert common.runs_dir() == fake_colab.content.parent / "before"


# --- the set-up cell, run as on Colab and elsewhere ---------------------------------------------

FAKE_GIT = """\
import json, os, subprocess, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(["git", *args]) + "\\n")
if args[:1] == ["clone"]:       # offline: clone the repository under test instead of GitHub
    sys.exit(subprocess.run([os.environ["REAL_GIT"], "clone", "-q", os.environ["FAKE_ORIGIN"],
                             args[-1]]).returncode)
os.execv(os.environ["REAL_GIT"], [os.environ["REAL_GIT"], *args])
"""
FAKE_PIP = """\
import json, os, sys
args = sys.argv[1:]
with open(args[-1]) as f:           # the requirements it was given (-r FILE, last)
    wanted = [line.split(">=")[0] for line in f.read().splitlines() if line and line[0] != "#"]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(["pip", *args, wanted]) + "\\n")
"""
FAKE_DRIVE = """\
import os
def mount(mountpoint, **kwargs):
    os.symlink(os.environ["FAKE_DRIVE"], mountpoint)
    print("Mounted at", mountpoint)
"""


@pytest.fixture
def tools(tmp_path, monkeypatch):
    """Fake git and pip on PATH, recording their calls in tmp/log."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name, source in (("git", FAKE_GIT), ("pip", FAKE_PIP)):
        (bin_ / name).write_text(f"#!{sys.executable}\n{source}")
        (bin_ / name).chmod(0o755)
    log = tmp_path / "log"
    log.touch()
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("REAL_GIT", GIT or "git")
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    return lambda: [json.loads(line) for line in log.read_text().splitlines()]


def test_setup_cell_off_colab_installs_nothing(tools, monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(ROOT / "notebooks")
    namespace = {}
    exec(first_code_cell(NOTEBOOKS[0]), namespace)
    assert tools() == [] and sys.path[0] == str(ROOT)
    assert namespace["common"] is common and namespace["KEEP_ON_DRIVE"] is False
    assert capsys.readouterr().out == ""                      # silent off Colab, switch off


RUNTIME = """\
import json, sys
import google.colab                      # Colab's kernel imports it at start
setup = {setup!r}
switched = setup.replace("\\nKEEP_ON_DRIVE = False\\n", "\\nKEEP_ON_DRIVE = True\\n")
assert switched.count("KEEP_ON_DRIVE = True") == 2, "the switch is one line of the set-up cell"
exec(setup)                              # as opened: the switch off
off = str(common.runs_dir())
exec(switched)                           # the learner switches it on and re-runs the cell
exec(switched)                           # ... and again (the same runtime: nothing is redone)
import torch                             # a small random data set: the test is about resuming
from common.data import Split
g = torch.Generator().manual_seed(0)
split = lambda n: Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                        torch.randint(0, 10, (n,), generator=g))
data = common.DataBundle("random", tuple("0123456789"), split(128), split(64), split(64),
                         mean=torch.full((3,), 0.5), std=torch.full((3,), 0.3), smoke=True)
recipe = common.Recipe(epochs=2, batch_size=64, lr=0.05)
model = common.get_model("cifar_baseline", num_classes=data.num_classes)
run_dir = common.run_dir_for("colab-test", "cifar_baseline", recipe, data)
history = common.fit(model, data, recipe, run_dir=run_dir, resume=True, progress=False,
                     stop_after_epochs={stop})
print(json.dumps({{"common": common.__file__, "off": off, "run_dir": str(run_dir),
                  "data_dir": str(common.data_dir()),
                  "epochs": history["epoch"]}}))
"""


def test_colab_training_resumes_from_drive_after_a_disconnect(tmp_path, tools):
    """A notebook's set-up cell, on emulated Colab: the course cloned by it, a training stopped
    after one epoch, the runtime wiped; the re-run resumes from the "Drive" folder."""
    git = GIT
    if git is None or subprocess.run([git, "-C", str(ROOT), "rev-parse"],
                                     capture_output=True).returncode:
        pytest.skip("needs git and the course as a git checkout")
    origin = tmp_path / "origin"             # the repository under test, as committed + edited
    subprocess.run([git, "clone", "-q", str(ROOT), str(origin)], check=True)
    for path in _course_files():
        target = origin / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    subprocess.run([git, "-C", str(origin), "add", "-A"], check=True)
    subprocess.run([git, "-C", str(origin), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-q", "--allow-empty", "-m", "working tree"], check=True)
    site = tmp_path / "site"
    (site / "google" / "colab").mkdir(parents=True)
    (site / "google" / "__init__.py").write_text("")
    (site / "google" / "colab" / "__init__.py").write_text("")
    (site / "google" / "colab" / "drive.py").write_text(FAKE_DRIVE)
    gdrive = tmp_path / "gdrive"
    (gdrive / "MyDrive").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGENET5_")}
    env.update(PYTHONPATH=str(site), IMAGENET5_SMOKE="1", IMAGENET5_OFFLINE="1",
               OMP_NUM_THREADS="1", FAKE_ORIGIN=str(origin), FAKE_DRIVE=str(gdrive))
    setup = first_code_cell(ROOT / "notebooks" / "02_resnet.ipynb")
    content = tmp_path / "content"           # /content: lost at every disconnect

    def runtime(stop):
        shutil.rmtree(content, ignore_errors=True)
        content.mkdir()
        out = subprocess.run([sys.executable, "-c", RUNTIME.format(setup=setup, stop=stop)],
                             cwd=content, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
        return out.stdout, json.loads(out.stdout.strip().splitlines()[-1])

    url = colab.clone_url()
    out, first = runtime(stop=1)
    clone = content / "imagenet5"
    assert first["common"] == str(clone / "common" / "__init__.py")   # the clone, not ours
    assert first["off"] == str(clone / "runs")                         # switch off: in the runtime
    drive_runs = content / "drive" / "MyDrive" / "imagenet5" / "runs"
    assert Path(first["run_dir"]).parent == drive_runs / "colab-test"
    assert first["data_dir"] == str(drive_runs.parent / "data")
    assert first["epochs"] == [1]
    assert tools() == [["git", "clone", "-q", "-b", colab.BRANCH, url, "imagenet5"],
                       ["pip", "install", "-q", "-r", "/dev/stdin", colab_requirements()]]
    assert {"torch", "torchinfo", "timm"} <= set(colab_requirements())
    checkpoint = gdrive / "MyDrive" / "imagenet5" / "runs" / "colab-test" / \
        Path(first["run_dir"]).name / "checkpoint.pt"
    assert checkpoint.is_file()

    out, second = runtime(stop=None)         # disconnected: a fresh runtime, the same Drive
    assert second["run_dir"] == first["run_dir"]
    assert f"resuming from {drive_runs}" in out and "after epoch 1" in out
    assert second["epochs"] == [1, 2]                                   # continued, not restarted
    assert [c[:2] for c in tools()] == [["git", "clone"], ["pip", "install"]] * 2
