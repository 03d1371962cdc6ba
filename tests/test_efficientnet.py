"""Fast unit tests of EfficientNet saved from notebooks/06_efficientnet.ipynb
(common/models/efficientnet.py). The paper's numbers and the released coefficients are read from
the saved module (PAPER_NUMBERS, OFFICIAL_COEFFICIENTS), never typed in here. The big models are
built on the meta device (shapes only) or with common.random_reference and run on small inputs."""
import functools
import math

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models import get_model_weights
from torchvision.models._utils import _make_divisible as tv_make_divisible
from torchvision.models.efficientnet import _efficientnet_conf

import common
from common.inspection import state_dict_differences
from common.models import efficientnet as E
from common.models.senet import SqueezeExcitation

VARIANTS = list(E.OFFICIAL_COEFFICIENTS)            # b0 ... b7


@functools.lru_cache(maxsize=None)
def meta_model(variant, torchvision_s=False):
    """Ours (or torchvision's) EfficientNet-<variant> on the meta device: shapes only, built
    once."""
    with torch.device("meta"):
        if torchvision_s:
            return getattr(torchvision.models, f"efficientnet_{variant}")()
        return common.get_model(f"efficientnet_{variant}")


def test_registry_names():
    names = {f"efficientnet_{v}" for v in VARIANTS} | {"cifar_efficientnet_b0"}
    assert names <= set(common.list_models())
    assert len(VARIANTS) == 8 and set(VARIANTS) == set(E.PAPER_NUMBERS["table2"])


def test_mbconv_imports_the_blocks_of_notebooks_04_and_05():
    from common.models import mobilenetv2, senet
    assert E.SqueezeExcitation is senet.SqueezeExcitation
    assert E.ConvNormActivation is mobilenetv2.ConvNormActivation
    assert E._make_divisible is mobilenetv2._make_divisible
    for name in ("SqueezeExcitation", "ConvNormActivation", "_make_divisible"):
        source = open(E.__file__).read()
        assert f"class {name}" not in source and f"def {name}" not in source


@pytest.mark.parametrize("variant", VARIANTS)
def test_derived_configuration_equals_torchvision(variant):
    w, d, r, p = E.OFFICIAL_COEFFICIENTS[variant]
    settings, last = _efficientnet_conf(f"efficientnet_{variant}", width_mult=w, depth_mult=d)
    ours = E.compound_scale(E.OFFICIAL_COEFFICIENTS[variant])
    assert [(s.expand_ratio, s.kernel, s.stride, s.input_channels, s.out_channels, s.num_layers)
            for s in ours.stages] == [(c.expand_ratio, c.kernel, c.stride, c.input_channels,
                                       c.out_channels, c.num_layers) for c in settings]
    assert ours.stem_channels == settings[0].input_channels
    assert ours.head_channels == (last or 4 * settings[-1].out_channels)
    assert (ours.resolution, ours.dropout) == (r, p)


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_names_order_and_shapes_match_torchvision(variant):
    ours, theirs = meta_model(variant).state_dict(), meta_model(variant, True).state_dict()
    assert state_dict_differences(ours, theirs) == [] and list(ours) == list(theirs)


# B0 at a small ImageNet size, the others at their smallest input (32x32): same weights, same
# check.
@pytest.mark.parametrize("variant", VARIANTS)
def test_strict_load_and_equal_outputs_with_torchvision(variant):
    reference = common.random_reference(getattr(torchvision.models, f"efficientnet_{variant}"),
                                        seed=1)
    # ours built the fast way too (no initialisation); the strict load overwrites every entry
    ours = common.random_reference(lambda: common.get_model(f"efficientnet_{variant}"), seed=2)
    size = 64 if variant == "b0" else 32
    with torch.no_grad():
        diff = common.check_against_reference(ours, reference, input_size=(2, 3, size, size),
                                              verbose=False)
    assert diff <= 1e-5
    # torchvision's batch norm: PyTorch's defaults for B0-B4, TensorFlow's for B5-B7 (ported
    # weights)
    theirs_bn = next(m for m in reference.modules() if isinstance(m, nn.BatchNorm2d))
    ours_bn = next(m for m in ours.modules() if isinstance(m, nn.BatchNorm2d))
    assert (ours_bn.eps, ours_bn.momentum) == (theirs_bn.eps, theirs_bn.momentum)


