"""common.runs: train_run (the training cell every notebook writes), its run folders, and
caveats (why a number is not the paper's)."""
import dataclasses

import pytest
import torch

import common
from common.models.baseline import BaselineCNN

TINY = dict(widths=(8,), convs_per_stage=1)


@pytest.fixture(scope="module")
def small():
    return common.load_data("digits", smoke=True, device="cpu", verbose=False)


@pytest.fixture
def recipe():
    return common.Recipe(epochs=1, batch_size=128, lr=0.05)


def test_train_run_is_seed_build_folder_and_a_resumable_fit(small, recipe, capsys):
    model, history = common.train_run("nb", "cifar_baseline", recipe, small, **TINY)
    folder = common.run_dir_for("nb", "cifar_baseline", recipe, small, **TINY)
    assert (folder / "checkpoint.pt").exists() and history["epoch"] == [1]
    assert model.name == "cifar_baseline" and history["model"] == "cifar_baseline"
    common.seed_everything(0)                  # the same weights as a hand-written cell's
    by_hand = common.get_model("cifar_baseline", num_classes=small.num_classes, **TINY)
    first = next(iter(by_hand.state_dict()))
    assert not torch.equal(model.state_dict()[first], by_hand.state_dict()[first])   # trained
    capsys.readouterr()
    again, reloaded = common.train_run("nb", "cifar_baseline", recipe, small, **TINY)
    assert "resuming from" in capsys.readouterr().out          # reloaded, not trained again
    assert reloaded["train_loss"] == history["train_loss"]
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(),
                                                  model.state_dict().values()))


def test_a_seed_other_than_0_gets_its_own_folder_and_seed_0_keeps_its_name(small, recipe):
    _, h1 = common.train_run("nb", "cifar_baseline", recipe, small, seed=1, **TINY)
    assert h1["seed"] == 1
    assert (common.run_dir_for("nb", "cifar_baseline", recipe, small, seed=1, **TINY)
            / "checkpoint.pt").exists()
    with pytest.raises(ValueError, match="key names seed 2 but seed=1"):
        common.train_run("nb", "cifar_baseline", recipe, small, seed=1, key={"seed": 2})


def test_train_run_builds_a_model_the_registry_does_not_name(small, recipe):
    model, history = common.train_run(
        "nb", "my_net", recipe, small, key={"train_images": len(small.train)},
        build=lambda: BaselineCNN(num_classes=small.num_classes, **TINY))
    assert model.name == "my_net" and history["model"] == "my_net"
    assert (common.run_dir_for("nb", "my_net", recipe, small, train_images=len(small.train))
            / "history.json").exists()
    with pytest.raises(TypeError, match="build or model keywords, not both"):
        common.train_run("nb", "my_net", recipe, small, build=BaselineCNN, widths=(8,))


def test_caveats_name_the_mode_and_the_data(small, recipe):
    _, history = common.train_run("nb", "cifar_baseline", recipe, small, **TINY)
    assert common.caveats(small, history) == [
        f"smoke mode (1 of the recipe's 1 epochs, on {len(small.train):,} training images)",
        "the offline digits stand-in, not CIFAR-10"]
    assert common.caveats(small)[0] == "smoke mode (a few hundred images, a couple of epochs)"
    full = dataclasses.replace(small, name="cifar10", offline=False, smoke=False)
    assert common.caveats(full) == []                    # a full run on CIFAR-10: comparable
    quick = dataclasses.replace(full, quick=True)
    assert common.caveats(quick) == ["quick mode (a subset, a few epochs)"]
    chosen = dataclasses.replace(full, name="digits")   # the digits set chosen, not fallen back to
    assert common.caveats(chosen) == ["digits, not CIFAR-10"]
