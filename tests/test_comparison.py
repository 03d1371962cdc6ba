"""common.comparison: saved runs collected into a table (fake run folders written here, and one
real tiny fit that is interrupted and resumed), curves redrawn from histories alone, and the
speed and memory measurements of notebook 07."""
import dataclasses
import json
import statistics

import pytest
import torch

import common
from common import comparison
from common.data import Split
from common.train import History

DATA = "digits (offline stand-in for CIFAR-10)"
RECIPE = common.Recipe(epochs=4, batch_size=32, lr=0.1, schedule="cosine")


def write_run(root, group, folder, *, model="cifar_resnet56", seed=0, epochs=4, planned=4,
              dataset=DATA, mode="full", params=850_000, recipe=RECIPE, val=None, test=None,
              train_size=45_000):
    """A run folder as common.fit leaves it (history.json; results.json when ``test`` is given),
    without training anything."""
    path = root / group / folder
    val = val if val is not None else [0.1 * (e + 1) for e in range(epochs)]
    h = History({"model": model, "seed": seed, "dataset": dataset, "mode": mode,
                 "epochs_run": planned, "train_size": train_size, "params": params,
                 "recipe": recipe.to_dict(), "offline": True},
                epoch=list(range(1, epochs + 1)),
                train_loss=[2.0 / (e + 1) for e in range(epochs)],
                train_acc=list(val), val_acc=list(val), val_loss=[1.0] * epochs, lr=[0.1] * epochs,
                images_per_sec=[100.0 * (seed + 1)] * epochs, seconds=[10.0] * epochs)
    path.mkdir(parents=True)
    h.save(path / "history.json")
    if test is not None:
        comparison.save_results(path, test={dataset: {"acc": test, "loss": 1.0, "epoch": epochs}})
    return path


@pytest.fixture
def runs_root(tmp_path):
    write_run(tmp_path, "07_comparison", "cifar_resnet56-a", seed=0, test=0.90)
    write_run(tmp_path, "07_comparison", "cifar_resnet56-b", seed=1, test=0.92)
    write_run(tmp_path, "07_comparison", "cifar_resnet56-c", seed=2, test=0.95)
    write_run(tmp_path, "07_comparison", "cifar_resnet56-d", seed=3, epochs=2,
              test=0.30)  # unfinished
    write_run(tmp_path, "07_comparison", "cifar_vgg16_bn-a", model="cifar_vgg16_bn",
              params=15_000_000,
              test=0.93)
    write_run(tmp_path, "07_comparison", "cifar_resnet56-smoke", mode="smoke", test=0.1)
    write_run(tmp_path, "07_comparison", "cifar_resnet56-other-recipe", test=0.5,
              recipe=dataclasses.replace(RECIPE, lr=0.05))
    write_run(tmp_path, "02_resnet", "cifar_resnet56-own", test=0.935,
              recipe=common.Recipe(epochs=182, milestones=(91, 136)))
    return tmp_path


def test_load_runs_filters_by_group_model_data_mode_and_recipe(runs_root):
    everything = comparison.load_runs(runs_root)
    assert len(everything) == 8
    ours = comparison.load_runs(runs_root, group="07_comparison", mode="full", recipe=RECIPE)
    assert [(r.model, r.seed) for r in ours] == [("cifar_resnet56", s) for s in range(4)] + \
        [("cifar_vgg16_bn", 0)]
    assert {r.group for r in ours} == {"07_comparison"}
    assert comparison.load_runs(runs_root, group="07_comparison", mode="smoke")[0].path.name \
        == "cifar_resnet56-smoke"
    assert comparison.load_runs(runs_root, model="cifar_vgg16_bn", params=15_000_000)
    assert not comparison.load_runs(runs_root, model="cifar_vgg16_bn", params=1)
    assert not comparison.load_runs(runs_root, dataset="cifar10")
    assert not comparison.load_runs(runs_root, train_size=512)
    assert comparison.load_runs(runs_root / "nothing-here") == []


def test_summarize_pools_finished_seeds_only(runs_root):
    runs = comparison.load_runs(runs_root, group="07_comparison", mode="full", recipe=RECIPE)
    rows = {r["model"]: r for r in comparison.summarize(runs)}
    res = rows["cifar_resnet56"]
    assert res["seeds"] == [0, 1, 2, 3] and res["epochs"] == [4, 4, 4, 2]
    assert not res["finished"]                               # seed 3 is still training
    assert res["test_seeds"] == [0, 1, 2]                    # ... so its 0.30 is not averaged
    assert res["test_acc"] == pytest.approx(statistics.fmean([0.90, 0.92, 0.95]))
    assert res["test_acc_sd"] == pytest.approx(statistics.stdev([0.90, 0.92, 0.95]))
    assert res["val_acc"] == pytest.approx(0.4)
    assert res["train_seconds"] == pytest.approx(statistics.fmean([40, 40, 40, 20]))
    # fit's speed per run: median over epochs after the first; then the mean over runs
    assert res["train_images_per_sec"] == pytest.approx(statistics.fmean([100, 200, 300, 400]))
    vgg = rows["cifar_vgg16_bn"]
    assert vgg["test_acc"] == pytest.approx(0.93) and vgg["test_acc_sd"] is None   # one seed
    assert comparison.format_mean_sd(res["test_acc"], res["test_acc_sd"], 3) == \
        f"{100 * res['test_acc']:.2f} ± {100 * res['test_acc_sd']:.2f} (3 seeds)"
    assert comparison.format_mean_sd(0.93, None, 1) == "93.00 (1 seed)"
    assert comparison.format_mean_sd(None, None, 0) == "not measured yet"


