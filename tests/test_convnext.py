"""Notebook 08's saved code (common/models/convnext.py): ConvNeXt-T/S/B/L against torchvision and
Table 1, the roadmap against Table 10, layer scale, stochastic depth, the downsampling layer."""

import functools

import pytest
import torch
import torchvision
from torch import nn

import common
from common.inspection import constant_parameters, state_dict_differences
from common.models import convnext as C
from common.models.resnet import ResNet

VARIANTS = ("tiny", "small", "base", "large")


def _meta(build):
    with torch.device("meta"):
        return build()


@pytest.fixture(scope="module")
def reference():
    return _default_initialised_reference()


def _default_initialised_reference():
    """torchvision's ConvNeXt-T with random weights (fast) and its default constants: layer scale
    1e-6, LayerNorm weight 1 and bias 0, biases 0 (what torchvision's own init leaves)."""
    reference = common.random_reference(torchvision.models.convnext_tiny)
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if name.endswith("layer_scale"):
                p.fill_(1e-6)
            elif name.endswith("bias"):
                p.zero_()
        for m in reference.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
    return reference


def test_convnext_tiny_equals_torchvision_with_random_norms_and_layer_scale(reference):
    assert "features.1.0.layer_scale" in constant_parameters(reference)
    ours = _meta(lambda: common.get_model("convnext_tiny")).to_empty(device="cpu")
    assert common.check_against_reference(ours, reference, (2, 3, 32, 32), verbose=False) < 1e-4


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_has_torchvisions_names_shapes_and_exact_parameter_count(variant):
    ours = _meta(lambda: common.get_model(f"convnext_{variant}"))
    theirs = _meta(getattr(torchvision.models, f"convnext_{variant}"))
    assert not state_dict_differences(ours.state_dict(), theirs.state_dict())
    assert common.count_params(ours) == C.PAPER_NUMBERS[variant]["torchvision_params"]
    assert common.count_params(ours) == common.count_params(theirs)
    rates = [m.stochastic_depth.p for m in ours.modules() if isinstance(m, C.CNBlock)]
    assert rates[-1] == pytest.approx(C.CONVNEXT_CONFIGS[variant]["stochastic_depth_prob"])
    assert rates[-1] == pytest.approx(max(m.p for m in theirs.modules()
                                          if isinstance(m, torchvision.ops.StochasticDepth)))


def test_convnext_tiny_has_28_589_128_parameters():
    assert common.count_params(_meta(C.convnext_tiny)) == 28_589_128


@pytest.mark.parametrize("variant", VARIANTS + ("xlarge",))
def test_parameters_and_multiply_adds_match_table_1(variant):
    model = _meta(lambda: C._convnext(variant))
    paper = C.PAPER_NUMBERS[variant]
    assert common.count_params(model) / paper["params"] == pytest.approx(1, abs=0.025)
    assert common.count_macs(model) / paper["flops"] == pytest.approx(1, abs=0.025)


def test_roadmap_multiply_adds_round_to_table_10_whose_last_rows_are_shifted_up_one_row():
    """Every step's count rounds to Table 10's printed GFLOPs (within half of its last digit),
    except from BN -> LN down, where each count rounds to the value printed one row up (notebook
    08, section 4: Figure 2 and Table 11 show no change at BN -> LN)."""
    names = [row[0] for row in C.ROADMAP]
    printed = [row[2] for row in C.ROADMAP]
    bn_to_ln = names.index("BN -> LN")
    for k, (name, _, gflops, top1, source) in enumerate(C.ROADMAP):
        gmacs = common.count_macs(_meta(functools.partial(C.convnext_roadmap, step=k))) / 1e9
        supported = printed[k - 1] if k >= bn_to_ln else gflops
        assert abs(gmacs - supported) <= 0.005, (k, name, gmacs, supported)
        if k >= bn_to_ln:
            assert abs(gmacs - gflops) > 0.005, (k, name, gmacs, gflops)
        assert source and 70 < top1 < 85
    assert len(names) == 13 and bn_to_ln == 11
    assert len(C.FIGURE_2_GFLOPS) == len(C.ROADMAP) and C.FIGURE_2_GFLOPS[bn_to_ln] == 4.2
    bn_to_ln_200 = [row[0] for row in C.ROADMAP_200].index("BN -> LN")
    # Table 11: no jump
    assert C.ROADMAP_200[bn_to_ln_200][2] == C.ROADMAP_200[bn_to_ln_200 - 1][2]


