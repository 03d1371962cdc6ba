"""common.inspection and the model registry."""
import re

import pytest
import torch
import torchvision
from torch import nn

import common
from common.inspection import load_state_dict_strict
from common.models import resnet as R
from common.models.registry import constructor_keywords, model_card


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


def test_paper_vs_ours_names_a_source_that_is_not_the_paper(capsys):
    common.paper_vs_ours([("a", 100, 100)], source="torchvision")
    header = capsys.readouterr().out.splitlines()[0]
    assert "torchvision" in header and "ours/torchvision" in header and "paper" not in header
    with pytest.raises(AssertionError,
                       match=r"(?s)differs from torchvision .*a: torchvision 100, ours 103"):
        common.paper_vs_ours([("a", 100, 103)], source="torchvision")


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
    seven = common.get_model("cifar_baseline", num_classes=7)
    assert seven(torch.zeros(1, 3, 32, 32)).shape == (1, 7)
    with pytest.raises(ValueError,
                       match=r"Unknown model name 'cifar_baseln'.*cifar_baseline.*Available"):
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


# --- check_against_reference cannot pass a batch-norm placement bug (issue 18) -------------------
# A learner's BasicBlock written from the paper, right and with the three usual batch-norm bugs.
# Each overrides forward only, so the module names (and the strict load) are those of the course.

def _shortcut(block, x):
    return x if block.downsample is None else block.downsample(x)


class RightBlock(R.BasicBlock):
    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + _shortcut(self, x))


class BNAfterReLU(R.BasicBlock):
    def forward(self, x):
        out = self.bn1(self.relu(self.conv1(x)))                 # the bug: BN after the ReLU
        out = self.bn2(self.conv2(out))
        return self.relu(out + _shortcut(self, x))


class SwappedBNs(R.BasicBlock):
    def forward(self, x):
        out = self.relu(self.bn2(self.conv1(x)))                 # the bug: bn2 where bn1 belongs
        out = self.bn1(self.conv2(out))
        return self.relu(out + _shortcut(self, x))


class SkippedBN2(R.BasicBlock):
    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.conv2(out)                                    # the bug: bn2 never applied
        return self.relu(out + _shortcut(self, x))


BUGS = [BNAfterReLU, SwappedBNs, SkippedBN2]