def test_a_run_not_evaluated_yet_is_not_measured(tmp_path):
    write_run(tmp_path, "g", "m-a")
    row, = comparison.summarize(comparison.load_runs(tmp_path))
    assert row["finished"] and row["test_acc"] is None and row["test_seeds"] == []


def test_pick_run_prefers_finished_then_longest(tmp_path):
    write_run(tmp_path, "g", "long-unfinished", epochs=9, planned=10)
    write_run(tmp_path, "g", "short-finished", epochs=3, planned=3)
    write_run(tmp_path, "g", "shorter-finished", epochs=2, planned=2)
    runs = comparison.load_runs(tmp_path)
    assert comparison.pick_run(runs).path.name == "short-finished"
    assert comparison.pick_run(runs[:1]).path.name == "long-unfinished"
    assert comparison.pick_run([]) is None


def test_mean_history_averages_seeds_over_their_common_epochs(runs_root):
    runs = comparison.load_runs(runs_root, group="07_comparison", model="cifar_resnet56",
                                mode="full", recipe=RECIPE)
    mean = comparison.mean_history(runs)
    assert mean["epoch"] == [1, 2]                       # seed 3 has two epochs so far
    assert mean["images_per_sec"] == [250.0, 250.0]      # (100 + 200 + 300 + 400) / 4
    assert mean["seeds"] == [0, 1, 2, 3] and mean["model"] == "cifar_resnet56"
    fig = common.plot_histories({"ResNet-56": mean}, show=False)   # redrawn from histories alone
    assert fig.axes[0].get_lines()
    with pytest.raises(ValueError, match="at least one run"):
        comparison.mean_history([])


def test_a_broken_history_gets_a_clear_error(tmp_path):
    path = tmp_path / "g" / "broken"
    path.mkdir(parents=True)
    (path / "history.json").write_text("{not json")
    with pytest.raises(ValueError, match="delete its run folder"):
        comparison.load_runs(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        comparison.read_run(tmp_path / "g")


def test_save_results_merges(tmp_path):
    comparison.save_results(tmp_path, macs=5)
    assert comparison.save_results(tmp_path, sittings=[1]) == {"macs": 5, "sittings": [1]}
    assert json.loads((tmp_path / comparison.RESULTS).read_text()) == {"macs": 5, "sittings": [1]}
    assert not list(tmp_path.glob(".*.tmp"))               # written atomically, nothing left over


def tiny(data):
    common.seed_everything(0)
    return common.get_model("cifar_baseline", num_classes=data.num_classes, widths=(8, 16, 32),
                            convs_per_stage=1)


def test_a_real_run_is_found_evaluated_once_and_resumed(tmp_path, monkeypatch):
    """The notebook's mechanism end to end with a real (tiny) fit: the run folder of
    common.run_dir_for, an interrupted run listed as unfinished and left out of the accuracy,
    resumed to its end, evaluated from its checkpoint once and read back after."""
    monkeypatch.setenv("IMAGENET5_RUNS", str(tmp_path))
    data = common.load_data("digits", smoke=True, device="cpu", verbose=False)
    data = dataclasses.replace(data, **{s: Split(data[s].x[:64], data[s].y[:64])
                                        for s in ("train", "val", "test")})
    recipe = common.Recipe(epochs=2, batch_size=32, lr=0.05, schedule="cosine")
    run_dir = common.run_dir_for("07_comparison", "cifar_baseline", recipe, data, seed=0)
    kw = dict(run_dir=run_dir, resume=True, smoke=False, progress=False, verbose=False)
    common.fit(tiny(data), data, recipe, stop_after_epochs=1, **kw)     # a sitting that ends early
    runs = comparison.load_runs(group="07_comparison", dataset=data.description, recipe=recipe)
    assert [r.path for r in runs] == [run_dir] and not runs[0].finished
    row, = comparison.summarize(runs)
    assert row["epochs"] == [1] and row["test_acc"] is None
    assert not comparison.load_runs(group="07_comparison",
                                    recipe=dataclasses.replace(recipe, lr=0.1))

    model = tiny(data)
    common.fit(model, data, recipe, **kw)                               # the next sitting
    run = comparison.read_run(run_dir)
    assert run.finished and run.epochs_done == 2
    expected = common.evaluate(model, data, "test")
    result = comparison.test_result(run, tiny(data), data)      # weights from the checkpoint
    assert result["acc"] == pytest.approx(expected["acc"])
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-4)
    assert result["epoch"] == 2
    # Read back, not measured again: an untrained model here would give another number.
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    assert comparison.test_result(run_dir, model, data) == result
    row, = comparison.summarize(comparison.load_runs(dataset=data.description))
    assert row["finished"] and row["test_acc"] == pytest.approx(expected["acc"])
    assert row["train_images_per_sec"] > 0


