"""Fast unit tests of MobileNetV2 saved from notebooks/05_mobilenetv2.ipynb
(common/models/mobilenetv2.py). The paper's numbers and the official checkpoints' table are read
from the saved module (PAPER_NUMBERS, TF_SLIM_CHECKPOINTS), never typed in here."""
import pytest
import torch
import torchvision
from torch import nn
from torchvision.models._utils import _make_divisible as tv_make_divisible

import common
from common.inspection import state_dict_differences
from common.models import mobilenetv2 as M

WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)           # the widths of the official checkpoints


def params_without_bn(model):
    return common.count_params(model) - sum(p.numel() for m in model.modules()
                                            if isinstance(m, nn.BatchNorm2d)
                                            for p in m.parameters())


def test_registry_names():
    assert {"mobilenet_v2", "cifar_mobilenet_v2"} <= set(common.list_models())
    assert isinstance(common.get_model("mobilenet_v2", width_mult=0.5), M.MobileNetV2)


@pytest.mark.parametrize("width", WIDTHS)
def test_strict_load_and_equal_outputs_with_torchvision(width):
    reference = common.random_reference(lambda: torchvision.models.mobilenet_v2(width_mult=width))
    ours = common.get_model("mobilenet_v2", width_mult=width)
    assert common.check_against_reference(ours, reference, input_size=(2, 3, 32, 32),
                                          verbose=False) <= 1e-5


@pytest.mark.parametrize("width", (*WIDTHS, 0.1, 0.6, 2.0))
def test_state_dict_names_order_and_shapes_match_torchvision(width):
    with torch.device("meta"):
        ours = common.get_model("mobilenet_v2", width_mult=width).state_dict()
        theirs = torchvision.models.mobilenet_v2(width_mult=width).state_dict()
    assert state_dict_differences(ours, theirs) == [] and list(ours) == list(theirs)


@pytest.mark.parametrize("width", sorted(M.PAPER_NUMBERS["table4"]))
def test_multiply_adds_match_table4(width):
    with torch.device("meta"):
        macs = common.count_macs(common.get_model("mobilenet_v2", width_mult=width))
    assert abs(macs / M.PAPER_NUMBERS["table4"][width]["madds"] - 1) <= 0.01


def test_parameters_against_table4_and_its_discrepancy():
    with torch.device("meta"):
        p10 = common.count_params(common.get_model("mobilenet_v2"))
        p14 = common.count_params(common.get_model("mobilenet_v2", width_mult=1.4))
    # "3.4M": see notebook sec. 4
    assert abs(p10 / M.PAPER_NUMBERS["table4"][1.0]["params"] - 1) <= 0.035
    assert p10 == torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["num_params"]
    assert p14 / M.PAPER_NUMBERS["table4"][1.4]["params"] < 0.9    # the paper's 6.9M: not built


# Every width at 224, and every input size at width 1.0 (the notebook checks all 22 entries).
CHECKPOINTS = sorted(k for k in M.TF_SLIM_CHECKPOINTS if k[1] == 224 or k[0] == 1.0)


@pytest.mark.parametrize("key", CHECKPOINTS)
def test_official_checkpoints_reproduced(key):
    width, size = key
    macs_m, params_m, _ = M.TF_SLIM_CHECKPOINTS[key]
    with torch.device("meta"):
        model = common.get_model("mobilenet_v2", width_mult=width, num_classes=1001)
        macs = common.count_macs(model, (1, 3, size, size))
    assert int(macs / 1e6) == macs_m                    # README: truncated to whole millions
    assert round(params_without_bn(model) / 1e6, 2) == params_m   # README: no BN parameter
    folded = params_without_bn(model) + sum(m.num_features for m in model.modules()
                                            if isinstance(m, nn.BatchNorm2d))
    assert round(folded / 1e6, 2) != params_m      # not "BN folded" (a bias per channel kept)


def test_weight_shares_by_kind_of_layer():
    """Notebook sec. 4: 1x1 convolutions do almost all the multiply-adds but hold only a
    majority of the weights (the classifier holds most of the rest); depthwise ones a few
    percent of both."""
    model = common.get_model("mobilenet_v2")
    weights = {"pointwise": 0, "depthwise": 0, "full": 0, "linear": 0}
    for m in model.modules():
        if isinstance(m, nn.Linear):
            weights["linear"] += m.weight.numel()
        elif isinstance(m, nn.Conv2d):
            kind = ("depthwise" if m.groups == m.in_channels > 1
                    else "pointwise" if m.kernel_size == (1, 1) else "full")
            weights[kind] += m.weight.numel()
    total = sum(weights.values())
    assert 0.5 < weights["pointwise"] / total < 2 / 3
    assert weights["linear"] / total > 0.3
    assert weights["depthwise"] / total < 0.05
    assert weights["linear"] == model.classifier[1].weight.numel()          # the classifier alone


def test_torchvision_ships_weights_for_width_1_only():
    """Notebook hurdle 5: torchvision has no width-0.5 weights; the check there is on the
    layout."""
    with torch.device("meta"):
        width_1 = common.count_params(torchvision.models.mobilenet_v2())
    assert all(w.meta["num_params"] == width_1 for w in torchvision.models.MobileNet_V2_Weights)


def test_make_divisible():
    for v in [c * w / 100 for c in (8, 16, 24, 32, 96, 160, 320, 1280) for w in range(10, 201, 5)]:
        d = M._make_divisible(v)
        assert d % 8 == 0 and d >= 8 and d >= 0.9 * v and d == tv_make_divisible(v, 8)
    assert M._make_divisible(32 * 0.35) == 16           # rounding down to 8 would lose 29%


@pytest.mark.parametrize("cin, cout, stride, t", [
    (24, 24, 1, 6), (24, 32, 2, 6), (64, 96, 1, 6), (32, 16, 1, 1), (16, 16, 2, 6)])
