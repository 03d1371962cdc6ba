"""Test-wide settings. The notebook kernels that nbval starts inherit this environment."""
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent

# Smoke mode: tiny data and epochs inside `common`, so every notebook runs in seconds on a CPU.
os.environ["IMAGENET5_SMOKE"] = "1"
# Tests never touch the network: no download is attempted, the offline dataset is used.
os.environ["IMAGENET5_OFFLINE"] = "1"
# Checkpoints and histories of the tests go to a scratch folder, not into the repository.
os.environ.setdefault("IMAGENET5_RUNS", tempfile.mkdtemp(prefix="imagenet5-runs-"))
# The suite runs in two pytest-xdist workers (pyproject.toml: `-n 2 --dist loadfile`, a whole
# file or notebook to a worker): each worker, and each notebook kernel it starts, computes on one
# thread, so two workers share two cores without oversubscribing them (the times, measured:
# docs/speed.md). `python -m pytest -n 0` runs in one process.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
# The notebook kernels import `common` from this checkout.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


import pytest  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A notebook cell that writes to stderr (a warning, a text progress bar because ipywidgets is
    missing) fails: opened in JupyterLab, every notebook must run without warnings."""
    outcome = yield
    report = outcome.get_result()
    if call.when == "call" and report.passed and type(item).__name__ == "IPyNbCell":
        errs = [o.get("text", "") for o in (item.test_outputs or [])
                if o.get("output_type") == "stream" and o.get("name") == "stderr"]
        if errs:
            report.outcome = "failed"
            report.longrepr = (f"{item.name} wrote to stderr (warnings must be fixed, not "
                               "hidden):\n" + "".join(errs)[:2000])
