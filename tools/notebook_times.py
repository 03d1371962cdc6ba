"""How long each notebook takes, top to bottom, as a learner runs it: one command.

    python tools/notebook_times.py                         # every notebook, quick mode, offline
    python tools/notebook_times.py notebooks/03_densenet.ipynb --mode smoke
    python tools/notebook_times.py --update-docs           # and rewrite docs/settings.md's table
    python tools/notebook_times.py --probe 2 notebooks/06_efficientnet.ipynb   # a prediction

Each notebook runs in its own fresh kernel, one after another, as ``jupyter nbconvert --execute``
runs it, with ``book/build.py``'s executor (the rendered course's, so there is one way to run a
notebook): in the mode asked for (quick by default), offline (the digits set) unless
``--online``, with a fresh runs folder (nothing reused from an earlier notebook or sitting),
threads left at torch's default (recorded). It records every cell's wall time (nbclient's
timestamps), errors and stderr outputs, the machine (``book/build.py``'s ``machine``) and the
1-minute load average sampled every few seconds: a notebook during which the load went above
the kernel's threads + 0.5 is marked **shared**, so that a busy machine's number cannot pass for
a quiet one. It writes ``runs/notebook-times/<time>.json`` and prints a Markdown table;
``--update-docs`` puts each notebook's row into the table between the markers in
docs/settings.md (the notebooks not run keep their rows). Exit status 1 when a notebook errs or
takes more than ``--budget`` seconds (default 600: issue 32's ten minutes). Each measured
notebook also goes into the book's cache (``book/_build/executed/<mode>/``, keyed as
``book/build.py`` keys it), so that ``python book/build.py`` afterwards renders the measured runs
instead of running every notebook again: one quiet run measures the course and fills the site.

``--probe N`` predicts instead of measuring, for a shared machine or a first look: every
``fit`` call trains at most N epochs and records what the whole call would have done (planned
epochs, the seconds of its epochs); a notebook's predicted time is its measured time plus, per
run, the epochs left times the mean of its epochs after the first (with ``--probe 1``, the
first, warm-up included: an upper bound; a run resumed later in the same notebook is counted
once). Predictions are labelled as such and never go into the docs.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import re
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "settings.md"
START, END = "<!-- notebook-times:start -->", "<!-- notebook-times:end -->"
HEADER = ("| notebook | mode | seconds | slowest cells (s) | machine | threads | load (max) | "
          "quiet? | measured |\n|---|---|---:|---|---|---:|---:|---|---|")


def _build():
    """book/build.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("_book_build", ROOT / "book" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: Inserted after the set-up cell with --probe: every fit trains at most $PROBE_EPOCHS epochs and
#: what it planned and what its epochs cost go to $PROBE_OUT (JSON), after each call.
PROBE = r'''
import json as _json, os as _os, time as _time
import common as _common, common.runs as _runs
from common.train import loop as _loop
_PROBE, _LIMIT, _marks = [], int(_os.environ["PROBE_EPOCHS"]), []
_real_fit, _real_epoch = _loop.fit, _loop._Report.epoch

def _epoch(self, history, epochs):
    _marks.append(_time.perf_counter())
    return _real_epoch(self, history, epochs)

def _fit(model, data, recipe, **kw):
    smoke, quick = _loop.modes(kw.get("smoke"), kw.get("quick"))
    planned = _loop._plan_epochs(recipe, len(data.train), smoke, quick,
                                 _loop.check_quick_images(kw.get("quick_images")))
    asked = kw.get("stop_after_epochs")
    kw["stop_after_epochs"] = _LIMIT if asked is None else min(asked, _LIMIT)
    _marks.clear()
    start = _time.perf_counter()
    h = _real_fit(model, data, recipe, **kw)
    end = _time.perf_counter()
    # a run stopped by the cell itself (asked) ends where it asked; a probe-stopped one would go on
    goal = planned if asked is None else min(planned, len(h["epoch"]) - len(_marks) + asked)
    _PROBE.append({"model": h["model"], "run_dir": str(kw.get("run_dir") or ""),
                   "planned_epochs": planned, "goal_epochs": goal, "epochs_done": len(h["epoch"]),
                   "epoch_seconds": [b - a for a, b in zip([start] + _marks, _marks)],
                   "seconds": end - start, "diverged": bool(h.get("diverged"))})
    with open(_os.environ["PROBE_OUT"], "w") as f:
        _json.dump(_PROBE, f)
    return h

_loop._Report.epoch = _epoch
_common.fit = _common.train.fit = _loop.fit = _runs.fit = _fit
'''


def _setup_index(nb) -> int:
    return next(i for i, c in enumerate(nb.cells)
                if c.cell_type == "code" and "import common" in c.source)


def predicted_seconds(measured: float, fits: list[dict]) -> tuple[float, list[dict]]:
    """The notebook's time had every run trained its planned epochs: ``measured`` plus, per run
    (the first call of a run folder; later calls resume it), the epochs left times the mean of
    its epochs after the first (the first carries the set-up and warm-up)."""
    seen, extra, rows = set(), 0.0, []
    for f in fits:
        left = max(0, f["goal_epochs"] - f["epochs_done"]) if not f["diverged"] else 0
        if f["run_dir"] and f["run_dir"] in seen:
            left = 0
        seen.add(f["run_dir"])
        secs = f["epoch_seconds"]
        per_epoch = (sum(secs[1:]) / len(secs[1:])) if len(secs) > 1 else (secs or [0.0])[0]
        extra += left * per_epoch
        rows.append({**f, "epochs_left": left, "predicted": f["seconds"] + left * per_epoch})
    return measured + extra, rows


def cell_times(nb) -> list[dict]:
    """Each code cell's wall time from nbclient's timestamps, its first line and its errors;
    ``cell``: its index in the notebook as saved (the probe's cell not counted)."""
    out = []
    cells = [c for c in nb.cells if not c.metadata.get("probe")]
    for i, c in enumerate(cells):
        if c.cell_type != "code":
            continue
        ex = c.metadata.get("execution", {})
        try:
            t0, t1 = (dt.datetime.fromisoformat(ex[k].replace("Z", "+00:00"))
                      for k in ("iopub.execute_input", "shell.execute_reply"))
            seconds = (t1 - t0).total_seconds()
        except KeyError:
            seconds = None
        outputs = c.get("outputs", [])
        out.append({"cell": i, "seconds": seconds,
                    "first_line": next((s for s in c.source.splitlines() if s.strip()), "")[:100],
                    "errors": [o.get("ename") for o in outputs if o.get("output_type") == "error"],
                    "stderr": sum(o.get("output_type") == "stream" and o.get("name") == "stderr"
                                  for o in outputs)})
    return out


class LoadSampler:
    """The 1-minute load average, sampled every ``every`` seconds while the block runs."""

    def __init__(self, every: float = 5.0):
        self.every, self.samples, self._stop = every, [], threading.Event()

    def __enter__(self):
        self.samples.append(os.getloadavg()[0])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])


