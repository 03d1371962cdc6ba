"""tools/notebook_times.py: one command that times every notebook. Checked on one toy notebook
in smoke mode with --probe (one kernel, seconds): the probe path runs the measuring path too."""
import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("notebook_times",
                                               ROOT / "tools" / "notebook_times.py")
nt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nt)


def toy_notebook(path: Path) -> Path:
    code = nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# toy"),
        code("import common"),
        code("data = common.load_data('digits', verbose=False)\n"
             "model = common.get_model('cifar_baseline', widths=(8,), convs_per_stage=1)\n"
             "h = common.fit(model, data, common.Recipe(epochs=3, batch_size=256, lr=0.05),\n"
             "               progress=False, verbose=False)\n"
             "print(len(h['epoch']))"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                "language": "python"}})
    nbformat.write(nb, path)
    return path


def test_a_toy_notebook_is_timed_cell_by_cell_and_its_runs_predicted(tmp_path, capsys):
    toy = toy_notebook(tmp_path / "98_toy.ipynb")
    out = tmp_path / "times"
    # smoke mode: the fit plans 2 epochs (SMOKE_EPOCHS); the probe lets it train 1
    status = nt.main([str(toy), "--mode", "smoke", "--probe", "1", "--budget", "0",
                      "--out", str(out)])
    assert status == 1, "over a budget of 0 s: exit status 1"
    assert "over the budget of 0 s" in capsys.readouterr().out
    (record,) = json.loads(next(out.glob("*.json")).read_text())
    assert record["notebook"] == "98_toy.ipynb" and record["mode"] == "smoke"
    assert record["errors"] == 0 and record["stderr"] == 0
    assert [c["cell"] for c in record["cells"]] == [1, 2]          # the probe cell left out
    assert all(c["seconds"] > 0 for c in record["cells"])
    assert record["cells"][1]["first_line"].startswith("data = common.load_data")
    assert record["machine"]["cores"] >= 1 and record["machine"]["torch"]
    assert len(record["load"]) >= 2 and isinstance(record["shared"], bool)
    (fit,) = record["fits"]
    assert fit["planned_epochs"] == fit["goal_epochs"] == 2 and fit["epochs_done"] == 1
    assert fit["epochs_left"] == 1 and len(fit["epoch_seconds"]) == 1
    assert record["predicted_seconds"] == pytest.approx(record["seconds"]
                                                        + fit["epoch_seconds"][0])
    assert "(predicted from 1 epochs a run)" in nt.row(record)
    # the docs' table: a measured row replaces that notebook's row, other rows stay
    measured = {k: v for k, v in record.items() if k not in ("predicted_seconds", "fits")}
    docs = tmp_path / "settings.md"
    docs.write_text(f"before\n{nt.START}\n{nt.HEADER}\n| 00_toolkit.ipynb | quick | 99 |\n"
                    f"| 98_toy.ipynb | old |\n{nt.END}\nafter\n")
    nt.update_docs([measured], docs)
    text = docs.read_text()
    assert text.startswith("before\n") and text.endswith(f"{nt.END}\nafter\n")
    assert "| 00_toolkit.ipynb | quick | 99 |" in text and "| 98_toy.ipynb | old |" not in text
    assert f"| 98_toy.ipynb | smoke | {record['seconds']:.0f} | #" in text
    assert "predicted" not in text


def test_a_prediction_counts_a_run_resumed_later_in_the_notebook_once():
    fits = [{"run_dir": "r/a", "goal_epochs": 10, "epochs_done": 2, "epoch_seconds": [9, 2, 4],
             "seconds": 15, "diverged": False},
            {"run_dir": "r/a", "goal_epochs": 10, "epochs_done": 4, "epoch_seconds": [5, 3],
             "seconds": 8, "diverged": False},
            {"run_dir": "", "goal_epochs": 5, "epochs_done": 1, "epoch_seconds": [7],
             "seconds": 7, "diverged": False},
            {"run_dir": "r/b", "goal_epochs": 5, "epochs_done": 1, "epoch_seconds": [7],
             "seconds": 7, "diverged": True}]
    total, rows = nt.predicted_seconds(100.0, fits)
    assert [r["epochs_left"] for r in rows] == [8, 0, 4, 0]
    assert total == 100 + 8 * 3 + 4 * 7


def test_docs_without_markers_get_a_clear_error_and_the_course_docs_have_them(tmp_path):
    text = nt.DOCS.read_text()
    assert text.index(nt.START) < text.index(nt.HEADER) < text.index(nt.END)
    docs = tmp_path / "settings.md"
    docs.write_text("no table here\n")
    with pytest.raises(SystemExit, match="markers"):
        nt.update_docs([], docs)


def test_a_measured_run_fills_the_books_cache_so_the_site_does_not_run_it_again(tmp_path,
                                                                                capsys):
    """No kernel: a notebook "executed" by hand goes into the cache; book/build.py's
    executed_notebooks then takes it from there (it would execute it otherwise)."""
    toy = toy_notebook(tmp_path / "98_toy.ipynb")
    nb = nbformat.read(toy, as_version=4)
    executed = nbformat.read(toy, as_version=4)
    executed.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="3\n")]
    record = {"mode": "quick", "offline": True, "seconds": 12.3, "load": [0.4, 1.1],
              "machine": {"cpu": "a CPU", "cores": 2, "threads": 2, "torch": "2.x"}}
    build = nt._build()
    nt.to_book_cache(build, toy, nb, executed, record, tmp_path / "book")
    results = build.executed_notebooks([toy], "quick", True, tmp_path / "book", ROOT)
    assert "98_toy.ipynb: outputs from the cache" in capsys.readouterr().out
    got, book_record = results[toy]
    assert got.cells[2].outputs[0]["text"] == "3\n" and book_record["seconds"] == 12.3
    assert book_record["measured_by"] == "tools/notebook_times.py"