def test_a_saved_test_result_of_fewer_epochs_is_measured_again(tmp_path):
    path = write_run(tmp_path, "g", "m-a", epochs=4, test=0.5)
    comparison.save_results(path, test={DATA: {"acc": 0.5, "loss": 1.0, "epoch": 3}})
    assert comparison.read_run(path).test() is None             # the run trained on since
    with pytest.raises(FileNotFoundError, match="checkpoint.pt is missing"):
        comparison.test_result(path, torch.nn.Linear(1, 1), type("D", (), {"description": DATA})())


def test_inference_speed():
    small = common.get_model("cifar_baseline", widths=(8, 16, 32), convs_per_stage=1).train()
    big = common.get_model("cifar_baseline", widths=(64, 128, 256), convs_per_stage=2).eval()
    seconds = comparison.inference_speed({"small": small, "big": big}, (1, 16), reps=2, rounds=2,
                                         warmup=1)
    assert set(seconds) == {"small", "big"} and all(set(s) == {1, 16} for s in seconds.values())
    assert all(t > 0 for s in seconds.values() for t in s.values())
    assert small.training and not big.training                  # their modes are given back
    # ~100x the multiply-adds at 16 images: slower, whatever else runs on the machine
    assert seconds["big"][16] > seconds["small"][16]
    with pytest.raises(ValueError, match="reps >= 1"):
        comparison.inference_speed({"small": small}, (1,), reps=0)
    with pytest.raises(TypeError, match="dict of models"):
        comparison.inference_speed(small)


def test_training_step_memory_counts_weights_state_and_activations():
    data = common.load_data("digits", smoke=True, device="cpu", verbose=False)
    peaks = {}
    for batch in (2, 32):
        torch.manual_seed(0)
        model = common.get_model("cifar_baseline", widths=(8, 16, 32), convs_per_stage=1)
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        measured = comparison.training_step_memory(model, data, batch)
        assert "MemTracker" in measured["method"]
        peaks[batch] = measured["bytes"]
        # weights, their gradients and momentum are alive at once during the step
        assert peaks[batch] >= 3 * weights
    # activations grow with the batch: 16x the images, far more than the fixed part
    assert peaks[32] > peaks[2] + 10 * (peaks[2] - 3 * weights) > peaks[2]
    # At the start of the backward pass, the weights, the momentum and every activation kept
    # for backward are alive at once (counted by notebook 03's saved-tensor hook, in the same
    # precision and layout): the peak holds at least all of them.
    from common import train as ctrain
    from common.models.densenet import bytes_saved_for_backward

    torch.manual_seed(0)
    model = common.get_model("cifar_baseline", widths=(8, 16, 32), convs_per_stage=1)
    model.to(memory_format=torch.channels_last)
    x, _ = next(data.batches("train", 32))
    with ctrain.autocast(torch.device("cpu"), ctrain.amp_dtype(torch.device("cpu"), True)):
        saved = bytes_saved_for_backward(model.train(),
                                         x.contiguous(memory_format=torch.channels_last))
    assert saved > 0 and peaks[32] >= saved + 2 * weights


def test_readme_results_counts_are_the_models_own():
    """The README's Results table holds only measured numbers: every parameter and multiply-add
    count in it is what common counts for that model (cells not measured say so)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Results", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines()
            if line.startswith("| ") and "`" in line]
    assert len(rows) == 6
    checked = 0
    for cells in rows:
        name = re.search(r"`(\w+)`", cells[0]).group(1)
        params, macs = (c.strip() for c in cells[2:4])
        assert all(c.strip() == "not measured yet" for c in cells[1:2] + cells[4:]), cells
        if name not in common.list_models():
            assert params == macs == "not measured yet"
            continue
        with torch.device("meta"):
            model = common.get_model(name)
            counted = (common.count_params(model), common.count_macs(model, (1, 3, 32, 32)))
        assert (params, macs) in {("not measured yet",) * 2,
                                  (f"{counted[0] / 1e6:.2f}M", f"{counted[1] / 1e6:.0f}M")}, name
        checked += params != "not measured yet"
    assert checked >= 5
