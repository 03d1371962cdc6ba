"""Fast unit tests of the ResNets saved from notebooks/02_resnet.ipynb
(common/models/resnet.py)."""
import pytest
import torch
import torchvision
from torch import nn

import common
from common.inspection import state_dict_differences
from common.models import resnet as R

IMAGENET = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
CIFAR = tuple(f"cifar_{kind}{d}" for kind in ("resnet", "plain") for d in (20, 32, 44, 56, 110))
# The paper's numbers, kept once in the saved code (He et al. 2015, arXiv:1512.03385):
# Table 1's multiply-adds and Table 6's parameters.
TABLE1 = sorted(n for n, p in R.PAPER_NUMBERS.items() if "macs" in p)
TABLE6 = sorted(n for n, p in R.PAPER_NUMBERS.items() if "params" in p)


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


def test_the_paper_numbers_cover_every_variant_the_tables_list():
    assert TABLE1 == sorted(IMAGENET)
    assert TABLE6 == sorted(f"cifar_resnet{d}" for d in (20, 32, 44, 56, 110, 1202))
    assert set(R.PAPER_NUMBERS) <= set(common.list_models())


@pytest.mark.parametrize("name", TABLE6)
def test_cifar_params_match_table6_and_plain_twins(name):
    with torch.device("meta"):
        n = common.count_params(common.get_model(name))
        plain = name.replace("resnet", "plain")
        plain = (common.count_params(common.get_model(plain)) if plain in common.list_models()
                 else n)
    assert abs(n / R.PAPER_NUMBERS[name]["params"] - 1) <= 0.02
    assert plain == n                       # option A: "exactly the same ... number of parameters"


@pytest.mark.parametrize("name", TABLE1)
def test_imagenet_macs_match_table1(name):
    paper = R.PAPER_NUMBERS[name]
    with torch.device("meta"):
        macs = common.count_macs(common.get_model(name, **paper["counted_as"]))
    assert abs(macs / paper["macs"] - 1) <= 0.02


def test_v15_costs_more_only_in_the_first_1x1_convs():
    """Issue 7: the extra cost of v1.5 is the stride-1 first 1x1 conv of conv3_1..conv5_1."""
    with torch.device("meta"):
        v1 = common.count_macs(common.get_model("resnet50", stride_in_1x1=True))
        v15 = common.count_macs(common.get_model("resnet50"))
    # the same for layer3 (512->256 at 28 vs 14) and layer4
    per_conv = 256 * 128 * (56 * 56 - 28 * 28)
    assert v15 - v1 == 3 * per_conv


def test_constructor_docstrings_are_written_from_the_paper_numbers():
    assert "Table 6: 1.7M parameters, 6.43% CIFAR-10 test error (best of 5 runs; mean 6.61 +/- " \
           "0.16)" in R.cifar_resnet110.__doc__
    assert "Table 1: 3.8 x 10^9 multiply-adds at 224x224 (counted as stride_in_1x1=True" \
           in R.resnet50.__doc__ and "Table 3: 22.85% top-1 error" in R.resnet50.__doc__


def test_table3_errors_are_data_in_the_order_the_paper_describes():
    """Table 3 (ResNet-34): B "slightly better than A", C "marginally better than B" (sec. 4.1);
    deeper bottleneck nets lower the error. The notebook's seed arithmetic reads these."""
    t3 = R.PAPER_NUMBERS["resnet34"]["top1_error_by_shortcut"]
    assert list(t3) == ["A", "B", "C"] and t3["A"] > t3["B"] > t3["C"]
    errors = [R.PAPER_NUMBERS[n]["top1_error"] for n in ("resnet50", "resnet101", "resnet152")]
    assert errors == sorted(errors, reverse=True) and errors[0] < t3["C"]
    assert "25.03% with option A, 24.52% with option B, 24.19% with option C" in R.resnet34.__doc__
    best, (mean, std) = R.PAPER_NUMBERS["cifar_resnet110"]["error"], \
        R.PAPER_NUMBERS["cifar_resnet110"]["error_mean_std"]
    assert best < mean and std > 0                       # the best of 5 runs lies below their mean


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


