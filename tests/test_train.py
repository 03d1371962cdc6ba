"""common.train: learning for real, exact resume, atomic and checked checkpoints, the recipe."""
import dataclasses
import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch

import common
from common import plots
from common import train as ctrain
from common.train import loop


@pytest.fixture(scope="module")
def digits():
    return common.load_data("digits", smoke=False, device="cpu", verbose=False)


@pytest.fixture(scope="module")
def small():
    return common.load_data("digits", smoke=True, device="cpu", verbose=False)


def tiny_model(num_classes=10, widths=(16, 32, 64)):
    return common.get_model("cifar_baseline", num_classes=num_classes, widths=widths,
                            convs_per_stage=1)


#: The precisions fit uses on this CPU: fp32 always, bf16 where the CPU has it natively.
PRECISIONS = [pytest.param(False, "float32", id="fp32"),
              pytest.param(True, "bfloat16", id="bf16", marks=pytest.mark.skipif(
                  not ctrain.cpu_has_native_bf16(), reason="this CPU has no native bf16"))]


@pytest.mark.parametrize("amp, precision", PRECISIONS)
def test_fit_makes_a_real_model_learn_real_data(digits, amp, precision):
    common.seed_everything(0)
    model = tiny_model()
    recipe = common.Recipe(epochs=6, batch_size=64, lr=0.2, momentum=0.9, weight_decay=5e-4,
                           schedule="cosine", warmup_epochs=0.5)
    h = common.fit(model, digits, recipe, smoke=False, amp=amp, progress=False, verbose=False)
    assert h["precision"] == precision
    assert len(h["epoch"]) == 6 and h["dataset"].startswith("digits")
    assert h["train_loss"][-1] < 0.5 * h["train_loss"][0]
    test = common.evaluate(model, digits, "test", amp=amp)
    assert test["acc"] > 0.6, test          # chance is 0.1
    assert 0 < test["loss"] < math.log(10)
    assert all(p.dtype == torch.float32 for p in model.parameters())   # autocast, not .bfloat16()


def straight_and_resumed(small, tmp_path, recipe, make=tiny_model, **fit_kwargs):
    """One run straight through, and the same run stopped after an epoch and resumed into a
    fresh model under a different random state: everything must come from the checkpoint."""
    kw = dict(progress=False, verbose=False, **fit_kwargs)
    common.seed_everything(0)
    a = make()
    ha = common.fit(a, small, recipe, **kw)
    common.seed_everything(0)
    common.fit(make(), small, recipe, run_dir=tmp_path, stop_after_epochs=1, **kw)
    torch.manual_seed(123)
    c = make()
    hc = common.fit(c, small, recipe, run_dir=tmp_path, resume=True, **kw)
    for (k, va), vc in zip(a.state_dict().items(), c.state_dict().values()):
        assert torch.equal(va, vc), k
    return ha, hc


@pytest.mark.parametrize("amp, precision", PRECISIONS)
def test_stopped_and_resumed_run_ends_with_the_same_weights(small, tmp_path, amp, precision):
    recipe = common.Recipe(epochs=2, batch_size=64, lr=0.05, schedule="multistep",
                           milestones=(1.5,), nesterov=True)
    ha, hc = straight_and_resumed(small, tmp_path, recipe, amp=amp)
    assert ha["precision"] == hc["precision"] == precision and "precision_changes" not in hc
    for k in ctrain.History.SERIES:
        if k not in ("images_per_sec", "seconds"):
            assert ha[k] == hc[k], k
    saved = json.loads((tmp_path / ctrain.HISTORY).read_text())
    assert saved["val_acc"] == hc["val_acc"] and saved["epoch"] == [1, 2]
    state = ctrain.load_checkpoint(tmp_path / ctrain.CHECKPOINT)
    assert all(v.dtype in (torch.float32, torch.int64) for v in state["model"].values())


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

    monkeypatch.setattr(os, "fsync", disk_full)
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
    with pytest.raises(ctrain.CheckpointError,
                       match=r"different run.*lr: checkpoint 0.05, now 0.1"):
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
    assert common.Recipe.iterations_to_epochs(64_000, 128, 45_000) == pytest.approx(
        182.04, abs=0.01)


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
    h = common.fit(m, small, common.Recipe(epochs=1, batch_size=256), progress=False,
                   verbose=False)
    assert h["model"] == "cifar_baseline"


# --- precision ------------------------------------------------------------------------------

@pytest.mark.parametrize("native, amp, precision, said", [
    (True, True, "bfloat16", "bfloat16 autocast on CPU (native bf16)"),
    (False, True, "float32", "float32 (this CPU has no native bf16)"),
    (True, False, "float32", "float32 (amp=False)"),
])
def test_cpu_precision_follows_native_bf16_and_the_first_line_says_it(
        small, monkeypatch, capsys, native, amp, precision, said):
    monkeypatch.setattr(ctrain.precision, "cpu_has_native_bf16", lambda: native)
    model = tiny_model()
    h = common.fit(model, small, common.Recipe(epochs=1, batch_size=256, lr=0.05), amp=amp,
                   progress=False)
    first = capsys.readouterr().out.splitlines()[0]
    assert said in first, first
    assert h["precision"] == precision
    assert all(p.dtype == torch.float32 for p in model.parameters())