def test_inverted_residual_structure(cin, cout, stride, t):
    blk = M.InvertedResidual(cin, cout, stride, t).eval()
    assert blk.use_res_connect == (stride == 1 and cin == cout)
    assert (len(blk.conv) == 4) == (t != 1)             # the expansion exists only when t != 1
    dw = blk.conv[-3][0]
    assert dw.groups == dw.in_channels == dw.out_channels == round(cin * t)
    assert dw.stride == (stride, stride)
    assert isinstance(blk.conv[-1], nn.BatchNorm2d)     # linear bottleneck: no activation after
    assert all(isinstance(u[2], nn.ReLU6) for u in blk.conv[:-2])
    with torch.no_grad():
        assert blk(torch.randn(2, cin, 16, 16)).shape == (2, cout, 16 // stride, 16 // stride)


def test_shortcut_adds_the_input():
    blk = M.InvertedResidual(24, 24, 1, 6).eval()
    with torch.no_grad():
        nn.init.zeros_(blk.conv[-1].weight)             # projection BN scale 0: F(x) = 0
        x = torch.randn(2, 24, 8, 8)
        torch.testing.assert_close(blk(x), x)


def test_relu_after_projection_loads_but_outputs_differ():
    reference = common.random_reference(
        lambda: torchvision.models.mobilenetv2.InvertedResidual(24, 32, 2, 6))
    bad = M.InvertedResidual(24, 32, 2, 6, project_activation=nn.ReLU6)
    with pytest.raises(AssertionError):
        common.check_against_reference(bad, reference, input_size=(2, 24, 16, 16), verbose=False)


def test_blocks_are_reusable_with_other_kernels_and_activations():
    blk = M.InvertedResidual(16, 24, 2, 6, kernel_size=5, activation_layer=nn.SiLU)
    assert blk.conv[1][0].kernel_size == (5, 5) and isinstance(blk.conv[0][2], nn.SiLU)
    assert blk(torch.randn(2, 16, 16, 16)).shape == (2, 24, 8, 8)
    unit = M.ConvNormActivation(8, 8, norm_layer=None, activation_layer=None)
    assert len(unit) == 1 and unit[0].bias is not None  # a conv alone keeps its bias


@pytest.mark.parametrize("width, last", [(0.35, 1280), (0.5, 1280), (1.0, 1280), (1.4, 1792)])
def test_last_layer_is_not_narrowed(width, last):
    model = common.get_model("mobilenet_v2", width_mult=width)
    assert model.last_channel == last and model.classifier[1].in_features == last


def test_cifar_adaptation():
    model = common.get_model("cifar_mobilenet_v2").eval()
    assert model.features[0][0].stride == (1, 1) and model.features[2].stride == 1
    assert [r for r in M.CIFAR_INVERTED_RESIDUAL_SETTING
            if r not in M.INVERTED_RESIDUAL_SETTING] == [[6, 24, 2, 1]]
    with torch.no_grad():
        assert model.features(torch.randn(2, 3, 32, 32)).shape == (2, 1280, 4, 4)
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert model.min_input_size == 8


@pytest.mark.parametrize("name, size",
                         [("mobilenet_v2", 32), ("mobilenet_v2", 57), ("cifar_mobilenet_v2", 8)])
def test_any_input_size_and_num_classes(name, size):
    model = common.get_model(name, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, 7)


@pytest.mark.parametrize("bad, match", [
    (torch.randn(1, 3, 31, 31), "at least 32x32"),
    (torch.randn(3, 64, 64), "batch"),
    (torch.randn(2, 1, 64, 64), "3 channels"),
    (torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8), "float"),
])
def test_clear_error_on_wrong_input(bad, match):
    with pytest.raises(ValueError, match=match):
        common.get_model("mobilenet_v2")(bad)


def test_one_image_in_train_mode_that_would_leave_a_1x1_map_is_a_clear_error():
    model = common.get_model("mobilenet_v2").train()
    with pytest.raises(ValueError, match="model.eval"):
        model(torch.randn(1, 3, 32, 32))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1000)     # two images are fine
    assert "74.7% top-1" in M.mobilenet_v2.__doc__         # the docstring reads PAPER_NUMBERS


@pytest.mark.parametrize("kwargs", [{"num_classes": 0}, {"width_mult": 0},
                                    {"inverted_residual_setting": [[6, 24, 2]]}])
def test_clear_error_on_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        common.get_model("mobilenet_v2", **kwargs)


def test_the_exercise_accepts_a_block_written_with_other_names():
    from common.exercises import diagnose, get_exercise

    class Mine(nn.Module):
        def __init__(self, in_channels, out_channels, stride, expand_ratio):
            super().__init__()
            h = in_channels * expand_ratio
            self.expand = None if expand_ratio == 1 else nn.Sequential(
                nn.Conv2d(in_channels, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6())
            self.dw = nn.Sequential(nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False),
                                    nn.BatchNorm2d(h), nn.ReLU6())
            self.project = nn.Sequential(nn.Conv2d(h, out_channels, 1, bias=False),
                                         nn.BatchNorm2d(out_channels))
            self.skip = stride == 1 and in_channels == out_channels

        def forward(self, x):
            out = self.project(self.dw(x if self.expand is None else self.expand(x)))
            return out + x if self.skip else out

    assert diagnose("mobilenetv2.InvertedResidual", Mine).status == "passed"
    titles = {m.title for m in get_exercise("mobilenetv2.InvertedResidual").mutants}
    assert {"a ReLU6 after the projection", "the shortcut at stride 2",
            "the shortcut when the channels change", "an expansion layer when t = 1",
            "a 3x3 expansion"} <= titles