def _plain_load_agrees(ours, reference, size):
    """What the check did before: load the reference as it is and compare outputs."""
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(*size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.allclose(ours.eval()(x), reference.eval()(x), atol=1e-5, rtol=1e-4)


def _block_pair(cls):
    torch.manual_seed(0)
    return cls(64, 64), torchvision.models.resnet.BasicBlock(64, 64)   # default initialisation


def _resnet18_pair(cls):
    torch.manual_seed(0)
    return R.ResNet(cls, [2, 2, 2, 2]), torchvision.models.resnet18()  # default initialisation


BLOCK_INPUT, NET_INPUT = (2, 64, 8, 8), (2, 3, 32, 32)


@pytest.mark.parametrize("pair, size", [(_block_pair, BLOCK_INPUT), (_resnet18_pair, NET_INPUT)],
                         ids=["block", "resnet18"])
@pytest.mark.parametrize("bug", BUGS, ids=lambda c: c.__name__)
def test_batch_norm_bugs_are_caught_against_a_default_initialised_reference(bug, pair, size):
    ours, reference = pair(bug)
    assert _plain_load_agrees(ours, reference, size), "without random statistics, the bug hides"
    before = {k: v.clone() for k, v in reference.state_dict().items()}
    reference.train()
    with pytest.raises(AssertionError):
        common.check_against_reference(ours, reference, size, verbose=False)
    after = reference.state_dict()                               # the caller's model is untouched
    assert reference.training and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("pair, size", [(_block_pair, BLOCK_INPUT), (_resnet18_pair, NET_INPUT)],
                         ids=["block", "resnet18"])
def test_a_right_block_passes_against_a_default_initialised_reference(pair, size, capsys):
    ours, reference = pair(RightBlock)
    n_norm = sum(isinstance(m, nn.BatchNorm2d) for m in reference.modules())
    assert common.check_against_reference(ours, reference, size, label="ours") <= 1e-5
    assert capsys.readouterr().out.startswith(
        f"ours: strict load OK (the reference's {n_norm} normalisation layers given random "
        "statistics first)")


class ConvNorm(nn.Module):
    def __init__(self, norm, skip=False):
        super().__init__()
        self.conv, self.norm, self.skip = nn.Conv2d(3, 4, 3, padding=1), norm, skip

    def forward(self, x):
        x = self.conv(x)
        return x if self.skip else self.norm(x)           # skip: the layer is never applied


@pytest.mark.parametrize("norm", [
    lambda: nn.BatchNorm2d(4), lambda: nn.SyncBatchNorm(4), lambda: nn.GroupNorm(2, 4),
    lambda: nn.LayerNorm([4, 4, 4]), lambda: nn.InstanceNorm2d(4, affine=True),
    lambda: nn.RMSNorm([4, 4, 4])],
    ids=["batch", "syncbatch", "group", "layer", "instance", "rms"])
def test_every_normalisation_layer_gets_random_parameters_and_statistics(norm):
    from common.inspection import randomized_norm_copy
    model = ConvNorm(norm())
    copy, n = randomized_norm_copy(model, seed=1)
    assert n == 1 and copy.conv.weight is model.conv.weight      # other tensors are shared
    old, new = model.norm.state_dict(), copy.norm.state_dict()
    changed = [k for k in old if not torch.equal(old[k], new[k])]
    assert changed == [k for k in old if k != "num_batches_tracked"] and changed
    with pytest.raises(AssertionError):                           # a skipped layer is caught
        common.check_against_reference(ConvNorm(norm(), skip=True), model, (2, 3, 4, 4),
                                       verbose=False)


def test_random_reference_and_the_check_draw_norm_statistics_in_one_place():
    from common.inspection import random_norm_state, randomized_norm_copy
    want = random_norm_state(nn.BatchNorm2d(4), torch.Generator().manual_seed(3))
    built = common.random_reference(lambda: nn.BatchNorm2d(4), seed=3).state_dict()
    copied = randomized_norm_copy(nn.BatchNorm2d(4), seed=3)[0].state_dict()
    assert set(want) == {"weight", "bias", "running_mean", "running_var"}
    for k, v in want.items():
        assert torch.equal(built[k], v) and torch.equal(copied[k], v), k


# --- get_model: clear errors for bad keywords (issue 7) -----------------------------------------

@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10", None])
def test_get_model_refuses_a_class_count_that_is_not_a_positive_integer(bad):
    with pytest.raises(ValueError, match=r"num_classes must be a positive whole number.*"
                                         r"data\.num_classes.*got " + re.escape(repr(bad))):
        common.get_model("cifar_resnet20", num_classes=bad)


def test_a_keyword_the_model_sets_itself_is_named_with_what_it_takes():
    with pytest.raises(TypeError, match=r"does not take 'depth': cifar_resnet20 sets it itself"
                                        r".*cifar_resnet20 takes: .*num_classes.*shortcut"):
        common.get_model("cifar_resnet20", depth=3)


@pytest.mark.parametrize("name, typo, hint", [
    ("cifar_resnet20", "num_clases", "Did you mean 'num_classes'"),
    ("cifar_baseline", "widht", "Did you mean 'widths'"),
    ("vgg16", "dropuot", "Did you mean 'dropout'"),
])
def test_a_misspelt_keyword_gets_close_matches_and_the_accepted_list(name, typo, hint):
    with pytest.raises(TypeError, match=rf"does not take the keyword '{typo}'\. .*"
                                        + re.escape(hint) + rf".*{name} takes: "):
        common.get_model(name, **{typo: 3})


def test_a_misspelt_keyword_the_model_sets_itself_is_told_in_two_steps():
    """The keywords come from signatures only (the constructor's, the functions it calls and its
    model class's), so a typo of one the constructor sets itself is matched to it, with the
    warning that some are set; passing it then says that this one is."""
    with pytest.raises(TypeError, match=r"Did you mean 'widths'\?.*some of which it may set "
                                        r"itself; see "
                                        r"help\(common\.models\.resnet\.cifar_resnet20\)"):
        common.get_model("cifar_resnet20", widht=3)
    with pytest.raises(TypeError, match=r"does not take 'widths': cifar_resnet20 sets it itself"):
        common.get_model("cifar_resnet20", widths=(8, 16, 32))


@pytest.mark.parametrize("name", common.list_models())
def test_every_model_lists_its_keywords_and_where_to_read_more(name):
    assert "num_classes" in constructor_keywords(model_card(name).constructor)
    with torch.device("meta"), pytest.raises(
            TypeError, match=r"does not take the keyword 'no_such_option'\. .*takes: .*"
                             r"num_classes.*see help\(common\.models\.\w+\." + name + r"\)"):
        common.get_model(name, no_such_option=1)


class _FakeWeights:
    """A stand-in for a torchvision WeightsEnum member: no download."""

    name, url = "FAKE_V1", "https://example.invalid/fake.pth"

    def __init__(self, state, fail=False):
        self.state, self.fail = state, fail
        self.meta = {"categories": [f"class {i}" for i in range(10)]}

    def transforms(self):
        return lambda photo: torch.nn.functional.interpolate(
            photo.float()[None] / 255, size=(32, 32))[0]

    def get_state_dict(self, progress=True):
        if self.fail:
            raise OSError("no internet")
        return self.state


def test_sample_photo_ships_with_scikit_learn():
    photo = common.sample_photo()
    assert photo.dtype == torch.uint8 and photo.shape[0] == 3 and min(photo.shape[1:]) > 200


def test_classify_photo_loads_strictly_into_our_model_and_ranks_its_classes(capsys):
    torch.manual_seed(0)
    source = common.get_model("cifar_baseline", widths=(8,), convs_per_stage=1)
    ours = common.get_model("cifar_baseline", widths=(8,), convs_per_stage=1)
    weights = _FakeWeights({k: v.clone() for k, v in source.state_dict().items()})
    top = common.classify_photo(ours, weights, top=3, offline=False, show=False)
    with torch.no_grad():
        expected = source.eval()(weights.transforms()(common.sample_photo())[None]).softmax(1)[0]
    assert [c for _, c in top] == [f"class {i}" for i in expected.topk(3).indices.tolist()]
    assert [p for p, _ in top] == pytest.approx(expected.topk(3).values.tolist())
    assert "class" in capsys.readouterr().out
    renamed = _FakeWeights({"old." + k: v for k, v in source.state_dict().items()})
    assert common.classify_photo(ours, renamed, offline=False, show=False,
                                 rename=lambda k: k[len("old."):]) is not None
    with pytest.raises(RuntimeError, match="Missing key"):          # strict: nothing silently
        common.classify_photo(ours, renamed, offline=False, show=False)


def test_classify_photo_offline_or_without_internet_says_so_and_moves_on(capsys):
    model = common.get_model("cifar_baseline", widths=(8,), convs_per_stage=1)
    assert common.classify_photo(model, _FakeWeights({}), offline=True) is None
    assert "cannot be downloaded" in capsys.readouterr().out
    assert common.classify_photo(model, _FakeWeights({}, fail=True), offline=False) is None
    assert "Could not download https://example.invalid/fake.pth (OSError" in \
        capsys.readouterr().out


# --- parameters that start at a constant: layer scale (issue 24) --------------------------------

def _convnext_pair(act=nn.GELU):
    """torchvision's ConvNeXt block inside a small net, and ours: the same block with ``act``."""
    from torchvision.models.convnext import CNBlock

    def net(a):
        torch.manual_seed(0)
        blk = CNBlock(8, layer_scale=1e-6, stochastic_depth_prob=0.0)
        blk.block[4] = a()
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), blk, nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(8, 5))
    return net(act), net(nn.GELU)