def depthwise_net(k):
    """A tiny net with one depthwise convolution of kernel k (k > 3: slower in CPU bf16)."""
    from torch import nn

    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1),
                         nn.Conv2d(8, 8, k, padding=k // 2, groups=8),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def no_instance_forward(model) -> bool:
    """Whether no module of ``model`` has a forward of its own (fp32_layers' wrappers gone)."""
    return not any("forward" in m.__dict__ for m in model.modules())


def test_large_depthwise_convolutions_compute_in_fp32_inside_bf16_on_a_cpu(small, monkeypatch,
                                                                          capsys):
    """bf16 on a CPU is slower for depthwise convolutions larger than 3x3 (docs/speed.md has the
    measurement): those layers compute in fp32, the rest of the model in bf16, in every epoch
    (evaluate inside fit leaves fit's fp32 layers alone), and the first line and the history
    say so; afterwards the model is as it was. 3x3 ones stay in bf16; GPUs: bf16 throughout."""
    monkeypatch.setattr(ctrain.precision, "cpu_has_native_bf16", lambda: True)
    model = depthwise_net(5)
    seen = []
    for i in (0, 1):
        model[i].register_forward_hook(
            lambda m, args, out, i=i: seen.append((i, m.training, out.dtype))
            if len(out) > 2 else None)           # not fit's output check (2 images, no autocast)
    recipe = common.Recipe(epochs=2, batch_size=256, lr=0.05)
    assert ctrain.slow_in_cpu_bf16(model) == 1 and ctrain.slow_in_cpu_bf16(depthwise_net(3)) == 0
    h = common.fit(model, small, recipe, progress=False)
    first = capsys.readouterr().out.splitlines()[0]
    assert "bfloat16 autocast on CPU (native bf16), with this model's 1 depthwise convolutions " \
           "larger than 3x3 in float32" in first, first
    assert h["precision"] == "bfloat16" and h["fp32_layers"] == 1
    train_dtypes = {(i, dtype) for i, training, dtype in seen if training}
    assert train_dtypes == {(0, torch.bfloat16), (1, torch.float32)}, seen   # both epochs
    assert {(i, d) for i, training, d in seen if not training} == train_dtypes   # validation
    assert no_instance_forward(model)
    seen.clear()
    common.evaluate(model, small, "val")
    assert {(i, d) for i, _, d in seen} == {(0, torch.bfloat16), (1, torch.float32)}
    assert no_instance_forward(model)
    h3 = common.fit(depthwise_net(3), small, recipe, progress=False, verbose=False)
    assert h3["precision"] == "bfloat16" and h3["fp32_layers"] == 0
    cpu = torch.device("cpu")
    assert ctrain.amp_dtype(cpu, True, depthwise_net(5)) == torch.bfloat16
    monkeypatch.setattr(ctrain.precision, "cuda_has_native_bf16", lambda device=None: True)
    assert ctrain.amp_dtype(torch.device("cuda"), True, depthwise_net(5)) == torch.bfloat16
    assert ctrain.fp32_layer_count(depthwise_net(5), torch.device("cuda"), torch.bfloat16) == 0


def test_the_fp32_layers_are_undone_when_fit_or_evaluate_fails(small, monkeypatch):
    monkeypatch.setattr(ctrain.precision, "cpu_has_native_bf16", lambda: True)

    def failing(device, dtype):
        raise RuntimeError("a failure inside the step")

    model = depthwise_net(7)
    own = model[1].forward                 # a forward of the instance's own survives too
    model[1].forward = own
    monkeypatch.setattr(ctrain.precision, "autocast", failing)
    with pytest.raises(RuntimeError, match="inside the step"):
        common.fit(model, small, common.Recipe(epochs=1, batch_size=256, lr=0.05),
                   progress=False, verbose=False)
    assert model[1].__dict__["forward"] is own
    del model[1].forward
    with pytest.raises(RuntimeError, match="inside the step"):
        common.evaluate(model, small, "val")
    assert no_instance_forward(model) and model.training     # its mode restored too


def test_an_fp32_run_resumed_with_the_fp32_layers_continues_and_says_so(small, tmp_path,
                                                                       monkeypatch, capsys):
    """A checkpoint of a run that trained all in fp32 (as fit trained these models before
    fp32_layers) continues in bf16 with its large depthwise convolutions in fp32, noted as any
    precision change is."""
    monkeypatch.setattr(ctrain.precision, "cpu_has_native_bf16", lambda: True)
    recipe = common.Recipe(epochs=2, batch_size=256, lr=0.05)
    common.fit(depthwise_net(5), small, recipe, run_dir=tmp_path, stop_after_epochs=1,
               amp=False, progress=False, verbose=False)
    capsys.readouterr()
    h = common.fit(depthwise_net(5), small, recipe, run_dir=tmp_path, resume=True,
                   progress=False)
    mixed = "bfloat16 (1 depthwise convolutions larger than 3x3 in float32)"
    assert f"trained in float32, it continues in {mixed}" in capsys.readouterr().out
    assert h["epoch"] == [1, 2] and h["precision_changes"] == [
        {"epoch": 1, "from": "float32", "to": mixed}]


def test_native_bf16_needs_the_cpu_feature_not_only_onednn(monkeypatch):
    # oneDNN alone also says yes on AVX-512 CPUs without bf16 instructions (emulated, slow).
    monkeypatch.setattr(torch.cpu, "get_capabilities",
                        lambda: {"avx512_f": True, "avx512_bw": True})
    assert ctrain.cpu_has_native_bf16() is False
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True})
    assert ctrain.cpu_has_native_bf16() is bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def test_a_run_resumed_in_another_precision_continues_and_says_so(small, tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.setattr(ctrain.precision, "cpu_has_native_bf16", lambda: True)
    recipe = common.Recipe(epochs=2, batch_size=128, lr=0.05)
    common.fit(tiny_model(), small, recipe, run_dir=tmp_path, stop_after_epochs=1,
               progress=False, verbose=False)
    capsys.readouterr()
    h = common.fit(tiny_model(), small, recipe, run_dir=tmp_path, resume=True, amp=False,
                   progress=False)
    out = capsys.readouterr().out
    assert "trained in bfloat16, it continues in float32" in out
    assert h["precision"] == "float32" and h["epoch"] == [1, 2]
    assert h["precision_changes"] == [{"epoch": 1, "from": "bfloat16", "to": "float32"}]
    saved = json.loads((tmp_path / ctrain.HISTORY).read_text())
    assert saved["precision_changes"] == h["precision_changes"]


# --- the model must fit the data --------------------------------------------------------------

def test_a_model_with_the_wrong_number_of_classes_is_refused_before_anything(small, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=r"outputs 5 class scores.*10 classes.*"
                                         r"num_classes=data\.num_classes"):
        common.fit(tiny_model(num_classes=5), small, common.Recipe(epochs=1), run_dir=run_dir,
                   progress=False, verbose=False)
    assert not run_dir.exists()

    class Features(torch.nn.Module):          # forgot the classifier: (N, C, H, W) out
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match=r"logits of shape \(N, 10\)"):
        common.fit(Features(), small, common.Recipe(epochs=1), progress=False, verbose=False)


