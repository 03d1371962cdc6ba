"""Fast unit tests of the SE-Nets saved from notebooks/04_senet.ipynb (common/models/senet.py):
the SE block against timm's and torchvision's, the SE ResNet blocks against notebook 02's, the
models against timm and torchvision, the paper's numbers (Hu et al., arXiv:1709.01507, TPAMI
version) against our counts, and the write-it-yourself exercises."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from timm.layers import SEModule, make_divisible
from torch import nn

import common
from common.exercises import diagnose
from common.inspection import randomized_norm_copy, state_dict_differences
from common.models import resnet as R
from common.models import senet as S

ROOT = Path(__file__).resolve().parent.parent
IMAGENET = ("seresnet50", "seresnet101", "seresnet152", "seresnext50_32x4d", "resnext50_32x4d")
CIFAR = ("cifar_seresnet20", "cifar_seresnet56", "cifar_seresnet110")
TABLE2 = {name: p for name, p in S.PAPER_NUMBERS.items() if "gflops" in p}


def reference(name):
    """timm's model of that name (torchvision's for ResNeXt-50), with random weights."""
    if name == "resnext50_32x4d":
        return torchvision.models.resnext50_32x4d
    return lambda: timm.create_model(name)


# --------------------------------------------------------------------------- the SE block

def test_se_block_computes_eqns_2_to_4():
    se = S.SqueezeExcitation(64, 4).eval()
    x = torch.randn(3, 64, 5, 7)
    with torch.no_grad():
        z = x.mean((2, 3))                                                      # Eqn. 2
        w1, b1 = se.fc1.weight[:, :, 0, 0], se.fc1.bias
        w2, b2 = se.fc2.weight[:, :, 0, 0], se.fc2.bias
        s = torch.sigmoid(torch.relu(z @ w1.T + b1) @ w2.T + b2)                 # Eqn. 3
        torch.testing.assert_close(se(x), x * s[:, :, None, None])             # Eqn. 4
    assert ((s > 0) & (s < 1)).all()
    assert common.count_params(se) == 2 * 64 * 4 + 4 + 64


@pytest.mark.parametrize("channels", [16, 24, 64, 96, 256, 1000, 2048])
@pytest.mark.parametrize("reduction", [2, 4, 8, 16, 32])
def test_reduced_width_rounds_as_timm(channels, reduction):
    assert S.reduced_width(channels, reduction) == make_divisible(channels / reduction, 8,
                                                                  round_limit=0.)
    se = SEModule(channels, rd_ratio=1 / reduction)
    assert se.fc1.out_channels == S.reduced_width(channels, reduction)


def test_reduced_width_rejects_what_cannot_be_a_width():
    assert [S.reduced_width(c, 16, divisor=1) for c in (8, 16, 32, 64)] == [1, 1, 2, 4]
    with pytest.raises(ValueError, match="reduction > 0"):
        S.reduced_width(64, 0)


def test_se_block_equals_timm_semodule():
    ref = common.random_reference(lambda: SEModule(256))
    assert common.check_against_reference(S.SqueezeExcitation(256, 16), ref, (2, 256, 6, 5),
                                           verbose=False) == 0


def test_se_block_serves_efficientnet_like_torchvision():
    """EfficientNet (notebook 06): SiLU between the FCs, the width from the block's input channels
    (a quarter of 24 = 6) on the expanded ones (144), torchvision's module names."""
    ref = common.random_reference(lambda: torchvision.ops.SqueezeExcitation(
        144, 24 // 4, activation=nn.SiLU))
    ours = S.SqueezeExcitation(144, 24 // 4, activation=nn.SiLU)
    assert isinstance(ours.activation, nn.SiLU)
    assert common.check_against_reference(ours, ref, (2, 144, 7, 7), verbose=False) <= 1e-6
    hard = S.SqueezeExcitation(16, 4, gate=nn.Hardsigmoid, bias=False)        # MobileNetV3's gate
    assert isinstance(hard.gate, nn.Hardsigmoid) and hard.fc1.bias is None


# --------------------------------------------------------------------------- the SE ResNet blocks

@pytest.mark.parametrize("kind", ["basic", "bottleneck"])
def test_se_acts_on_the_residual_branch_after_the_last_bn(kind):
    """s = 1 gives the parent block; s = 1/2 gives the parent with its last BN halved, which only
    the placement after the last BN and before the addition does (random BN statistics)."""
    if kind == "basic":
        block = S.SEBasicBlock(16, 32, 2, R.make_shortcut("A", 16, 32, 2))
        parent, last = R.BasicBlock(16, 32, 2, R.make_shortcut("A", 16, 32, 2)), "bn2"
    else:
        block = S.SEBottleneck(32, 16, 2, R.make_shortcut("B", 32, 64, 2))
        parent, last = R.Bottleneck(32, 16, 2, R.make_shortcut("B", 32, 64, 2)), "bn3"
    block, _ = randomized_norm_copy(block.eval())
    parent.eval()
    state = {k: v for k, v in block.state_dict().items() if not k.startswith("se.")}
    x = torch.randn(2, block.conv1.in_channels, 8, 8)
    with torch.no_grad():
        nn.init.zeros_(block.se.fc2.weight)
        for logit, s in ((30.0, 1.0), (0.0, 0.5)):
            nn.init.constant_(block.se.fc2.bias, logit)
            parent.load_state_dict({k: v * s if k in (f"{last}.weight", f"{last}.bias") else v
                                    for k, v in state.items()})
            torch.testing.assert_close(block(x), parent(x))


def test_se_block_width_is_the_blocks_output():
    b = S.SEBottleneck(256, 64)
    assert (b.se.fc1.in_channels, b.se.fc1.out_channels) == (256, 16)         # Table 1
    assert S.SEBasicBlock(16, 16, divisor=1).se.fc1.out_channels == 1


def test_se_after_the_addition_is_caught_by_the_output_comparison():
    class SEAfterAddition(S.SEBottleneck):
        def forward(self, x):
            out = self.bn3(self.conv3(self.relu(self.bn2(self.conv2(self.relu(self.bn1(
                self.conv1(x))))))))
            return self.se(self.relu(out + x))

    from timm.models.resnet import Bottleneck as TimmBottleneck
    ref = common.random_reference(lambda: TimmBottleneck(256, 64, attn_layer="se"))
    assert common.check_against_reference(S.SEBottleneck(256, 64), ref, (2, 256, 6, 6),
                                           verbose=False) == 0
    with pytest.raises(AssertionError):
        common.check_against_reference(SEAfterAddition(256, 64), ref, (2, 256, 6, 6),
                                       verbose=False)


# --------------------------------------------------------------------------- the models

def test_registry_names_num_classes_and_minimum_input():
    assert set(IMAGENET + CIFAR) <= set(common.list_models())
    with torch.device("meta"):
        for name in IMAGENET + CIFAR:
            assert common.get_model(name, num_classes=7).fc.out_features == 7
    net = common.get_model("cifar_seresnet20")
    assert net(torch.randn(2, 3, 4, 4)).shape == (2, 10)
    with pytest.raises(ValueError, match="at least 4x4"):
        net(torch.randn(2, 3, 2, 2))
    with pytest.raises(ValueError, match="at least 32x32"):
        common.get_model("seresnet50").eval()(torch.randn(1, 3, 16, 16))
    with pytest.raises(TypeError, match="reduction"):
        common.get_model("seresnet50", reductoin=8)


@pytest.mark.parametrize("name", IMAGENET)
def test_state_dict_names_and_shapes_match_the_reference(name):
    with torch.device("meta"):
        ours = common.get_model(name).state_dict()
        theirs = reference(name)().state_dict()
    assert state_dict_differences(ours, theirs) == []


@pytest.mark.parametrize("name", ["seresnet50", "seresnext50_32x4d", "resnext50_32x4d"])
def test_strict_load_and_equal_outputs(name):
    ref = common.random_reference(reference(name))
    assert common.check_against_reference(common.get_model(name), ref, (2, 3, 32, 32),
                                          verbose=False) <= 1e-5


def test_v1_loads_timms_weights_but_computes_something_else():
    from timm.models.resnet import Bottleneck as TimmBottleneck
    with torch.device("meta"):
        v1 = common.get_model("seresnet50", stride_in_1x1=True)
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)
    ref = common.random_reference(lambda: TimmBottleneck(256, 128, 2, R.make_shortcut(
        "B", 256, 512, 2), attn_layer="se"))                     # the first block of conv3_x
    block = S.SEBottleneck(256, 128, 2, R.make_shortcut("B", 256, 512, 2), stride_in_1x1=True)
    with pytest.raises(AssertionError):                          # the strict load succeeds
        common.check_against_reference(block, ref, (2, 256, 8, 8), verbose=False)


def test_v1_with_caffes_max_pool_is_timms_port_of_the_official_model():
    """timm's legacy_seresnet50 follows the Caffe model (stride in conv1, an unpadded max pool
    with ceil_mode): with its names mapped and that pool, our v1 computes exactly the same."""
    legacy = common.random_reference(lambda: timm.create_model("legacy_seresnet50"))
    ours = common.get_model("seresnet50", stride_in_1x1=True)
    ours.load_state_dict({k.replace("layer0.", "").replace("se_module.", "se.")
                          .replace("last_linear.", "fc."): v
                          for k, v in legacy.state_dict().items()}, strict=True)
    ours.maxpool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), legacy.eval()(x))