def test_a_missing_skip_addition_loads_but_outputs_differ():
    class NoSkip(E.MBConv):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.use_res_connect = False

    reference = common.random_reference(torchvision.models.efficientnet_b0)
    with torch.device("meta"):
        assert not state_dict_differences(E.EfficientNet(block=NoSkip).state_dict(),
                                          reference.state_dict())
    with torch.no_grad(), pytest.raises(AssertionError):
        common.check_against_reference(E.EfficientNet(block=NoSkip), reference,
                                       input_size=(2, 3, 32, 32), verbose=False)


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameters_against_table2_and_torchvision(variant):
    params = common.count_params(meta_model(variant))
    assert abs(params / E.PAPER_NUMBERS["table2"][variant]["params"] - 1) <= 0.02
    assert params == get_model_weights(f"efficientnet_{variant}").DEFAULT.meta["num_params"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_multiply_adds_against_torchvision(variant):
    weights = get_model_weights(f"efficientnet_{variant}").DEFAULT
    tv_size = weights.transforms().crop_size[0]
    with torch.device("meta"):
        tv_macs = common.count_macs(meta_model(variant), (1, 3, tv_size, tv_size))
    # torchvision's "GFLOPS", at its size
    assert abs(tv_macs / 1e9 - weights.meta["_ops"]) < 0.01


def test_multiply_adds_against_table2():
    gap = {}
    for variant, (_w, _d, r, _p) in E.OFFICIAL_COEFFICIENTS.items():
        with torch.device("meta"):
            macs = common.count_macs(meta_model(variant), (1, 3, r, r))
        gap[variant] = macs / E.PAPER_NUMBERS["table2"][variant]["flops"] - 1
    # Table 2's "FLOPS" are multiply-adds: all within 5%; B4 and B5 are the two far above
    # (the notebook, section 4, finds the resolutions that would match), the others within 2.5%
    assert all(abs(g) <= 0.05 for g in gap.values())
    assert sorted(gap, key=gap.get)[-2:] in (["b4", "b5"], ["b5", "b4"])
    assert min(gap["b4"], gap["b5"]) > 0.03
    assert all(abs(g) <= 0.025 for v, g in gap.items() if v not in ("b4", "b5"))


def test_round_filters_is_the_official_rule():
    def official(filters, width, divisor=8):          # efficientnet_model.round_filters
        filters *= width
        new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
        return int(new + divisor if new < 0.9 * filters else new)

    for c in (8, 16, 24, 32, 40, 80, 112, 192, 320, 1280):
        for w in [x / 20 for x in range(5, 61)]:
            assert E.round_filters(c, w) == official(c, w) == tv_make_divisible(c * w, 8)
    assert [E.round_repeats(n, 1.4) for n in (1, 2, 3, 4)] == [2, 3, 5, 6]   # always up
    assert E.round_repeats(3, 1.0) == 3


def test_compound_scale_from_phi():
    a, b, g = (E.PAPER_NUMBERS[k] for k in ("alpha", "beta", "gamma"))
    assert E.compound_scale(0) == E.B0_CONFIG
    cfg = E.compound_scale(2)
    assert math.isclose(cfg.width, b ** 2) and math.isclose(cfg.depth, a ** 2)
    assert cfg.resolution == round(224 * g ** 2)
    assert [s.num_layers for s in cfg.stages] == [math.ceil(a ** 2 * s.num_layers)
                                                  for s in E.B0_CONFIG.stages]
    assert cfg.stem_channels == E.round_filters(32, b ** 2)
    assert cfg.head_channels == E.round_filters(1280, b ** 2)
    with pytest.raises(ValueError, match="round twice"):
        E.compound_scale(1, base=cfg)


def test_b0_is_table1():
    assert E.B0_CONFIG.stem_channels == E.TABLE1[0][3]
    assert E.B0_CONFIG.head_channels == E.TABLE1[-1][3]
    assert [s.out_channels for s in E.B0_CONFIG.stages] == [row[3] for row in E.TABLE1[1:-1]]
    assert [s.num_layers for s in E.B0_CONFIG.stages] == [row[4] for row in E.TABLE1[1:-1]]
    assert [s.stride for s in E.B0_CONFIG.stages] == [1, 2, 2, 2, 1, 2, 1]
    assert [s.kernel for s in E.B0_CONFIG.stages] == [3, 3, 5, 3, 5, 5, 3]
    with pytest.raises(ValueError, match="MBConv6, k5x5"):
        E.config_from_table([E.TABLE1[0], (2, "MBConv6 k5", 112, 16, 1), E.TABLE1[-1]])


def test_mbconv_se_width_is_a_quarter_of_the_input():
    blk = E.MBConv(40, 80, 3, 2, 6)
    se = blk.block[2]
    assert isinstance(se, SqueezeExcitation)
    assert (se.fc1.in_channels, se.fc1.out_channels) == (240, 10)
    assert isinstance(se.activation, nn.SiLU)
    assert blk.block[0][0].kernel_size == (1, 1)                # a 1x1 expansion
    assert len(E.MBConv(32, 16, 3, 1, 1).block) == 3            # no expansion when t = 1
    with pytest.raises(ValueError, match="stride"):
        E.MBConv(16, 16, 3, 3, 6)


def test_se_from_the_expanded_width_is_six_times_wider_in_every_t6_block():
    """Notebook hurdle 2 and its table: with t = 6 the expanded reading is 6x wider, not 4x."""
    model = meta_model("b0")
    blocks = [m for m in model.modules() if isinstance(m, E.MBConv)]
    ratios = set()
    for blk in blocks:
        se = blk.block[-2]
        expanded_reading = max(1, se.fc1.in_channels // 4)    # a quarter of what it rescales
        if blk.expand_ratio == 6:
            ratios.add(expanded_reading / se.fc1.out_channels)
    assert ratios == {6.0}
    se_params = sum(common.count_params(m) for m in model.modules()
                    if isinstance(m, SqueezeExcitation))
    wide = sum(2 * s.fc1.in_channels * max(1, s.fc1.in_channels // 4) + s.fc1.in_channels
               + max(1, s.fc1.in_channels // 4)
               for s in model.modules() if isinstance(s, SqueezeExcitation))
    assert wide / se_params > 5


def test_depthwise_init_is_torchvisions_not_the_official_codes():
    """Notebook sec. 3: fan-out C k^2 (torchvision, ours) for depthwise convs; the official code's
    TF depthwise kernel (k, k, C, 1) gives k^2, a std sqrt(C) larger."""
    torch.manual_seed(0)
    model = E.EfficientNet()
    reference = dict(torchvision.models.efficientnet_b0().named_modules())
    checked = 0
    for ours, theirs in ((m, reference[name]) for name, m in model.named_modules()
                         if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1
                         and m.weight.numel() >= 4000):
        checked += 1
        k2 = ours.kernel_size[0] * ours.kernel_size[1]
        std_ours = math.sqrt(2 / (ours.out_channels * k2))
        assert abs(ours.weight.std().item() / std_ours - 1) < 0.1
        assert abs(theirs.weight.std().item() / std_ours - 1) < 0.1      # torchvision's, too
        assert math.sqrt(2 / k2) / ours.weight.std().item() > 0.9 * math.sqrt(ours.out_channels)
    assert checked >= 5


def test_stochastic_depth_is_torchvisions_and_train_only():
    x = torch.ones(2000, 4, 2, 2)
    sd = E.StochasticDepth(0.3)
    assert torch.equal(sd.eval()(x), x)
    torch.manual_seed(0)
    ours = sd.train()(x)
    torch.manual_seed(0)
    assert torch.equal(ours, torchvision.ops.stochastic_depth(x, 0.3, "row", training=True))
    kept = (ours.flatten(1) != 0).all(1)
    assert ((ours.flatten(1) == 0).all(1) | kept).all()       # one coin per sample
    assert abs(kept.float().mean().item() - 0.7) < 0.04
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            E.StochasticDepth(bad)


@pytest.mark.parametrize("variant", ["b0", "b3", "b7"])
def test_stochastic_depth_grows_linearly_as_in_torchvision(variant):
    ours, theirs = meta_model(variant), meta_model(variant, True)
    ours_p = [m.p for m in ours.modules() if isinstance(m, E.StochasticDepth)]
    theirs_p = [m.p for m in theirs.modules() if isinstance(m, torchvision.ops.StochasticDepth)]
    n = len(ours_p)
    assert ours_p == theirs_p and ours_p == [0.2 * i / n for i in range(n)]


def test_stochastic_depth_active_in_train_mode_only_and_only_on_shortcuts():
    model = common.get_model("cifar_efficientnet_b0", width_mult=0.25, depth_mult=0.5,
                             stochastic_depth_prob=0.5)
    x = torch.randn(16, 3, 16, 16)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model.features(x), model.features(x))
        model.train()
        torch.manual_seed(0)
        first = model.features(x)
        torch.manual_seed(1)
        assert not torch.allclose(first, model.features(x))
    blocks = [b for stage in model.features[1:-1] for b in stage]
    shortcut = [b for b in blocks if b.use_res_connect]
    plain = [b for b in blocks if not b.use_res_connect and b.stochastic_depth.p > 0]
    assert shortcut and plain
    with torch.no_grad():          # a block without a shortcut never zeroes a sample
        blk = plain[0].train()
        out = blk(torch.randn(64, blk.block[0][0].in_channels, 8, 8))
        assert (out.flatten(1).abs().sum(1) > 0).all()
        # a block with a shortcut, its branch dropped for some samples: output == input there
        blk = shortcut[-1].train()
        xb = torch.randn(64, blk.out_channels, 8, 8)
        torch.manual_seed(0)
        same = (blk(xb) == xb).flatten(1).all(1)
        assert 0 < same.sum() < 64


def test_dropout_and_batch_norm_per_variant():
    for variant, (_w, _d, r, p) in E.OFFICIAL_COEFFICIENTS.items():
        m = meta_model(variant)
        assert m.classifier[0].p == p and m.config.resolution == r
        bn = m.features[0][1]
        expected = (1e-3, 0.01) if variant in ("b5", "b6", "b7") else (1e-5, 0.1)
        assert (bn.eps, bn.momentum) == expected
    assert f"{E.PAPER_NUMBERS['table2']['b4']['top1']}% top-1" in E.efficientnet_b4.__doc__


def test_cifar_adaptation():
    model = common.get_model("cifar_efficientnet_b0").eval()
    assert model.features[0][0].stride == (1, 1) and model.config.stages[1].stride == 1
    with torch.no_grad():
        assert model.features(torch.randn(2, 3, 32, 32)).shape == (2, 1280, 4, 4)
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert model.min_input_size == 8
    with torch.device("meta"):
        b0 = common.get_model("efficientnet_b0", num_classes=10)
        assert common.count_params(model) == common.count_params(b0)


@pytest.mark.parametrize("name, size", [("efficientnet_b0", 32), ("efficientnet_b0", 57),
                                        ("cifar_efficientnet_b0", 8)])
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
        common.get_model("efficientnet_b0").eval()(bad)


def test_one_image_in_train_mode_that_would_leave_a_1x1_map_is_a_clear_error():
    model = common.get_model("efficientnet_b0").train()
    with pytest.raises(ValueError, match="model.eval"):
        model(torch.randn(1, 3, 32, 32))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1000)


@pytest.mark.parametrize("name, kwargs, match", [
    ("efficientnet_b0", {"num_classes": 0}, "num_classes"),
    ("efficientnet_b2", {"stochastic_depth_prob": 1.0}, r"\[0, 1\)"),
    ("cifar_efficientnet_b0", {"num_classes": -1}, "num_classes")])
def test_clear_error_on_bad_arguments(name, kwargs, match):
    with torch.device("meta"), pytest.raises(ValueError, match=match):
        common.get_model(name, **kwargs)


def test_the_exercises_name_the_hurdles():
    from common.exercises import diagnose, get_exercise
    from common.exercises.efficientnet import as_block

    mbconv = {m.title for m in get_exercise("efficientnet.MBConv").mutants}
    assert {"the SE reduced from the expanded width", "no shortcut", "a 3x3 expansion",
            "the shortcut when the channels change"} <= mbconv
    rounding = {m.title for m in get_exercise("efficientnet.round_filters").mutants}
    assert {"multiples of 4", "no 10% rule", "rounded down"} <= rounding

    class Mine(nn.Module):         # a learner's own names and layout pass
        def __init__(self, in_channels, out_channels, kernel_size, stride, expand_ratio):
            super().__init__()
            h = in_channels * expand_ratio
            self.expand = None if expand_ratio == 1 else nn.Sequential(
                nn.Conv2d(in_channels, h, 1, bias=False), nn.BatchNorm2d(h), nn.SiLU())
            self.dw = nn.Sequential(nn.Conv2d(h, h, kernel_size, stride, kernel_size // 2,
                                              groups=h, bias=False), nn.BatchNorm2d(h), nn.SiLU())
            self.se = SqueezeExcitation(h, max(1, in_channels // 4), activation=nn.SiLU)
            self.project = nn.Sequential(nn.Conv2d(h, out_channels, 1, bias=False),
                                         nn.BatchNorm2d(out_channels))
            self.skip = stride == 1 and in_channels == out_channels

        def forward(self, x):
            out = self.project(self.se(self.dw(x if self.expand is None else self.expand(x))))
            return out + x if self.skip else out

    assert diagnose("efficientnet.MBConv", Mine).status == "passed"

    def mine_round(filters, width):
        v = filters * width
        new = max(8, int(v + 4) // 8 * 8)
        return new + 8 if new < 0.9 * v else new

    assert diagnose("efficientnet.round_filters", as_block(mine_round)).status == "passed"
    report = diagnose("efficientnet.round_filters",
                      as_block(lambda f, w: 4 * math.ceil(int(f * w) / 4)))
    assert report.status == "failed" and report.known_bugs == ["multiples of 4"]