def test_the_output_check_changes_nothing(small):
    """The check's forward pass (eval mode, no grad) leaves the run as it would have been."""
    recipe = common.Recipe(epochs=1, batch_size=128, lr=0.05)
    common.seed_everything(0)
    a = tiny_model()
    common.fit(a, small, recipe, progress=False, verbose=False)
    common.seed_everything(0)
    b = tiny_model()
    b.eval()                                # a model left in eval mode is trained all the same
    common.fit(b, small, recipe, progress=False, verbose=False)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


# --- progress output: quiet in smoke mode, on otherwise ----------------------------------------

@pytest.mark.parametrize("smoke, bar", [(True, False), (False, True)])
def test_progress_bar_is_off_in_smoke_mode_only(small, capsys, smoke, bar):
    common.fit(tiny_model(), small, common.Recipe(epochs=1, batch_size=256, lr=0.05),
               smoke=smoke, verbose=False)
    err = capsys.readouterr().err
    assert ("epoch 1/1" in err) is bar, err


# --- training without a validation set --------------------------------------------------------

@pytest.fixture(scope="module")
def no_val():
    return common.load_data("digits", smoke=True, device="cpu", val_fraction=0, verbose=False)


def test_fit_without_validation_set_trains_on_everything_and_says_so(no_val, tmp_path, capsys):
    assert len(no_val.val) == 0 and "no validation split" in no_val.description
    recipe = common.Recipe(epochs=2, batch_size=128, lr=0.05)
    common.fit(tiny_model(), no_val, recipe, run_dir=tmp_path, stop_after_epochs=1,
               progress=False)
    h = common.fit(tiny_model(), no_val, recipe, run_dir=tmp_path, resume=True, progress=False)
    out = capsys.readouterr().out
    assert "no validation set (load_data(..., val_fraction=0))" in out
    assert "(no validation set)" in out and "evaluate on 'test'" in out
    assert h["validation"] is False and h["epoch"] == [1, 2] and len(h["train_loss"]) == 2
    assert h["val_loss"] == [] and h["val_acc"] == []
    assert h.best("train_loss")[0] in (1, 2)
    with pytest.raises(ValueError, match=r"no validation set.*val_fraction=0.*test split"):
        h.best()
    with pytest.raises(ValueError, match=r"'val' split.*no images.*val_fraction=0"):
        common.evaluate(tiny_model(), no_val, "val")
    fig = common.plot_histories(h, metrics=("train_loss", "val_acc"), show=False)
    assert len(fig.axes[0].lines) == 1 and not fig.axes[1].lines
    assert "no validation set" in fig.axes[1].texts[0].get_text()


# --- the recipe's optimizer and exponential schedule --------------------------------------------

