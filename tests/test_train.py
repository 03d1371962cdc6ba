"""common.train: learning for real, exact resume, atomic and checked checkpoints, the recipe."""
import json
import math

import pytest
import torch

import common
from common import train as ctrain


@pytest.fixture(scope="module")
def digits():
    return common.load_data("digits", smoke=False, device="cpu", verbose=False)


@pytest.fixture(scope="module")
def small():
    return common.load_data("digits", smoke=True, device="cpu", verbose=False)


def tiny_model(num_classes=10, widths=(16, 32, 64)):
    return common.get_model("cifar_baseline", num_classes=num_classes, widths=widths,
                            convs_per_stage=1)


def test_fit_makes_a_real_model_learn_real_data(digits):
    common.seed_everything(0)
    model = tiny_model()
    recipe = common.Recipe(epochs=6, batch_size=64, lr=0.2, momentum=0.9, weight_decay=5e-4,
                           schedule="cosine", warmup_epochs=0.5)
    h = common.fit(model, digits, recipe, smoke=False, progress=False, verbose=False)
    assert len(h["epoch"]) == 6 and h["dataset"].startswith("digits")
    assert h["train_loss"][-1] < 0.5 * h["train_loss"][0]
    test = common.evaluate(model, digits, "test")
    assert test["acc"] > 0.6, test          # chance is 0.1
    assert 0 < test["loss"] < math.log(10)


def straight_and_resumed(small, tmp_path, recipe, make=tiny_model):
    """One run straight through, and the same run stopped after an epoch and resumed into a
    fresh model under a different random state: everything must come from the checkpoint."""
    common.seed_everything(0)
    a = make()
    ha = common.fit(a, small, recipe, progress=False, verbose=False)
    common.seed_everything(0)
    common.fit(make(), small, recipe, run_dir=tmp_path, stop_after_epochs=1, progress=False,
               verbose=False)
    torch.manual_seed(123)
    c = make()
    hc = common.fit(c, small, recipe, run_dir=tmp_path, resume=True, progress=False,
                    verbose=False)
    for (k, va), vc in zip(a.state_dict().items(), c.state_dict().values()):
        assert torch.equal(va, vc), k
    return ha, hc


def test_stopped_and_resumed_run_ends_with_the_same_weights(small, tmp_path):
    recipe = common.Recipe(epochs=2, batch_size=64, lr=0.05, schedule="multistep",
                           milestones=(1.5,), nesterov=True)
    ha, hc = straight_and_resumed(small, tmp_path, recipe)
    for k in ctrain.History.SERIES:
        if k not in ("images_per_sec", "seconds"):
            assert ha[k] == hc[k], k
    saved = json.loads((tmp_path / ctrain.HISTORY).read_text())
    assert saved["val_acc"] == hc["val_acc"] and saved["epoch"] == [1, 2]