def to_book_cache(build, path: Path, nb, executed, record: dict, out: Path) -> Path:
    """Store a measured run where ``book/build.py`` looks for it (``out``/executed/<mode>/, with
    the cache key of ``nb``'s code cells and ``common/``), so that the site's build after a
    measurement renders these outputs instead of running every notebook a second time."""
    import nbformat

    folder = out / "executed" / record["mode"]
    folder.mkdir(parents=True, exist_ok=True)
    key = build.cache_key(nb, record["mode"], record["offline"],
                          build._tree_digest(ROOT / "common"))
    book_record = {"notebook": f"notebooks/{path.name}", "mode": record["mode"],
                   "offline": record["offline"], "seconds": record["seconds"],   # as the table
                   "machine": record["machine"], "key": key,
                   "finished": dt.datetime.now().isoformat(timespec="seconds"),
                   "measured_by": "tools/notebook_times.py", "load_max": max(record["load"]),
                   **build._outputs_report(executed)}
    build._write_atomic(folder / path.name, nbformat.writes(executed))
    build._write_atomic(folder / f"{path.stem}.json", json.dumps(book_record, indent=1) + "\n")
    return folder / path.name


def measure(path: Path, mode: str, offline: bool, probe: int | None, build=None,
            book_out: Path | None = None) -> dict:
    """Run one notebook (``--probe``: with the probe cell) and return its record; a measured run
    (no probe) is also stored in the book's cache under ``book_out``, if given."""
    import nbformat

    build = build or _build()
    nb = nbformat.read(path, as_version=4)
    saved = {k: os.environ.get(k) for k in ("PROBE_EPOCHS", "PROBE_OUT")}
    probe_file = None
    if probe is not None:
        cell = nbformat.v4.new_code_cell(PROBE)
        cell.metadata["probe"] = True
        nb.cells.insert(_setup_index(nb) + 1, cell)
        probe_file = Path(tempfile.mkstemp(prefix="imagenet5-probe-", suffix=".json")[1])
        probe_file.write_text("[]")
        os.environ.update(PROBE_EPOCHS=str(probe), PROBE_OUT=str(probe_file))
    try:
        with LoadSampler() as load:
            executed, seconds, machine = build.execute(path, mode, offline, ROOT, nb=nb)
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    cells = cell_times(executed)
    threads = machine.get("threads") or os.cpu_count()
    record = {"notebook": path.name, "mode": mode, "offline": offline, "seconds": seconds,
              "cells": cells, "machine": machine, "load": load.samples,
              "shared": max(load.samples) > threads + 0.5,
              "errors": sum(bool(c["errors"]) for c in cells),
              "stderr": sum(c["stderr"] for c in cells),
              "measured": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    if probe_file is None and book_out is not None and not record["errors"]:
        to_book_cache(build, path, nb, executed, record, book_out)
    if probe_file is not None:
        fits = json.loads(probe_file.read_text())
        probe_file.unlink()
        record["probe_epochs"] = probe
        record["predicted_seconds"], record["fits"] = predicted_seconds(seconds, fits)
    return record


def _machine_words(m: dict) -> str:
    gpu = f", {m['gpu']}" if m.get("gpu") else ", no GPU"
    return f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores{gpu}, torch {m.get('torch', '?')}"


def row(r: dict) -> str:
    """One notebook's line of the table."""
    slow = sorted((c for c in r["cells"] if c["seconds"]), key=lambda c: -c["seconds"])[:3]
    seconds = (f"{r['predicted_seconds']:.0f} (predicted from {r['probe_epochs']} epochs a run)"
               if "predicted_seconds" in r else f"{r['seconds']:.0f}")
    if r["errors"]:
        seconds += f" ({r['errors']} cells erred)"
    return (f"| {r['notebook']} | {r['mode']}{'' if r['offline'] else ', online'} | {seconds} | "
            + ", ".join(f"#{c['cell']} {c['seconds']:.0f}" for c in slow)
            + f" | {_machine_words(r['machine'])} | {r['machine'].get('threads', '?')} | "
            f"{max(r['load']):.1f} | {'shared' if r['shared'] else 'quiet'} | {r['measured']} |")


def table(records: list[dict]) -> str:
    return HEADER + "\n" + "\n".join(row(r) for r in records)


def update_docs(records: list[dict], docs: Path = DOCS) -> None:
    """Put each record's row into the table between the markers in ``docs`` (by notebook name;
    rows of notebooks not run are kept), sorted by notebook."""
    text = docs.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{docs} has no {START} ... {END} markers: add them where the table "
                         "goes.")
    head, rest = text.split(START, 1)
    old, tail = rest.split(END, 1)
    rows = {m.group(1): line for line in old.splitlines()
            if (m := re.match(r"\| (\S+\.ipynb) \|", line))}
    rows.update({r["notebook"]: row(r) for r in records})
    body = HEADER + "\n" + "\n".join(rows[k] for k in sorted(rows))
    docs.write_text(f"{head}{START}\n{body}\n{END}{tail}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path,
                   help="default: every notebook in notebooks/, in order")
    p.add_argument("--mode", choices=("smoke", "quick", "full"), default="quick")
    p.add_argument("--online", action="store_true", help="download CIFAR-10 (default: offline)")
    p.add_argument("--budget", type=float, default=600.0, help="seconds per notebook (exit 1)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "notebook-times")
    p.add_argument("--update-docs", action="store_true",
                   help=f"rewrite the table in {DOCS.relative_to(ROOT)}")
    p.add_argument("--book-out", type=Path, default=ROOT / "book" / "_build",
                   help="store each measured run in the book's cache there, so that "
                        "`python book/build.py` renders it without running it again "
                        "(default: the book's build folder; --no-book: do not)")
    p.add_argument("--no-book", action="store_true", help="leave the book's cache alone")
    p.add_argument("--probe", type=int, metavar="EPOCHS",
                   help="predict: train at most EPOCHS epochs per run and extrapolate")
    args = p.parse_args(argv)
    if args.probe is not None and (args.probe < 1 or args.update_docs):
        p.error("--probe takes a number of epochs >= 1, and its predictions never go into the "
                "docs (no --update-docs)")
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    missing = [str(n) for n in paths if not n.is_file()]
    if missing:
        p.error(f"no such notebook: {', '.join(missing)}")
    build, records, failed = _build(), [], False
    for path in paths:
        r = measure(path.resolve(), args.mode, not args.online, args.probe, build,
                    book_out=None if args.no_book else args.book_out)
        records.append(r)
        took = r.get("predicted_seconds", r["seconds"])
        over = took > args.budget
        failed |= bool(r["errors"]) or over
        print(f"{r['notebook']}: {r['seconds']:.0f} s"
              + (f", predicted {took:.0f} s" if "predicted_seconds" in r else "")
              + (f", {r['errors']} cells erred" if r["errors"] else "")
              + (f", over the budget of {args.budget:.0f} s" if over else "")
              + (" (shared machine)" if r["shared"] else ""), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (args.out / f"{stamp}.json").write_text(json.dumps(records, indent=1))
    print(table(records))
    if args.update_docs:
        update_docs(records)
        print(f"updated {DOCS}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