def test_exponential_schedule_staircase_and_smooth():
    # MobileNetV2, section 6.1: 0.98 per epoch; EfficientNet, section 5.2: 0.97 every 2.4 epochs.
    m = common.Recipe(epochs=300, lr=0.045, schedule="exponential", gamma=0.98, decay_epochs=1)
    assert [m.lr_factor(e) for e in (0, 0.99, 1, 2.5, 10)] == pytest.approx(
        [1, 1, 0.98, 0.98 ** 2, 0.98 ** 10])
    e = common.Recipe(epochs=350, lr=0.256, schedule="exponential", gamma=0.97, decay_epochs=2.4)
    assert [e.lr_factor(x) for x in (2.39, 2.4, 4.8, 7.19, 7.2)] == pytest.approx(
        [1, 0.97, 0.97 ** 2, 0.97 ** 2, 0.97 ** 3])
    s = common.Recipe(epochs=300, schedule="exponential", gamma=0.98, staircase=False)
    assert s.lr_factor(0.5) == pytest.approx(0.98 ** 0.5)
    steps = 391                                  # the boundary in steps, as fit computes it
    assert e.lr_factor(int(2.4 * steps) / steps) == 1 and e.lr_factor(
        math.ceil(2.4 * steps) / steps) == pytest.approx(0.97)


def test_recipe_table_shows_only_the_options_in_use():
    sgd = repr(common.Recipe(epochs=10).table())
    assert "optimizer" in sgd and "rmsprop_eps" not in sgd and "decay_epochs" not in sgd
    rms = repr(common.Recipe(epochs=10, optimizer="rmsprop_tf", schedule="exponential",
                             sources={"rmsprop_eps": "official code"}).table())
    assert "rmsprop_eps" in rms and "official code" in rms and "staircase" in rms


@pytest.mark.parametrize("bad, match", [
    ({"optimizer": "adam"}, "Unknown optimizer"),
    ({"optimizer": "rmsprop", "nesterov": True}, "nesterov=True applies to optimizer='sgd'"),
    ({"rmsprop_decay": 1.0}, r"rmsprop_decay must be in \[0, 1\)"),
    ({"rmsprop_eps": 0}, "rmsprop_eps positive"),
    ({"decay_epochs": 0}, "decay_epochs must be positive"),
    ({"gamma": 0}, "gamma positive"), ({"momentum": -0.9}, "momentum"),
])
def test_recipe_rejects_bad_optimizer_and_schedule_values(bad, match):
    with pytest.raises(ValueError, match=match):
        common.Recipe(**{"epochs": 100, **bad})


def test_rmsprop_tf_equals_timm_rmsproptf():
    timm_optim = pytest.importorskip("timm.optim")
    torch.manual_seed(0)
    w0 = [torch.randn(7, 5), torch.randn(5)]
    ours_w = [w.clone().requires_grad_() for w in w0]
    timm_w = [w.clone().requires_grad_() for w in w0]
    kw = dict(momentum=0.9, weight_decay=1e-2)
    ours = ctrain.RMSpropTF(ours_w, lr=0.1, decay=0.9, eps=1e-3, **kw)
    ref = timm_optim.RMSpropTF(timm_w, lr=0.1, alpha=0.9, eps=1e-3, **kw)
    torch_w = [w.clone().requires_grad_() for w in w0]
    plain = torch.optim.RMSprop(torch_w, lr=0.1, alpha=0.9, eps=1e-3, **kw)
    for step in range(20):
        grads = [torch.randn_like(w) * 10 ** (step % 3 - 2) for w in w0]
        lr = 0.1 * 0.9 ** step                 # the lr changes every step, as with a schedule
        for opt, ws in ((ours, ours_w), (ref, timm_w), (plain, torch_w)):
            for group in opt.param_groups:
                group["lr"] = lr
            for w, g in zip(ws, grads):
                w.grad = g.clone()
            opt.step()
    for a, b in zip(ours_w, timm_w):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(ours_w[0], torch_w[0], atol=1e-3)    # torch's RMSprop differs


@pytest.mark.parametrize("optimizer, cls", [("sgd", torch.optim.SGD),
                                            ("rmsprop", torch.optim.RMSprop),
                                            ("rmsprop_tf", ctrain.RMSpropTF)])
def test_fit_uses_the_recipes_optimizer(optimizer, cls):
    r = common.Recipe(epochs=3, optimizer=optimizer, momentum=0.9, rmsprop_decay=0.9,
                      rmsprop_eps=1e-3, weight_decay=4e-5)
    opt = ctrain.make_optimizer(tiny_model().parameters(), r)
    assert type(opt) is cls and opt.param_groups[0]["weight_decay"] == 4e-5


def test_rmsprop_tf_with_exponential_decay_resumes_exactly(small, tmp_path):
    recipe = common.Recipe(epochs=2, batch_size=64, lr=0.01, optimizer="rmsprop_tf",
                           weight_decay=4e-5, schedule="exponential", gamma=0.5, decay_epochs=0.5)
    ha, _ = straight_and_resumed(small, tmp_path, recipe)
    assert ha["lr"][-1] == pytest.approx(0.01 * 0.5 ** 3)
    assert ha["train_loss"][-1] < ha["train_loss"][0]


# --- weight decay exemptions (MobileNetV2's and EfficientNet's official code) --------------------

def _wd_model():
    from torch import nn
    return nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8),
                         nn.Conv2d(8, 8, 3, groups=8, bias=False), nn.Conv2d(8, 4, 1, bias=True),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))