def test_resume_restores_random_state_for_dropout(small, tmp_path):
    class WithDropout(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = tiny_model(num_classes=32)
            self.drop = torch.nn.Dropout(0.5)
            self.fc = torch.nn.Linear(32, 10)

        def forward(self, x):
            return self.fc(self.drop(self.body(x)))

    straight_and_resumed(small, tmp_path, common.Recipe(epochs=2, batch_size=64, lr=0.05),
                         make=WithDropout)


def test_checkpoint_holds_the_whole_run_state(small, tmp_path):
    recipe = common.Recipe(epochs=2, batch_size=64, lr=0.05)
    common.fit(tiny_model(), small, recipe, run_dir=tmp_path, stop_after_epochs=1,
               progress=False, verbose=False)
    state = ctrain.load_checkpoint(tmp_path / ctrain.CHECKPOINT)
    assert state["epoch"] == 1 and state["format"] == ctrain.FORMAT
    assert {"model", "optimizer", "scaler", "rng", "recipe", "run", "history"} <= set(state)
    assert state["optimizer"]["state"], "momentum buffers are saved"


def test_existing_checkpoint_is_never_overwritten_without_resume(small, tmp_path):
    recipe = common.Recipe(epochs=1, batch_size=64, lr=0.05)
    common.fit(tiny_model(), small, recipe, run_dir=tmp_path, progress=False, verbose=False)
    before = (tmp_path / ctrain.CHECKPOINT).read_bytes()
    with pytest.raises(FileExistsError, match="resume=True"):
        common.fit(tiny_model(), small, recipe, run_dir=tmp_path, progress=False, verbose=False)
    assert (tmp_path / ctrain.CHECKPOINT).read_bytes() == before


def test_a_failed_write_never_replaces_a_good_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    ctrain.save_checkpoint({"format": ctrain.FORMAT, "epoch": 1}, path)
    good = path.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ctrain.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        ctrain.save_checkpoint({"format": ctrain.FORMAT, "epoch": 2}, path)
    assert path.read_bytes() == good
    assert ctrain.load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]   # no temporary left


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_corrupt_checkpoint_is_a_clear_error(small, tmp_path, damage):
    recipe = common.Recipe(epochs=2, batch_size=64, lr=0.05)
    common.fit(tiny_model(), small, recipe, run_dir=tmp_path, stop_after_epochs=1,
               progress=False, verbose=False)
    path = tmp_path / ctrain.CHECKPOINT
    data = path.read_bytes()
    path.write_bytes({"garbage": b"not a checkpoint at all",
                      "truncated": data[: len(data) // 2], "empty": b""}[damage])
    with pytest.raises(ctrain.CheckpointError, match="corrupt"):
        common.fit(tiny_model(), small, recipe, run_dir=tmp_path, resume=True, progress=False,
                   verbose=False)


def test_a_foreign_file_is_not_taken_for_a_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "checkpoint.pt")
    with pytest.raises(ctrain.CheckpointError, match="not a checkpoint written by common.fit"):
        ctrain.load_checkpoint(tmp_path / "checkpoint.pt")


def test_a_checkpoint_of_another_recipe_or_model_is_refused(small, tmp_path):
    recipe = common.Recipe(epochs=2, batch_size=64, lr=0.05)
    common.fit(tiny_model(), small, recipe, run_dir=tmp_path, stop_after_epochs=1,
               progress=False, verbose=False)
    other = common.Recipe(epochs=2, batch_size=64, lr=0.1)
    with pytest.raises(ctrain.CheckpointError, match=r"different run.*lr: checkpoint 0.05, now 0.1"):
        common.fit(tiny_model(), small, other, run_dir=tmp_path, resume=True, progress=False,
                   verbose=False)
    with pytest.raises(ctrain.CheckpointError, match="does not fit this model"):
        common.fit(tiny_model(widths=(16, 32, 48)), small, recipe, run_dir=tmp_path,
                   resume=True, progress=False, verbose=False)


def test_schedules_follow_the_recipe():
    r = common.Recipe(epochs=182, milestones=(91, 136), gamma=0.1)
    assert [r.lr_factor(e) for e in (0, 90.9, 91, 135.9, 136, 181)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01])
    c = common.Recipe(epochs=10, schedule="cosine", warmup_epochs=2, warmup_factor=0.1)
    assert c.lr_factor(0) == pytest.approx(0.1) and c.lr_factor(1) == pytest.approx(0.55)
    assert c.lr_factor(2) == pytest.approx(1.0) and c.lr_factor(6) == pytest.approx(0.5)
    assert c.lr_factor(10) == pytest.approx(0.0, abs=1e-12)
    w = common.Recipe(epochs=182, milestones=(91, 136), warmup_epochs=1.14, warmup="constant")
    assert w.lr_factor(1.0) == pytest.approx(0.1) and w.lr_factor(1.2) == pytest.approx(1.0)


def test_iterations_convert_to_epochs():
    # ResNet section 4.2: 64k iterations of 128 images over a 45k training set.
    assert common.Recipe.iterations_to_epochs(64_000, 128, 45_000) == pytest.approx(182.04, abs=0.01)


def test_smoke_mode_compresses_the_whole_schedule(small):
    recipe = common.Recipe(epochs=100, batch_size=64, lr=0.1, milestones=(25, 50))
    h = common.fit(tiny_model(), small, recipe, smoke=True, progress=False, verbose=False)
    assert len(h["epoch"]) == ctrain.SMOKE_EPOCHS
    assert h["lr"][-1] == pytest.approx(0.001)     # both drops happened within the smoke run
    assert h["smoke"] is True


@pytest.mark.parametrize("bad, match", [
    ({"epochs": 0}, "positive"), ({"schedule": "step"}, "Unknown schedule"),
    ({"milestones": (50, 20)}, "increasing"), ({"milestones": (200,)}, "within"),
    ({"warmup": "exp"}, "Unknown warmup"), ({"sources": {"learning_rate": "x"}}, "unknown fields"),
])
def test_recipe_rejects_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        common.Recipe(**{"epochs": 100, **bad})


def test_recipe_table_cites_its_sources():
    r = common.Recipe(epochs=10, sources={"lr": "paper, section 3.1"})
    text = repr(r.table())
    assert "paper, section 3.1" in text and "weight_decay" in text
    assert r.table()._repr_markdown_().startswith("| hyperparameter | value | source |")


def test_divergence_stops_the_run_and_is_recorded(small):
    h = common.fit(tiny_model(), small, common.Recipe(epochs=2, batch_size=64, lr=1e6),
                   smoke=False, progress=False, verbose=False)
    assert h.get("diverged") is True and len(h["epoch"]) >= 1


def test_wrong_input_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*unsqueeze"):
        tiny_model()(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="normalise"):
        tiny_model()(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def test_plot_histories_draws_every_metric(small):
    h = common.fit(tiny_model(), small, common.Recipe(epochs=1, batch_size=64, lr=0.05),
                   progress=False, verbose=False)
    fig = common.plot_histories({"a": h, "b": h}, metrics=("train_loss", "val_acc"), show=False)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2


def test_seed_everything_repeats_and_deterministic_mode_switches_on_and_off():
    common.seed_everything(7)
    a = torch.randn(5)
    common.seed_everything(7, deterministic=True)
    try:
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.equal(a, torch.randn(5))
    finally:
        common.seed_everything(0)
    assert not torch.are_deterministic_algorithms_enabled()


def test_run_dir_for_changes_with_the_recipe_and_settings(small):
    r = common.Recipe(epochs=10)
    a = common.run_dir_for("nb", "m", r, small)
    assert a == common.run_dir_for("nb", "m", common.Recipe(epochs=10, sources={"lr": "x"}), small)
    assert a != common.run_dir_for("nb", "m", common.Recipe(epochs=11), small)
    assert a != common.run_dir_for("nb", "m", r, small, widths=(8,))
    assert a.parent == common.runs_dir("nb") and a.name.startswith("m-")


def test_get_model_names_the_model_for_the_history(small):
    m = common.get_model("cifar_baseline", widths=(8,), convs_per_stage=1)
    assert m.name == "cifar_baseline" and "name" not in m.state_dict()
    h = common.fit(m, small, common.Recipe(epochs=1, batch_size=256), progress=False, verbose=False)
    assert h["model"] == "cifar_baseline"