def test_layer_scale_hides_a_wrong_block_from_a_plain_compare_and_the_check_catches_it():
    from common.inspection import constant_parameters
    ours, reference = _convnext_pair(nn.ReLU)
    assert "1.layer_scale" in constant_parameters(reference)
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), reference.eval()(x))   # the bug hides at 1e-6
    with pytest.raises(AssertionError):
        common.check_against_reference(ours, reference, (2, 3, 8, 8), verbose=False)
    assert torch.all(reference[1].layer_scale == 1e-6)            # the caller's is untouched


def test_a_right_convnext_block_passes_and_the_message_counts_the_constants(capsys):
    ours, reference = _convnext_pair()
    assert common.check_against_reference(ours, reference, (2, 3, 8, 8), label="ours") <= 1e-5
    out = capsys.readouterr().out
    # the block's LayerNorm; layer scale and the zero biases of torchvision's init are constants
    assert "1 normalisation layers given random statistics" in out
    assert "parameters that start at a constant (layer scale, zero biases) random values" in out


def test_constant_parameters_get_random_values_of_their_sign():
    from common.inspection import constant_parameters, randomized_norm_copy
    m = nn.Module()
    m.scale = nn.Parameter(torch.full((6,), 1e-6))
    m.negative = nn.Parameter(torch.full((6,), -2.0))
    m.shift = nn.Parameter(torch.zeros(6))
    m.random = nn.Parameter(torch.randn(6))
    m.norm = nn.LayerNorm(6)
    assert constant_parameters(m) == ["scale", "negative", "shift"]       # not the norm's own
    copy, n = randomized_norm_copy(m, seed=0)
    assert n == 4 and copy.random is m.random
    assert ((copy.scale >= 0.5) & (copy.scale <= 1.5)).all()
    assert ((copy.negative <= -0.5) & (copy.negative >= -1.5)).all()
    assert ((copy.shift.abs() <= 0.5) & (copy.shift != 0)).all()
    assert torch.all(m.scale == 1e-6)