@pytest.mark.parametrize("exempt, decayed", [
    ((),
     {"0.weight", "1.weight", "1.bias", "2.weight", "3.weight", "3.bias", "6.weight", "6.bias"}),
    (("norm",), {"0.weight", "2.weight", "3.weight", "3.bias", "6.weight", "6.bias"}),
    (("norm", "bias", "depthwise"), {"0.weight", "3.weight", "6.weight"}),
])
def test_no_weight_decay_exempts_norms_biases_and_depthwise_weights(exempt, decayed):
    model = _wd_model()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()                               # no zero that decay would leave in place
    names = {id(p): n for n, p in model.named_parameters()}
    r = common.Recipe(epochs=1, lr=0.5, momentum=0.0, weight_decay=0.1, no_weight_decay=exempt)
    opt = ctrain.make_optimizer(model, r)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)                  # only weight decay moves a parameter
    opt.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved == decayed
    for n, p in model.named_parameters():
        if n in decayed:
            torch.testing.assert_close(p, before[n] * (1 - 0.5 * 0.1))
    assert sum(len(g["params"]) for g in opt.param_groups) == len(names)   # each once


def test_no_weight_decay_default_keeps_one_group_and_old_keys(small):
    model = tiny_model()
    r = common.Recipe(epochs=1)
    a = ctrain.make_optimizer(model, r).state_dict()
    b = ctrain.make_optimizer(model.parameters(), r).state_dict()
    assert a == b and len(a["param_groups"]) == 1
    assert "no_weight_decay" not in [row[0] for row in r.table().rows]
    assert "no_weight_decay" in [row[0] for row in
                                 dataclasses.replace(r, no_weight_decay=("norm",)).table().rows]


@pytest.mark.parametrize("bad, match", [("norm", "a tuple of names"),
                                        (("norms",), "choose from")])
def test_no_weight_decay_rejects_bad_names(bad, match):
    with pytest.raises(ValueError, match=match):
        common.Recipe(epochs=1, no_weight_decay=bad)
    with pytest.raises(ValueError, match="pass make_optimizer\\(model, recipe\\)"):
        ctrain.make_optimizer(tiny_model().parameters(),
                              common.Recipe(epochs=1, no_weight_decay=("norm",)))


def test_no_weight_decay_resumes_exactly(small, tmp_path):
    recipe = common.Recipe(epochs=2, batch_size=64, lr=0.05, weight_decay=1e-2,
                           no_weight_decay=("norm", "bias"))
    ha, _ = straight_and_resumed(small, tmp_path, recipe)
    assert ha["train_loss"][-1] < ha["train_loss"][0]


# --- old runs keep working ----------------------------------------------------------------------

OLD_CHECKPOINT = Path(__file__).parent / "data" / "checkpoint_v1_sgd_epoch1.pt"


def test_a_checkpoint_written_before_the_optimizer_choice_still_resumes(small, tmp_path):
    """tests/data/checkpoint_v1_sgd_epoch1.pt was written by fit before Recipe had optimizer,
    rmsprop_*, decay_epochs and staircase and before runs recorded quick mode (commit f4523ab):
    epoch 1 of 2 of this recipe, model and smoke digits set, in fp32."""
    shutil.copy(OLD_CHECKPOINT, tmp_path / ctrain.CHECKPOINT)
    old = ctrain.load_checkpoint(tmp_path / ctrain.CHECKPOINT)
    assert "optimizer" not in old["recipe"] and "quick" not in old["run"]
    model = common.get_model("cifar_baseline", widths=(8,), convs_per_stage=1)
    recipe = common.Recipe(epochs=2, batch_size=128, lr=0.05, milestones=(1.5,))
    h = common.fit(model, small, recipe, run_dir=tmp_path, resume=True, amp=False, smoke=False,
                   progress=False, verbose=False)
    assert h["epoch"] == [1, 2] and h["val_acc"][0] == old["history"]["val_acc"][0]
    first = next(k for k, v in old["model"].items() if v.is_floating_point())
    assert not torch.equal(model.state_dict()[first], old["model"][first])   # it trained on
    with pytest.raises(ctrain.CheckpointError, match="optimizer: checkpoint 'sgd', now 'rmsprop'"):
        common.fit(common.get_model("cifar_baseline", widths=(8,), convs_per_stage=1), small,
                   dataclasses.replace(recipe, optimizer="rmsprop"), run_dir=tmp_path,
                   resume=True, amp=False, smoke=False, progress=False, verbose=False)


def test_run_dir_for_keys_of_old_recipes_do_not_change(small):
    # The keys fit's run folders had before Recipe gained optimizer and schedule options
    # (computed with commit f4523ab): notebooks re-run today find their old runs.
    old = common.Recipe(epochs=182, milestones=(91, 136), weight_decay=1e-4)
    assert common.run_dir_for("nb", "m", old, small).name == "m-0312844658"
    cos = common.Recipe(epochs=10, schedule="cosine", warmup_epochs=1, nesterov=True)
    assert common.run_dir_for("nb", "m", cos, small, widths=(8,)).name == "m-c79d901ace"
    assert common.run_dir_for("nb", "m", dataclasses.replace(old, optimizer="rmsprop_tf"),
                              small).name != "m-0312844658"


# --- quick mode ---------------------------------------------------------------------------------

