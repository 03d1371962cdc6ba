"""Fast unit tests of the VGGs saved from notebooks/01_vgg.ipynb (common/models/vgg.py)."""

import pytest
import torch
import torchvision
from torch import nn

import common
from common.inspection import state_dict_differences
from common.models import vgg as V

IMAGENET = ("vgg11", "vgg11_bn", "vgg11_lrn", "vgg11_lrn_bn", "vgg13", "vgg13_bn", "vgg16_c",
            "vgg16_c_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")
CIFAR = ("cifar_vgg11_bn", "cifar_vgg13_bn", "cifar_vgg16_bn", "cifar_vgg19_bn")
TORCHVISION = ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")
# The paper's tables are read from the saved module (V.TABLE_1, V.WEIGHT_LAYERS, V.TABLE_2), the
# one
# place they are written down.
PLAIN = ("vgg11", "vgg11_lrn", "vgg13", "vgg16_c", "vgg16", "vgg19")


def test_registry_names():
    names = set(common.list_models())
    assert set(IMAGENET + CIFAR) <= names
    assert isinstance(common.get_model("cifar_vgg16_bn"), V.CifarVGG)
    with torch.device("meta"):
        assert isinstance(common.get_model("vgg16_c"), V.VGG)


@pytest.mark.parametrize("name", ["vgg11", "vgg11_bn"])
def test_strict_load_and_equal_outputs_with_torchvision(name):
    reference = common.random_reference(getattr(torchvision.models, name))
    with torch.device("meta"):
        ours = common.get_model(name)
    ours = ours.to_empty(device="cpu")
    diff = common.check_against_reference(ours, reference, input_size=(2, 3, 64, 64),
                                          verbose=False)
    assert diff <= 1e-5


@pytest.mark.parametrize("name", TORCHVISION)
def test_state_dict_keys_and_shapes_match_torchvision(name):
    with torch.device("meta"):
        ours = common.get_model(name).state_dict()
        theirs = getattr(torchvision.models, name)().state_dict()
    assert state_dict_differences(ours, theirs) == [] and list(ours) == list(theirs)


def test_table1_as_data():
    assert V.TABLE_1.keys() == V.WEIGHT_LAYERS.keys() == V.TABLE_2.keys()
    for config, stages in V.TABLE_1.items():
        convs = [s for stage in stages for s in stage if s != "LRN"]
        assert len(convs) + 3 == V.WEIGHT_LAYERS[config]
        assert len(stages) == 5
    c = [s for stage in V.TABLE_1["C"] for s in stage]
    assert c.count("conv1-256") == 1 and c.count("conv1-512") == 2
    with pytest.raises(ValueError, match="Table 1"):
        V.parse_conv("conv3x3-64")
    with pytest.raises(ValueError, match="Unknown configuration"):
        V.make_features("F")


def test_table2_parameter_counts():
    with torch.device("meta"):
        configs = {}
        for name in PLAIN:
            model = common.get_model(name)
            configs[model.config] = name
            ours = common.count_params(model)
            assert abs(ours - V.TABLE_2[model.config] * 1e6) <= 0.5e6, (name, ours)
    assert sorted(configs) == sorted(V.TABLE_2)            # every column of Table 2 is checked