def test_roadmap_ends_are_resnet50_and_convnext_tiny(reference):
    first = _meta(lambda: C.convnext_roadmap(step=0))
    assert type(first) is ResNet
    assert not state_dict_differences(first.state_dict(),
                                      _meta(torchvision.models.resnet50).state_dict())
    assert type(_meta(lambda: C.convnext_roadmap(step=1))) is ResNet
    last = _meta(lambda: C.convnext_roadmap(step=len(C.ROADMAP) - 1)).to_empty(device="cpu")
    tiny = _meta(C.convnext_tiny).to_empty(device="cpu")
    last.load_state_dict(reference.state_dict(), strict=True)       # torchvision's names
    tiny.load_state_dict(last.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(last.eval()(x), tiny.eval()(x))
    with pytest.raises(ValueError, match="step must be 0 ... 12"):
        C.convnext_roadmap(step=13)


@pytest.mark.parametrize("step", range(2, 12))
def test_each_intermediate_step_changes_what_its_row_says(step):
    before, after = C.roadmap_config(step - 1), C.roadmap_config(step)
    change = C.ROADMAP[step][1]
    assert {k: v for k, v in after.items() if before.get(k) != v} == change
    net = _meta(lambda: C.convnext_roadmap(step=step, num_classes=10))
    assert isinstance(net, C.RoadmapNet)
    assert net.eval()(torch.randn(1, 3, 32, 32, device="meta")).shape == (1, 10)


def test_layer_scale_starts_at_1e_minus_6_and_hides_a_relu_block_from_a_plain_compare():
    reference = C.ConvNeXt(dims=(8, 16), depths=(1, 1), num_classes=5)
    relu = C.ConvNeXt(dims=(8, 16), depths=(1, 1), num_classes=5,
                      block=lambda d, s, p, **kw: C.CNBlock(d, s, p, activation=nn.ReLU, **kw))
    assert all(torch.all(b.layer_scale == 1e-6)
               for b in reference.modules() if isinstance(b, C.CNBlock))
    relu.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(relu.eval()(x), reference.eval()(x))
    with pytest.raises(AssertionError):
        common.check_against_reference(relu, reference, (2, 3, 16, 16), verbose=False)


def test_stochastic_depth_grows_linearly_and_acts_in_train_mode_only():
    model = _meta(C.convnext_tiny)
    rates = [b.stochastic_depth.p for b in model.modules() if isinstance(b, C.CNBlock)]
    expected = torch.linspace(0, 0.1, 18).tolist()               # the official code's rule
    assert rates == pytest.approx(expected)
    blk = C.CNBlock(8, layer_scale=1.0, stochastic_depth_prob=0.5)
    x = torch.randn(64, 8, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(blk.eval()(x), blk(x))
        out = blk.train()(x)
    same = (out - x).flatten(1).abs().amax(1) == 0                # branch dropped: output = input
    assert 0.2 < same.float().mean() < 0.8


def test_layer_norm_2d_is_the_official_channels_first_layer_norm_and_comes_first_in_downsampling():
    ln = C.LayerNorm2d(6, eps=1e-6)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5), ln.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 6, 5, 3)
    u, s = x.mean(1, keepdim=True), (x - x.mean(1, keepdim=True)).pow(2).mean(1, keepdim=True)
    torch.testing.assert_close(ln(x), ln.weight[:, None, None] * (x - u) / torch.sqrt(s + 1e-6)
                               + ln.bias[:, None, None])
    tiny = _meta(C.convnext_tiny)
    for i in (2, 4, 6):
        norm, conv = tiny.features[i]
        assert isinstance(norm, C.LayerNorm2d) and conv.kernel_size == (2, 2) == conv.stride
    assert isinstance(tiny.classifier[0], C.LayerNorm2d)
    assert isinstance(tiny.classifier[2], nn.Linear)


def test_cifar_convnext_layout_and_errors():
    model = C.cifar_convnext()
    shapes = common.output_shapes(model, (2, 3, 32, 32), names=[f"features.{i}" for i in (0, 6)])
    assert shapes["features.0"][-1] == 16 and shapes["features.6"][-2:] == (2, 2)
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="at least 16x16"):
        model(torch.randn(1, 3, 8, 8))
    k3 = common.get_model("cifar_convnext", kernel_size=3)
    assert k3.features[1][0].block[0].kernel_size == (3, 3)


def test_constructors_docstrings_read_the_paper_numbers():
    for v in VARIANTS:
        doc = getattr(C, f"convnext_{v}").__doc__
        p = C.PAPER_NUMBERS[v]
        assert f"{p['params'] / 1e6:g}M" in doc and f"{p['flops'] / 1e9:g} GFLOPs" in doc
        assert f"{p['top1']:g}%" in doc
        assert f"{C.CONVNEXT_CONFIGS[v]['stochastic_depth_prob']:g}" in doc