def test_quick_mode_trains_a_budget_of_images_and_says_so_everywhere(small, monkeypatch, capsys):
    monkeypatch.setattr(loop, "QUICK_IMAGES", 3 * len(small.train))
    recipe = common.Recipe(epochs=100, batch_size=128, lr=0.1, milestones=(50, 75))
    h = common.fit(tiny_model(), small, recipe, quick=True, smoke=False, progress=False)
    assert len(h["epoch"]) == 3 and h["mode"] == "quick" and h["quick"] is True
    assert h["lr"][-1] == pytest.approx(0.001)          # the whole schedule, compressed
    lines = capsys.readouterr().out.splitlines()
    assert lines and all("quick mode" in line.lower() for line in lines), lines
    fig = common.plot_histories(h, show=False)
    assert "quick mode: 3 of 100 epochs" in fig._suptitle.get_text()
    # smoke mode wins
    h = common.fit(tiny_model(), small, recipe, quick=True, smoke=True, progress=False,
                   verbose=False)
    assert h["mode"] == "smoke" and len(h["epoch"]) == ctrain.SMOKE_EPOCHS


@pytest.mark.parametrize("env, modes", [
    ({}, (False, False)), ({"IMAGENET5_QUICK": "1"}, (False, True)),
    ({"IMAGENET5_SMOKE": "1"}, (True, False)),
    ({"IMAGENET5_SMOKE": "1", "IMAGENET5_QUICK": "1"}, (True, False)),   # smoke wins
])
def test_modes_from_the_environment(env, modes):
    assert common.runtime._modes(env) == modes


# --- plots from a plain script ------------------------------------------------------------------

def test_plot_histories_in_a_headless_script_saves_a_png(small, tmp_path, capsys):
    h = common.fit(tiny_model(), small, common.Recipe(epochs=1, batch_size=256, lr=0.05),
                   progress=False, verbose=False)
    assert common.plot_histories({"run a": h}, path=tmp_path / "a.png") is None
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    assert f"plot saved to {tmp_path / 'a.png'}" in capsys.readouterr().out
    common.plot_histories({"run/b": h})                  # default path under runs/plots
    assert (common.runs_dir("plots") / "run_b.png").exists()


def test_plot_histories_in_a_script_with_a_display_opens_a_window(small, monkeypatch):
    import matplotlib.pyplot as plt
    shown = []
    monkeypatch.setattr(plots, "_interactive_backend", lambda: True)
    monkeypatch.setattr(plt, "show", lambda: shown.append(plt.gcf()))
    h = common.fit(tiny_model(), small, common.Recipe(epochs=1, batch_size=256, lr=0.05),
                   progress=False, verbose=False)
    try:
        common.plot_histories(h, metrics=("train_loss", "val_loss", "val_acc"))
        assert len(shown) == 1 and len(shown[0].axes) == 3
    finally:
        plt.close("all")


def test_rerunning_a_finished_run_reloads_it_without_a_progress_bar(small, tmp_path, capsys):
    recipe = common.Recipe(epochs=1, batch_size=128, lr=0.05)
    common.fit(tiny_model(), small, recipe, run_dir=tmp_path, smoke=False, progress=False,
               verbose=False)
    capsys.readouterr()
    h = common.fit(tiny_model(), small, recipe, run_dir=tmp_path, resume=True, smoke=False,
                   progress=True, verbose=False)
    assert h["epoch"] == [1]
    assert "step" not in capsys.readouterr().err


# --- AdamW with decoupled weight decay, and ConvNeXt's exemptions (issue 24) -------------------

class _LayerScaled(torch.nn.Module):
    """A conv, a LayerNorm, a linear layer and a layer-scale parameter, as in a ConvNeXt block."""

    def __init__(self):
        super().__init__()
        from torch import nn
        self.conv = nn.Conv2d(3, 4, 3, bias=True)
        self.norm = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 4)
        self.layer_scale = nn.Parameter(torch.full((4, 1, 1), 1e-6))


def test_adamw_decays_weights_directly_and_exempts_norms_biases_and_layer_scale():
    model = _LayerScaled()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    r = common.Recipe(epochs=1, optimizer="adamw", lr=0.5, weight_decay=0.1,
                      no_weight_decay=("norm", "bias", "layer_scale"))
    opt = ctrain.make_optimizer(model, r)
    assert type(opt) is torch.optim.AdamW
    assert opt.param_groups[0]["betas"] == (0.9, 0.999) and opt.param_groups[0]["eps"] == 1e-8
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)                  # a zero gradient: Adam's step is zero
    opt.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved == {"conv.weight", "fc.weight"}
    for n in moved:                         # decoupled: w * (1 - lr * wd), not via the gradient
        torch.testing.assert_close(dict(model.named_parameters())[n], before[n] * (1 - 0.5 * 0.1))


def test_adamw_fields_are_validated_shown_and_keep_old_run_folders():
    with pytest.raises(ValueError, match="adam_betas must be two numbers"):
        common.Recipe(epochs=1, optimizer="adamw", adam_betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="adam_eps positive"):
        common.Recipe(epochs=1, optimizer="adamw", adam_eps=0)
    adamw = [row[0] for row in common.Recipe(epochs=1, optimizer="adamw").table().rows]
    assert "adam_betas" in adamw and "momentum" not in adamw and "nesterov" not in adamw
    sgd = [row[0] for row in common.Recipe(epochs=1).table().rows]
    assert "adam_betas" not in sgd and "momentum" in sgd
    d = common.Recipe(epochs=1).to_dict()              # a recipe from before AdamW existed
    assert all(d[k] == v for k, v in ctrain.ADDED_FIELDS.items())
    assert common.Recipe(epochs=1, adam_betas=[0.9, 0.999]) == common.Recipe(epochs=1)