def test_one_by_one_convs_keep_resolution_and_lrn_position():
    with torch.device("meta"):
        c = common.get_model("vgg16_c")
        ones = [m for m in c.features if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
        assert [m.out_channels for m in ones] == [256, 512, 512]
        assert all(m.padding == (0, 0) for m in ones)
        lrn = common.get_model("vgg11_lrn").features
        assert [type(m) for m in lrn[:4]] == [nn.Conv2d, nn.ReLU, nn.LocalResponseNorm,
                                              nn.MaxPool2d]


def test_lrn_matches_alexnet_formula():
    a = torch.rand(2, 12, 3, 3) * 40
    n, k, alpha, beta = 5, 2.0, 1e-4, 0.75
    expected = torch.empty_like(a)
    for i in range(a.shape[1]):
        lo, hi = max(0, i - n // 2), min(a.shape[1] - 1, i + n // 2)
        expected[:, i] = a[:, i] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(1)) ** beta
    torch.testing.assert_close(V.lrn_layer()(a), expected)


@pytest.mark.parametrize("bad", [(3, 64, 64), (1, 1, 64, 64), (1, 3, 16, 16)])
def test_wrong_input_shape_gives_a_clear_error(bad):
    model = V.CifarVGG("A", width=0.125).eval()
    with pytest.raises(ValueError, match="Expected a batch|too small"):
        model(torch.randn(*bad))
    with torch.device("meta"):
        big = common.get_model("vgg16")
        with pytest.raises(ValueError, match="Expected a batch|too small"):
            big(torch.empty(*bad))


def test_integer_images_are_refused():
    model = V.CifarVGG("A", width=0.125)
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


@pytest.mark.parametrize("name", CIFAR)
def test_cifar_models_output_shape(name):
    with torch.device("meta"):
        model = common.get_model(name)
        assert model(torch.empty(4, 3, 32, 32)).shape == (4, 10)
        assert model.classifier.in_features == 512


def test_cifar_model_trains_on_one_image_at_the_minimum_size():
    model = common.get_model("cifar_vgg16_bn", width=0.125).train()
    assert model.min_input_size == 32
    model(torch.randn(1, 3, 32, 32)).sum().backward()     # the last BNs see 2x2 maps: no error
    with torch.device("meta"):
        assert common.get_model("vgg16").min_input_size == 32


def test_cifar_model_runs_at_any_size_and_width():
    model = common.get_model("cifar_vgg11_bn", width=0.25, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
        assert model(torch.randn(1, 3, 48, 40)).shape == (1, 7)


def test_dense_evaluation_equals_classifier_at_224():
    torch.manual_seed(0)
    model = V.VGG("A", num_classes=10).eval()
    dense = V.FullyConvolutionalVGG(model).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(dense(x).flatten(1), model(x), atol=1e-4, rtol=1e-4)
        assert dense(torch.randn(1, 3, 256, 320)).shape == (1, 10, 2, 4)


def test_init_from_net_a_copies_four_rows_and_leaves_every_other_conv_random():
    net_a = V.CifarVGG("A", batch_norm=False, width=0.25, init="kaiming")
    deep = V.CifarVGG("D", batch_norm=False, width=0.25, init="normal")
    before = [m.weight.clone() for m in deep.features if isinstance(m, nn.Conv2d)]
    V.init_from_net_a(deep, net_a)
    after = [m.weight for m in deep.features if isinstance(m, nn.Conv2d)]
    changed = [i for i, (w0, w1) in enumerate(zip(before, after)) if not torch.equal(w0, w1)]
    assert changed == [0, 2, 4, 5]            # stage 1 conv 1, stage 2 conv 1, stage 3 convs 1-2
    assert len(after) - len(changed) == 9     # "the intermediate layers were initialised randomly"


def test_naive_init_stalls_deep_net_without_bn_and_he_init_does_not():
    """Section 8 of the notebook: with N(0, 0.01^2) the gradient reaching D's first conv vanishes
    (orders of magnitude below A's), while torchvision's He init keeps the scale through depth."""
    x = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.arange(32) % 10

    def first_grad(config, init):
        torch.manual_seed(0)
        model = V.CifarVGG(config, batch_norm=False, width=0.25, init=init, init_std=0.01)
        nn.functional.cross_entropy(model(x), y).backward()
        return model.features[0].weight.grad.norm().item()

    naive_a, naive_d = first_grad("A", "normal"), first_grad("D", "normal")
    he_d = first_grad("D", "kaiming")
    assert naive_d < 1e-3 * naive_a
    assert naive_d < 1e-6 * he_d


def test_init_schemes_and_init_from_net_a():
    with pytest.raises(ValueError, match="Unknown init"):
        V.CifarVGG("A", width=0.125, init="xavier")
    net_a = V.CifarVGG("A", batch_norm=False, width=0.25, init="kaiming")
    deep = V.init_from_net_a(V.CifarVGG("E", batch_norm=False, width=0.25, init="normal"), net_a)
    rows_a, rows_e = V._convs_by_stage(net_a.features), V._convs_by_stage(deep.features)
    for s, i in [(0, 0), (1, 0), (2, 0), (2, 1)]:
        assert torch.equal(rows_a[s][i].weight, rows_e[s][i].weight)
    assert not torch.equal(rows_a[3][0].weight, rows_e[3][0].weight)     # only four rows copied
    assert torch.equal(deep.classifier.weight, net_a.classifier.weight)
    with pytest.raises(ValueError, match="batch norm"):
        V.init_from_net_a(V.CifarVGG("D", width=0.25), net_a)