def test_cifar_nets_are_notebook_02s_with_se_blocks():
    for depth in (20, 56, 110):
        with torch.device("meta"):
            se = common.get_model(f"cifar_seresnet{depth}")
            plain = common.get_model(f"cifar_resnet{depth}")
        n = R.CIFAR_DEPTHS[depth]
        widths = [stage[0].se.fc1.out_channels for stage in se.stages()]
        assert widths == [1, 2, 4]                                   # C/r with divisor 1 (ours)
        extra = sum(n * (2 * c * w + w + c) for c, w in zip((16, 32, 64), widths))
        assert common.count_params(se) - common.count_params(plain) == extra
        assert not any("downsample" in k for k in se.state_dict())   # option A, as notebook 02


# --------------------------------------------------------------------------- the paper's numbers

def test_eqn5_is_the_exact_parameter_cost_of_seresnet50():
    with torch.device("meta"):
        base, se = common.get_model("resnet50"), common.get_model("seresnet50")
        no_bias = common.get_model("seresnet50", se_bias=False)
    blocks, channels = (3, 4, 6, 3), (256, 512, 1024, 2048)
    eqn5 = sum(2 * n * c * c // 16 for n, c in zip(blocks, channels))
    assert common.count_params(no_bias) - common.count_params(base) == eqn5 == 2_514_944
    assert common.count_params(se) - common.count_params(no_bias) == sum(
        n * (c // 16 + c) for n, c in zip(blocks, channels))


@pytest.mark.parametrize("r", sorted(S.ABLATIONS["Table 10"]))
def test_table10_parameters(r):
    with torch.device("meta"):
        n = common.count_params(common.get_model("seresnet50", reduction=r, se_bias=False))
    assert abs(n / S.ABLATIONS["Table 10"][r][2] - 1) <= 0.005


def test_table13_parameters_stage_by_stage():
    with torch.device("meta"):
        net = common.get_model("seresnet50", se_bias=False)
        base = common.count_params(common.get_model("resnet50"))
    per_stage = {name: sum(p.numel() for k, p in net.named_parameters()
                           if k.startswith(name + ".") and ".se." in k)
                 for name in net.stage_names}
    ours = {"none": base, "all": base + sum(per_stage.values()),
            **{name: base + per_stage[name] for name in ("layer1", "layer2", "layer3")}}
    assert set(ours) == set(S.ABLATIONS["Table 13"])
    for stage, row in S.ABLATIONS["Table 13"].items():
        assert abs(ours[stage] / row[3] - 1) <= 0.005, stage
    assert per_stage["layer4"] > sum(per_stage.values()) / 2          # most of it: the last stage


def test_table15_se_after_the_3x3_conv_parameters():
    # SE on `planes` channels in every block, r = 16, no FC biases (sec. 6), against Table 15.
    with torch.device("meta"):
        net = common.get_model("seresnet50")
        base = common.count_params(common.get_model("resnet50"))
    widths = [b.conv2.out_channels for stage in net.stages() for b in stage]
    ours = base + sum(2 * c * S.reduced_width(c) for c in widths)
    assert abs(ours / S.ABLATIONS["Table 15"]["SE 3x3"][3] - 1) <= 0.005
    assert ours < S.ABLATIONS["Table 15"]["SE"][3]                     # "fewer parameters"


def test_only_post_and_identity_placements_keep_the_standard_se_shapes():
    # Sec. 6.5: SE-POST acts on the sum, SE-Identity on the projected shortcut (both the block's
    # output width); SE-PRE on the block's input; SE 3x3 on planes. Strict loading needs the width.
    with torch.device("meta"):
        net = common.get_model("seresnet50")
    blocks = [b for stage in net.stages() for b in stage]
    standard = [b.se.fc1.in_channels for b in blocks]
    assert standard == [b.conv3.out_channels for b in blocks]
    identity = [b.conv1.in_channels if b.downsample is None else b.downsample[0].out_channels
                for b in blocks]
    assert identity == standard
    pre = [i for i, b in enumerate(blocks) if b.conv1.in_channels != standard[i]]
    firsts = [sum(len(s) for s in net.stages()[:k]) for k in range(len(net.stages()))]
    assert pre == firsts                                               # first block of each stage
    assert all(b.conv2.out_channels != c for b, c in zip(blocks, standard))


def test_cifar_se_parameters_grow_less_than_the_ratio_of_r():
    # From r = 32 to r = 2 the SE parameters of SE-ResNet-20 grow less than 32 / 2: the fc2
    # biases do not depend on r and the reduced width is at least 1. With SE-ResNet-50's widths
    # (C / r whole at every r) the weights alone grow exactly 32 / 2.
    ratios = sorted(S.ABLATIONS["Table 10"])
    lo, hi = ratios[0], ratios[-1]

    def se_parts(net):
        params = {n: p.numel() for n, p in net.named_parameters() if ".se." in n}
        return sum(params.values()), sum(v for n, v in params.items() if n.endswith(".weight"))

    with torch.device("meta"):
        plain = common.count_params(common.get_model("cifar_resnet20"))
        small = {r: common.get_model("cifar_seresnet20", reduction=r) for r in (lo, hi)}
        big = {r: common.get_model("seresnet50", reduction=r) for r in (lo, hi)}
    for net in small.values():
        assert se_parts(net)[0] == common.count_params(net) - plain
    total = {r: se_parts(net)[0] for r, net in small.items()}
    weights = {r: se_parts(net)[1] for r, net in small.items()}
    expected = {r: sum(n * (2 * c * max(1, round(c / r + 1e-9)) + max(1, round(c / r + 1e-9)) + c)
                       for n, c in zip((3, 3, 3), (16, 32, 64))) for r in (lo, hi)}
    assert total == expected                                 # Eqn. 5 + biases, rounded widths
    assert total[lo] / total[hi] < weights[lo] / weights[hi] < hi / lo
    assert se_parts(big[lo])[1] / se_parts(big[hi])[1] == hi / lo


@pytest.mark.parametrize("name", sorted(TABLE2))
def test_table2_multiply_adds(name):
    p = TABLE2[name]
    with torch.device("meta"):
        se = common.count_macs(common.get_model(name, **p["counted_as"]))
        base = common.count_macs(common.get_model(p["baseline"]["name"], **p["counted_as"]))
    assert abs(se / (p["gflops"] * 1e9) - 1) <= 0.005
    assert abs(base / (p["baseline"]["gflops"] * 1e9) - 1) <= 0.005


def test_timms_seresnet50_is_v15():
    with torch.device("meta"):
        v1, v15 = (common.count_macs(common.get_model("seresnet50", stride_in_1x1=s))
                   for s in (True, False))
        r1, r15 = (common.count_macs(common.get_model("resnet50", stride_in_1x1=s))
                   for s in (True, False))
    assert round(v15 / 1e9, 1) == 4.1 and round(v1 / 1e9, 2) == 3.86   # timm's card; Table 2 ±0.01
    assert v15 - v1 == r15 - r1


def test_docstrings_are_written_from_the_paper_numbers():
    assert "Table 2: 23.29% top-1, 6.62% top-5 ImageNet error, 3.87 GFLOPs" in S.seresnet50.__doc__
    assert "Table 4: 5.21% CIFAR-10 test error" in S.cifar_seresnet110.__doc__
    assert set(S.PAPER_NUMBERS) <= set(common.list_models())


# --------------------------------------------------------------------------- timm, offline

def test_timm_imports_and_builds_models_without_touching_the_network():
    """CI installs requirements.txt and runs the tests without a network: importing timm and
    building its models with random weights must not even try to connect."""
    code = (
        "import sys\n"
        "def hook(event, args):\n"
        "    if event in ('socket.connect', 'socket.getaddrinfo', 'socket.gethostbyname',\n"
        "                 'socket.sendto', 'socket.bind', 'urllib.Request'):\n"
        "        raise RuntimeError(f'network access: {event} {args!r}')\n"
        "sys.addaudithook(hook)\n"
        "import timm\n"
        "timm.create_model('seresnet50')\n"
        "import common.models.senet\n"
        "print('ok')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


# --------------------------------------------------------------------------- the exercises

class ConvSequentialSE(nn.Module):
    """A learner's correct SE block with other names: a Sequential of 1x1 convs."""

    def __init__(self, channels, reduced_channels):
        super().__init__()
        self.excite = nn.Sequential(nn.Conv2d(channels, reduced_channels, 1), nn.ReLU(),
                                    nn.Conv2d(reduced_channels, channels, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.excite(x.mean((2, 3), keepdim=True))


class SoftmaxSE(ConvSequentialSE):
    def __init__(self, channels, reduced_channels):
        super().__init__(channels, reduced_channels)
        self.excite[3] = nn.Softmax(dim=1)


def test_a_learners_se_block_with_its_own_names_passes(capsys):
    report = diagnose("senet.SqueezeExcitation", ConvSequentialSE)
    assert report.status == "passed", report.text


def test_a_learners_softmax_gate_is_named():
    report = diagnose("senet.SqueezeExcitation", SoftmaxSE)
    assert report.status == "failed" and report.known_bugs == ["softmax instead of sigmoid"]


def test_a_learners_se_bottleneck_built_on_the_course_blocks_passes():
    def mine(inplanes, planes, stride=1):
        return S.SEBottleneck(inplanes, planes, stride,
                              R.make_shortcut("B", inplanes, planes * 4, stride))
    assert diagnose("senet.SEBottleneck", mine).status == "passed"
    def v1(inplanes, planes, stride=1):
        return S.SEBottleneck(inplanes, planes, stride,
                              R.make_shortcut("B", inplanes, planes * 4,
                                              stride), stride_in_1x1=True)
    report = diagnose("senet.SEBottleneck", v1)
    assert report.status == "failed" and report.stage == "outputs"