def test_basic_block_has_no_arguments_that_only_raise():
    """Issue 16: the basic block takes what it uses; the bottleneck keeps ResNeXt's options."""
    import inspect
    assert set(inspect.signature(R.BasicBlock).parameters) == {
        "inplanes", "planes", "stride", "downsample", "norm_layer", "residual"}
    with pytest.raises(TypeError):
        R.BasicBlock(64, 64, groups=2)
    with pytest.raises(TypeError):
        R.ResNet(R.BasicBlock, [2, 2, 2, 2], groups=32, width_per_group=4)


def test_resnext_from_the_bottleneck_loads_torchvision_strictly():
    """SE-Net builds SE-ResNeXt on these options: torchvision's names and shapes must match."""
    with torch.device("meta"):
        ours = R.ResNet(R.Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4).state_dict()
        theirs = torchvision.models.resnext50_32x4d().state_dict()
    assert state_dict_differences(ours, theirs) == [] and list(ours) == list(theirs)


def test_a_block_with_only_the_four_positional_arguments_plugs_in():
    class Minimal(nn.Module):
        expansion = 1

        def __init__(self, inplanes, planes, stride, downsample):
            super().__init__()
            self.conv = nn.Conv2d(inplanes, planes, 3, stride, 1)
            self.downsample = downsample

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            return torch.relu(self.conv(x) + identity)

    net = R.ResNet(Minimal, [1, 1, 1], num_classes=10, widths=(16, 32, 64), stem="cifar",
                   shortcut="A")
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_a_subclass_overriding_forward_gets_zero_init_and_loads_strictly():
    class Scaled(R.Bottleneck):                  # SE-Net's pattern: a step before the addition
        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = 0.5 * self.bn3(self.conv3(out))
            return self.relu(out + identity)

    net = R.ResNet(Scaled, [1, 1, 1, 1], zero_init_residual=True)
    assert all(not b.bn3.weight.any() for s in net.stages() for b in s)


def test_zero_init_residual_makes_blocks_identities():
    net = common.get_model("cifar_resnet20", zero_init_residual=True).eval()
    x = torch.rand(2, 16, 8, 8)                               # non-negative, as after a ReLU
    with torch.no_grad():
        torch.testing.assert_close(net.layer1(x), x)
    resnet = common.get_model("resnet50", zero_init_residual=True)
    assert all(not b.bn3.weight.any() for s in resnet.stages() for b in s)


def test_minimum_input_size_is_stated_and_enforced():
    imagenet, cifar = common.get_model("resnet18"), common.get_model("cifar_resnet20")
    assert (imagenet.min_input_size, cifar.min_input_size) == (32, 4)
    with pytest.raises(ValueError, match="at least 32x32"):
        imagenet.eval()(torch.randn(1, 3, 31, 64))
    with pytest.raises(ValueError, match="at least 4x4"):
        cifar.eval()(torch.randn(1, 3, 3, 3))
    with torch.no_grad():
        assert imagenet(torch.randn(1, 3, 32, 32)).shape == (1, 1000)
        assert cifar(torch.randn(1, 3, 4, 4)).shape == (1, 10)


@pytest.mark.parametrize("name, size", [("resnet18", 32), ("cifar_resnet20", 4),
                                        ("cifar_plain20", 8), ("mobilenet_v2", 32),
                                        ("cifar_mobilenet_v2", 8), ("efficientnet_b0", 32),
                                        ("efficientnet_b0", 64)])
def test_one_image_whose_last_map_is_1x1_cannot_train_and_says_so(name, size):
    net = common.get_model(name).train()
    last = size // net.min_input_size                 # the last stage's map at this size
    x = torch.randn(1, 3, size, size)
    if last == 1:
        with pytest.raises(ValueError, match="batches of 2 or more.*model.eval"):
            net(x)
    else:
        net(x)                                        # a 2x2 last map: BN has 4 values
    net(torch.randn(2, 3, size, size))                # two images: fine in train mode
    with torch.no_grad():
        net.eval()(x)                                 # one image: fine in eval mode


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