def test_adamw_with_warmup_and_cosine_trains_and_resumes_exactly(small, tmp_path):
    recipe = common.Recipe(epochs=2, batch_size=64, lr=2e-3, optimizer="adamw", weight_decay=0.05,
                           schedule="cosine", warmup_epochs=0.5, warmup_factor=0.0,
                           no_weight_decay=("norm", "bias", "layer_scale"))
    assert recipe.lr_factor(0) == 0 and recipe.lr_factor(0.25) == pytest.approx(0.5)
    ha, _ = straight_and_resumed(small, tmp_path, recipe)
    assert ha["train_loss"][-1] < ha["train_loss"][0]


# --- learning rates per part: each group's own lr, exact resume, old checkpoints (issue 31) ----

@pytest.fixture
def one_thread():
    """Five tiny fits: on a busy 2-core machine two threads mostly wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _scaled_recipe():
    return common.Recipe(epochs=2, batch_size=64, lr=0.1, schedule="cosine",
                         lr_scales=(("features.0", 0.25), ("features.2", 0.5)))


def test_lr_scales_resume_exactly_old_checkpoints_too_and_each_group_reads_its_rate(
        small, tmp_path, monkeypatch, one_thread):
    """Each group's lr is its own rate (recipe lr x scale x schedule), a stopped run resumes to
    the straight run's weights, and so does a checkpoint written before issue 31, whose scaled
    groups kept the recipe's lr and an "lr_scale" key that step hooks multiplied it by."""
    seen = []
    make = loop.make_optimizer

    def recording(model, recipe):                   # each step's group rates, after the step
        optimizer = make(model, recipe)
        optimizer.register_step_post_hook(lambda o, a, k: seen.append(
            sorted(g["lr"] for g in o.param_groups)))
        return optimizer

    monkeypatch.setattr(loop, "make_optimizer", recording)
    recipe = _scaled_recipe()
    kw = dict(progress=False, verbose=False, amp=False)
    common.seed_everything(0)
    a = tiny_model()
    ha = common.fit(a, small, recipe, **kw)
    lr = ha["lr"][-1]                               # the schedule's rate at the last step
    assert seen[-1] == pytest.approx([0.25 * lr, 0.5 * lr, lr])
    common.seed_everything(0)
    common.fit(tiny_model(), small, recipe, run_dir=tmp_path / "new", stop_after_epochs=1, **kw)
    state = ctrain.load_checkpoint(tmp_path / "new" / ctrain.CHECKPOINT)
    groups = state["optimizer"]["param_groups"]      # weight_decay_groups' order: by scale
    for group, scale in zip(groups, (1.0, 0.5, 0.25), strict=True):
        group["lr"], group["lr_scale"] = group["lr"] / scale, scale     # the old layout
    ctrain.save_checkpoint(state, tmp_path / "old" / ctrain.CHECKPOINT)
    for folder in ("new", "old"):
        torch.manual_seed(123)
        c = tiny_model()
        common.fit(c, small, recipe, run_dir=tmp_path / folder, resume=True, **kw)
        for (k, va), vc in zip(a.state_dict().items(), c.state_dict().values()):
            assert torch.equal(va, vc), (folder, k)


# --- a run's own quick budget, and what a mode changed ------------------------------------------

