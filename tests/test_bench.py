"""common.bench: every measurement runs, in one run, and the report shows each (tiny sizes)."""
import json

import pytest

from common import bench
from common import train as ctrain


@pytest.fixture(scope="module")
def result():
    return bench.run("cifar_baseline", images=128, batch_size=64, workers=0, device="cpu",
                     bound_steps=1, rounds=1)


def test_bench_measures_the_loop_fit_in_each_precision_and_the_bound(result):
    r = result
    assert r["images"] == 128 and r["baseline_images_per_sec"] > 0
    precisions = [f["precision"] for f in r["fit"]]
    native = ctrain.cpu_has_native_bf16()
    assert precisions == ["float32 (amp=False)"] + (
        ["bfloat16 autocast on CPU (native bf16)"] if native else [])
    for f in r["fit"]:
        assert f["images_per_sec"] > 0 and f["bound_images_per_sec"] > 0
        assert f["of_bound"] == pytest.approx(f["images_per_sec"] / f["bound_images_per_sec"],
                                              abs=0.01)
        assert f["over_plain"] == pytest.approx(f["images_per_sec"]
                                                / r["baseline_images_per_sec"], abs=0.01)
    assert r["ratio"] == r["fit"][-1]["over_plain"] and r["rounds"] == 1
    assert (r["amp_speedup"] is not None) is native


def test_bench_report_names_every_line(result):
    text = bench.report(result)
    assert "plain loop (DataLoader, 0 workers" in text
    assert text.count("common.fit, ") == len(result["fit"])
    assert text.count("of the compute-only bound") == len(result["fit"])
    assert ("mixed precision over fp32 in fit" in text) is (result["amp_speedup"] is not None)
    json.dumps(result)                               # --json prints it as it is


def test_bench_refuses_fewer_images_than_a_batch(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--images", "10", "--batch-size", "64"])
    assert "--images (10) must be at least --batch-size (64)" in capsys.readouterr().err
