"""Fast unit tests of the ResNets saved from notebooks/02_resnet.ipynb (common/models/resnet.py)."""
import pytest
import torch
import torchvision
from torch import nn

import common
from common.inspection import state_dict_differences
from common.models import resnet as R

IMAGENET = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
CIFAR = tuple(f"cifar_{kind}{d}" for kind in ("resnet", "plain") for d in (20, 32, 44, 56, 110))
# Table 6 of He et al. 2015 (arXiv:1512.03385): parameters, given to two significant digits.
TABLE6_PARAMS = {20: 0.27e6, 32: 0.46e6, 44: 0.66e6, 56: 0.85e6, 110: 1.7e6}
# Table 1: FLOPs counted as multiply-adds (sec. 3.3), for the paper's v1 nets.
TABLE1_MACS = {18: 1.8e9, 34: 3.6e9, 50: 3.8e9, 101: 7.6e9, 152: 11.3e9}


def test_registry_names():
    names = set(common.list_models())
    assert set(IMAGENET + CIFAR) <= names
    assert isinstance(common.get_model("cifar_resnet20"), R.ResNet)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_strict_load_and_equal_outputs_with_torchvision(name):
    reference = common.random_reference(getattr(torchvision.models, name))   # random BN stats too
    ours = common.get_model(name)
    diff = common.check_against_reference(ours, reference, input_size=(2, 3, 64, 64),
                                          verbose=False)
    assert diff <= 1e-5


@pytest.mark.parametrize("name", IMAGENET)
def test_state_dict_keys_and_shapes_match_torchvision(name):
    with torch.device("meta"):
        ours = common.get_model(name).state_dict()
        theirs = getattr(torchvision.models, name)().state_dict()
    assert state_dict_differences(ours, theirs) == [] and list(ours) == list(theirs)


@pytest.mark.parametrize("depth", sorted(TABLE6_PARAMS))
def test_cifar_params_match_table6_and_plain_twins(depth):
    with torch.device("meta"):
        n = common.count_params(common.get_model(f"cifar_resnet{depth}"))
        plain = common.count_params(common.get_model(f"cifar_plain{depth}"))
    assert abs(n / TABLE6_PARAMS[depth] - 1) <= 0.02
    assert plain == n                       # option A: "exactly the same ... number of parameters"


@pytest.mark.parametrize("depth", sorted(TABLE1_MACS))
def test_imagenet_macs_match_table1(depth):
    kwargs = {"stride_in_1x1": True} if depth >= 50 else {"shortcut": "A"}
    with torch.device("meta"):
        macs = common.count_macs(common.get_model(f"resnet{depth}", **kwargs))
    assert abs(macs / TABLE1_MACS[depth] - 1) <= 0.02


def test_shortcut_a_has_no_parameters_and_pads_with_zeros():
    a = R.ShortcutA(16, 32, stride=2)
    assert not list(a.parameters()) and not list(a.buffers())
    x = torch.randn(2, 16, 8, 8)
    y = a(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and not y[:, 16:].any()
    net = common.get_model("cifar_resnet20")
    assert isinstance(net.layer2[0].downsample, R.ShortcutA)
    assert not any("downsample" in k for k in net.state_dict())


def test_shortcut_options():
    assert R.make_shortcut("B", 64, 64) is None
    assert R.make_shortcut("B", 64, 256) is not None          # channels change at stride 1
    assert isinstance(R.make_shortcut("C", 64, 64), nn.Sequential)
    with pytest.raises(ValueError, match="option"):
        R.make_shortcut("D", 64, 64)


def test_plain_nets_have_no_shortcuts():
    net = common.get_model("cifar_plain20")
    assert all(not b.residual and b.downsample is None for s in net.stages() for b in s)


def test_bottleneck_stride_placement():
    v15 = R.Bottleneck(256, 128, 2, R.make_shortcut("B", 256, 512, 2))
    v1 = R.Bottleneck(256, 128, 2, R.make_shortcut("B", 256, 512, 2), stride_in_1x1=True)
    assert v15.conv1.stride == (1, 1) and v15.conv2.stride == (2, 2)
    assert v1.conv1.stride == (2, 2) and v1.conv2.stride == (1, 1)
    assert v1(torch.randn(1, 256, 14, 14)).shape == v15(torch.randn(1, 256, 14, 14)).shape
    with pytest.raises(ValueError, match="bottleneck"):
        common.get_model("resnet18", stride_in_1x1=True)


def test_zero_init_residual_makes_blocks_identities():
    net = common.get_model("cifar_resnet20", zero_init_residual=True).eval()
    x = torch.rand(2, 16, 8, 8)                               # non-negative, as after a ReLU
    with torch.no_grad():
        torch.testing.assert_close(net.layer1(x), x)
    resnet = common.get_model("resnet50", zero_init_residual=True)
    assert all(not b.bn3.weight.any() for s in resnet.stages() for b in s)


@pytest.mark.parametrize("size", [32, 57])
def test_any_input_size(size):
    net = common.get_model("resnet18", num_classes=7).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, size, size)).shape == (1, 7)


@pytest.mark.parametrize("bad, match", [
    (torch.randn(3, 32, 32), "batch"),                          # no batch dimension
    (torch.randn(2, 1, 32, 32), "3 channels"),                  # grey images
    (torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8), "float"),
])
def test_clear_error_on_wrong_input(bad, match):
    with pytest.raises(ValueError, match=match):
        common.get_model("cifar_resnet20")(bad)