def test_a_run_with_its_own_quick_budget_plans_from_it_says_so_and_resumes_only_with_it(
        small, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(common.runtime, "_CHANGES", {})
    n = len(small.train)
    recipe = common.Recipe(epochs=100, batch_size=256, lr=0.05, milestones=(50, 75))
    kw = dict(smoke=False, progress=False, amp=False)
    h = common.fit(tiny_model(), small, recipe, quick=True, quick_images=2 * n, run_dir=tmp_path,
                   stop_after_epochs=1, **kw)
    out = capsys.readouterr().out
    assert h["quick_images"] == 2 * n and h["epoch"] == [1]
    assert f"2 of the recipe's 100 epochs ({2 * n:,} images seen; this run's quick budget is " \
           f"{2 * n:,} images, the default {ctrain.QUICK_IMAGES:,})" in out, out
    assert [line for line in common.mode_changes() if f"quick budget, {2 * n:,};" in line]
    with pytest.raises(ctrain.CheckpointError, match="quick_images"):
        common.fit(tiny_model(), small, recipe, quick=True, quick_images=3 * n, run_dir=tmp_path,
                   resume=True, verbose=False, **kw)
    h = common.fit(tiny_model(), small, recipe, quick=True, quick_images=2 * n, run_dir=tmp_path,
                   resume=True, verbose=False, **kw)
    assert h["epoch"] == [1, 2]
    # the default budget prints no budget sentence; smoke and full mode ignore quick_images
    assert loop._plan_epochs(recipe, n, False, True, None) == round(ctrain.QUICK_IMAGES / n)
    assert loop._plan_epochs(recipe, n, False, True, 5 * n) == 5
    assert loop._plan_epochs(recipe, n, False, True, 1) == 1
    assert loop._plan_epochs(recipe, n, False, True, 10_000 * n) == 100
    assert loop._plan_epochs(recipe, n, True, True, 5 * n) == ctrain.SMOKE_EPOCHS
    assert loop._plan_epochs(recipe, n, False, False, 5 * n) == 100
    hs = common.fit(tiny_model(), small, recipe, smoke=True, quick_images=5 * n, progress=False,
                    verbose=False)
    assert len(hs["epoch"]) == ctrain.SMOKE_EPOCHS and "quick_images" not in hs
    for bad in (0, -5, 2.5, True, "40000"):
        with pytest.raises(ValueError, match="quick_images is the number of training images"):
            common.fit(tiny_model(), small, recipe, quick=True, quick_images=bad, **kw)


def test_by_mode_gives_each_modes_value_and_says_what_it_changed(monkeypatch, capsys):
    rt = common.runtime
    monkeypatch.setattr(rt, "_CHANGES", {})
    seeds = dict(what="seeds", why="each seed is a whole training run")
    for smoke, quick, want in ((False, False, (0, 1, 2)), (False, True, (0,)),
                               (True, False, (5,)), (True, True, (5,))):
        monkeypatch.setattr(rt, "SMOKE", smoke)
        monkeypatch.setattr(rt, "QUICK", quick)
        assert common.by_mode((0, 1, 2), quick=(0,), smoke=(5,), **seeds) == want
    monkeypatch.setattr(rt, "SMOKE", False)
    monkeypatch.setattr(rt, "QUICK", True)
    capsys.readouterr()
    assert common.by_mode((0, 1, 2), quick=(0,), **seeds) == (0,)
    assert capsys.readouterr().out == ("[quick mode] seeds: 0 (full mode: 0, 1, 2): each seed "
                                       "is a whole training run\n")
    assert common.by_mode(30_000, what="size", why="unchanged") == 30_000   # same: silent
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(rt, "SMOKE", True)
    assert common.by_mode([1, 2], quick=[1], what="arms", why="cost") == [1]  # smoke: quick's
    assert common.mode_changes() == [
        "[quick mode] seeds: 0 (full mode: 0, 1, 2): each seed is a whole training run",
        "[smoke mode] arms: 1 (full mode: 1, 2): cost"]
    assert common.mode_report().splitlines()[1:] == [
        "- seeds: 0 (full mode: 0, 1, 2): each seed is a whole training run",
        "- arms: 1 (full mode: 1, 2): cost"]
    for bad in (dict(what="", why="x"), dict(what="x"), dict(what="x", why=" ")):
        with pytest.raises((ValueError, TypeError), match="what=|why"):
            common.by_mode(1, quick=2, **bad)
    monkeypatch.setattr(rt, "SMOKE", False)
    monkeypatch.setattr(rt, "QUICK", False)
    assert common.mode_changes() and common.mode_report() == "full mode: nothing was left out."


# --- the live plot ------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds, stop, drawn", [
    (math.inf, None, [1, 5]),             # the first epoch and the last, nothing between
    (math.inf, 3, [1, 3]),                # a run stopped early still shows its last epoch
    (0.0, None, [1, 2, 3, 4, 5]),         # at most every 0 s: every epoch
])
def test_the_live_plot_is_redrawn_at_most_every_few_seconds(small, tmp_path, monkeypatch,
                                                            seconds, stop, drawn):
    shown = []
    monkeypatch.setattr(loop, "LIVE_PLOT_SECONDS", seconds)
    monkeypatch.setattr(plots, "show_live",
                        lambda history, handle: shown.append(history["epoch"][-1]) or "handle")
    common.fit(tiny_model(widths=(8,)), small, common.Recipe(epochs=5, batch_size=256, lr=0.05),
               run_dir=tmp_path, stop_after_epochs=stop, live_plot=True, smoke=False,
               quick=False, progress=False, verbose=False)
    assert shown == drawn


# --- the layout a model card asks for -----------------------------------------------------------

def test_a_model_whose_card_says_nchw_on_cpus_trains_in_nchw_there(small):
    from common.train import precision
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    dense = common.get_model("cifar_densenet_bc100_k12")
    assert common.model_card("cifar_densenet_bc100_k12").nchw_on == ("cpu",)
    assert not precision.channels_last_for(cpu, dense) and precision.channels_last_for(cuda, dense)
    assert precision.channels_last_for(cpu, tiny_model()) and precision.channels_last_for(cpu)
    unnamed = torch.nn.Sequential(torch.nn.Conv2d(3, 10, 3), torch.nn.AdaptiveAvgPool2d(1),
                                  torch.nn.Flatten())
    assert precision.channels_last_for(cpu, unnamed)
    stand_in = tiny_model()           # fit finds a card by the model's registry name
    stand_in.name = "cifar_densenet_bc100_k12"
    h = common.fit(stand_in, small, common.Recipe(epochs=1, batch_size=256, lr=0.05),
                   progress=False, verbose=False)
    assert h["channels_last"] is False
    assert common.fit(tiny_model(), small, common.Recipe(epochs=1, batch_size=256, lr=0.05),
                      progress=False, verbose=False)["channels_last"] is True
    with pytest.raises(ValueError, match="nchw_on"):
        common.models.register_model("x_test_nchw", nchw_on="cpu")
