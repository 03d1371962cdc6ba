"""common.inspection and the model registry."""
import pytest
import torch
from torch import nn

import common
from common.inspection import load_state_dict_strict


def test_count_macs_of_a_convolution_and_a_linear_layer():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert common.count_macs(conv, (1, 3, 16, 16)) == 9 * 3 * 8 * 16 * 16
    assert common.count_macs(conv, (4, 3, 16, 16)) == 9 * 3 * 8 * 16 * 16   # per image
    assert common.count_macs(nn.Linear(100, 10), (1, 100)) == 1000


def test_count_params_counts_parameters_not_buffers():
    bn = nn.BatchNorm2d(5)
    assert common.count_params(bn) == 10
    frozen = nn.Linear(4, 2)
    frozen.bias.requires_grad_(False)
    assert common.count_params(frozen) == 10 and common.count_params(frozen, True) == 8


def test_paper_vs_ours_passes_within_and_fails_outside_tolerance(capsys):
    rows = common.paper_vs_ours([("a", 100, 100.5), ("b", None, 3)], rtol=0.01, title="t")
    assert rows[0]["ratio"] == pytest.approx(1.005) and rows[1]["ratio"] is None
    out = capsys.readouterr().out
    assert "not stated" in out and "1.0050" in out
    with pytest.raises(AssertionError, match=r"a: paper 100, ours 103"):
        common.paper_vs_ours([("a", 100, 103)], rtol=0.01)
    common.paper_vs_ours([("a", 100, 103, 0.05)], rtol=0.01)     # a row's own tolerance


def test_check_against_reference_passes_for_the_same_architecture(capsys):
    a, b = common.get_model("cifar_baseline"), common.get_model("cifar_baseline")
    diff = common.check_against_reference(a, b, (2, 3, 32, 32), label="baseline vs itself")
    assert diff < 1e-5
    assert capsys.readouterr().out.startswith("baseline vs itself: strict load OK")


def test_check_against_reference_fails_when_outputs_differ():
    class Doubled(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = common.get_model("cifar_baseline")

        def state_dict(self, *a, **k):
            return {f"{n}": v for n, v in self.inner.state_dict().items()}

        def forward(self, x):
            return 2 * self.inner(x)

    with pytest.raises(AssertionError):
        common.check_against_reference(common.get_model("cifar_baseline"), Doubled(),
                                       (2, 3, 32, 32), verbose=False)


def test_a_mismatched_state_dict_lists_what_differs():
    ours = common.get_model("cifar_baseline")
    theirs = common.get_model("cifar_baseline", widths=(32, 64, 96)).state_dict()
    theirs["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"lacks.*extra.weight.*differ in shape"):
        load_state_dict_strict(ours, theirs)


def test_summary_groups_by_blocks():
    s = common.summary(common.get_model("cifar_baseline"), (1, 3, 32, 32), depth=1)
    assert s.total_params == common.count_params(common.get_model("cifar_baseline"))
    assert "features" in str(s)


def test_registry_lists_builds_and_explains_unknown_names():
    assert "cifar_baseline" in common.list_models()
    assert all(n.startswith("cifar_") for n in common.list_models("cifar_*"))
    assert common.get_model("cifar_baseline", num_classes=7)(torch.zeros(1, 3, 32, 32)).shape == (1, 7)
    with pytest.raises(ValueError, match=r"Unknown model name 'cifar_baseln'.*cifar_baseline.*Available"):
        common.get_model("cifar_baseln")


def test_state_dict_differences_is_empty_only_when_names_and_shapes_match():
    from common.inspection import state_dict_differences
    a = common.get_model("cifar_baseline").state_dict()
    assert state_dict_differences(a, dict(a)) == []
    b = dict(a)
    b["fc.weight"] = torch.zeros(3, 3)
    del b["fc.bias"]
    found = " ".join(state_dict_differences(a, b))
    assert "fc.bias" in found and "fc.weight: ours (10, 128) vs (3, 3)" in found


def test_random_reference_draws_every_entry_and_shares_what_it_may():
    shared = {}
    a = common.random_reference(lambda: common.get_model("cifar_baseline"), seed=0, reuse=shared)
    state = a.state_dict()
    bn = state["features.0.1.running_var"]
    assert not torch.equal(bn, torch.ones_like(bn)) and (bn > 0).all()
    assert state["features.0.1.running_mean"].abs().sum() > 0
    assert all(not t.is_meta for t in state.values())
    b = common.random_reference(lambda: common.get_model("cifar_baseline", widths=(32, 64, 96)),
                                seed=1, reuse=shared)
    shared_w = b.state_dict()["features.0.0.weight"]
    assert shared_w.data_ptr() == state["features.0.0.weight"].data_ptr()       # same shape
    assert b.state_dict()["fc.weight"].shape == (10, 96)                           # drawn anew
    c = common.random_reference(lambda: common.get_model("cifar_baseline"), seed=1)
    assert not torch.equal(c.state_dict()["fc.weight"], state["fc.weight"])
