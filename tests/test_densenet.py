"""Fast unit tests of the DenseNets saved from notebooks/03_densenet.ipynb
(common/models/densenet.py).

The paper's numbers are read from the saved tables (TABLE1, TABLE2, TEXT_PARAMS), never retyped."""
import pytest
import torch
import torchvision
from torch import nn

import common
from common.inspection import state_dict_differences
from common.models import densenet as D

TORCHVISION = (121, 161, 169, 201)
IMAGENET = tuple(f"densenet{d}" for d in D.TABLE1)


def test_registry_names():
    expected = {"densenet121", "densenet161", "densenet169", "densenet201", "densenet264",
                "cifar_densenet40_k12", "cifar_densenet100_k12", "cifar_densenet100_k24",
                "cifar_densenet_bc100_k12", "cifar_densenet_bc250_k24", "cifar_densenet_bc190_k40"}
    assert set(IMAGENET) | set(D.TABLE2) == expected
    assert expected <= set(common.list_models())
    assert isinstance(common.get_model("cifar_densenet40_k12"), D.DenseNet)


@pytest.mark.parametrize("depth", TORCHVISION)
def test_state_dict_names_and_shapes_match_torchvision(depth):
    with torch.device("meta"):
        ours = common.get_model(f"densenet{depth}").state_dict()
        theirs = getattr(torchvision.models, f"densenet{depth}")().state_dict()
    assert state_dict_differences(ours, theirs) == [] and list(ours) == list(theirs)


def test_strict_load_and_equal_outputs_with_torchvision():
    reference = common.random_reference(torchvision.models.densenet121)   # random BN stats too
    diff = common.check_against_reference(common.get_model("densenet121"), reference,
                                          input_size=(2, 3, 64, 64), verbose=False)
    assert diff <= 1e-4


@pytest.mark.parametrize("name", sorted(D.TABLE2))
def test_cifar_params_round_to_table2(name):
    with torch.device("meta"):
        n = common.count_params(common.get_model(name))
    assert round(n / 1e5) == round(D.TABLE2[name].params / 1e5)      # printed as "0.8M", "15.3M"


@pytest.mark.parametrize("name", sorted(D.TABLE2))
def test_authors_2k_cifar_stem_misses_table2_without_bottleneck(name):
    # The authors' code (since 0a8891a) gives every CIFAR net a 2k stem; the paper 16 (2k for BC).
    # Table 2 fits the paper: with 2k the nets without bottleneck leave its printed figure.
    row = D.TABLE2[name]
    with torch.device("meta"):
        paper = common.count_params(common.get_model(name))
        code = common.count_params(common.get_model(name, num_init_features=2 * row.growth_rate))
    assert round(paper / 1e5) == round(row.params / 1e5)
    assert (round(code / 1e5) == round(row.params / 1e5)) == row.bottleneck
    assert (code == paper) == (row.bottleneck and row.compression < 1)


@pytest.mark.parametrize("depth", TORCHVISION)
def test_imagenet_params_equal_torchvision_meta(depth):
    weights = getattr(torchvision.models, f"DenseNet{depth}_Weights").IMAGENET1K_V1
    with torch.device("meta"):
        net = common.get_model(f"densenet{depth}")
        macs = common.count_macs(net)
    assert common.count_params(net) == weights.meta["num_params"]
    assert abs(macs / (weights.meta["_ops"] * 1e9) - 1) < 0.01


def test_densenet201_and_264_counts():
    with torch.device("meta"):
        n201 = common.count_params(common.get_model("densenet201"))
        n264 = common.count_params(common.get_model("densenet264"))
        n264_k48 = common.count_params(D.DenseNet(48, D.TABLE1[264][1]))
    assert round(n201 / 1e6) == round(D.TEXT_PARAMS[201] / 1e6)      # sec. 4.4: "20M"
    assert n201 < n264 < n264_k48
    assert round(n264_k48 / 1e6) == round(D.TECH_REPORT_PARAMS[264] / 1e6)   # Pleiss et al.: "73M"


def test_dense_layer_widths_and_order():
    k = 12
    layer = D.DenseLayer(40, k)
    assert layer.norm1.num_features == 40                          # BN before the conv
    assert layer.conv1.out_channels == 4 * k and layer.conv1.kernel_size == (1, 1)
    assert layer.conv2.in_channels == 4 * k and layer.conv2.out_channels == k
    plain = D.DenseLayer(40, k, bottleneck=False)
    assert plain.conv1.kernel_size == (3, 3) and plain.conv1.out_channels == k
    assert not hasattr(plain, "conv2")
    xs = [torch.randn(2, 16, 8, 8), torch.randn(2, 24, 8, 8)]
    layer.eval()
    with torch.no_grad():
        torch.testing.assert_close(layer(xs), layer(torch.cat(xs, 1)))


def test_dense_block_grows_by_k_and_passes_input_on():
    block = D.DenseBlock(5, 16, 12).eval()
    assert [layer.in_channels for layer in block.values()] == [16 + 12 * i for i in range(5)]
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        y = block(x)
    assert y.shape == (2, 16 + 5 * 12, 8, 8) and torch.equal(y[:, :16], x)


def test_transition_compression():
    t = D.Transition(75)
    assert t.out_channels == 37 and t(torch.randn(1, 75, 8, 8)).shape == (1, 37, 4, 4)
    assert D.Transition(64, compression=1.0).out_channels == 64
    with pytest.raises(ValueError, match="compression"):
        D.Transition(64, compression=0.0)


def test_cifar_architecture_follows_table2():
    for name, row in D.TABLE2.items():
        with torch.device("meta"):
            net = common.get_model(name)
        per_block = (row.depth - 4) // (6 if row.bottleneck else 3)
        blocks = [net.features.get_submodule(f"denseblock{i}") for i in (1, 2, 3)]
        assert [len(b) for b in blocks] == [per_block] * 3
        assert net.features.conv0.out_channels == (2 * row.growth_rate if row.bottleneck else 16)
        assert net.features.conv0.kernel_size == (3, 3)
        assert "pool0" not in dict(net.features.named_children())
    with pytest.raises(ValueError, match="6n \\+ 4"):
        D.cifar_densenet(101, 12)


def test_table1_layer_counts():
    layers = {d: 1 + 2 * sum(blocks) + 3 + 1 for d, (k, blocks) in D.TABLE1.items()}
    assert {d: n for d, n in layers.items() if d != 264} == {d: d for d in D.TABLE1 if d != 264}
    assert layers[264] == 265                                       # the name is one short


def _one_step(model, x):
    x = x.clone().requires_grad_(True)
    out = model(x)
    (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
    return out.detach(), x.grad, [p.grad for p in model.parameters()]


def test_memory_efficient_same_outputs_gradients_and_running_stats():
    torch.manual_seed(0)
    plain = D.cifar_densenet(22, 12).train()
    efficient = D.cifar_densenet(22, 12, memory_efficient=True).train()
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, 32, 32)
    (out_p, gx_p, g_p), (out_e, gx_e, g_e) = _one_step(plain, x), _one_step(efficient, x)
    torch.testing.assert_close(out_e, out_p)
    torch.testing.assert_close(gx_e, gx_p)
    for a, b in zip(g_p, g_e):
        torch.testing.assert_close(b, a)
    for (name, a), b in zip(plain.state_dict().items(), efficient.state_dict().values()):
        torch.testing.assert_close(b, a, msg=name)
    assert efficient.features.denseblock1.denselayer1.norm1.num_batches_tracked.item() == 1


def test_memory_efficient_saves_memory_more_with_depth():
    ratios = []
    for depth in (22, 58):
        saved = {}
        for me in (False, True):
            torch.manual_seed(0)
            net = D.cifar_densenet(depth, 12, memory_efficient=me).train()
            saved[me] = D.bytes_saved_for_backward(net, torch.randn(2, 3, 32, 32))
        ratios.append(saved[False] / saved[True])
    assert 1 < ratios[0] < ratios[1]


def test_bytes_saved_for_backward_counts_a_known_layer():
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False))
    x = torch.randn(2, 3, 10, 10)
    assert D.bytes_saved_for_backward(conv, x) == x.numel() * 4      # conv keeps its input only


@pytest.mark.parametrize("size", [32, 57])
def test_any_input_size_and_num_classes(size):
    for name in ("densenet121", "cifar_densenet_bc100_k12"):
        net = common.get_model(name, num_classes=7).eval()
        with torch.no_grad():
            assert net(torch.randn(1, 3, size, size)).shape == (1, 7)


@pytest.mark.parametrize("bad, match", [
    (torch.randn(1, 3, 31, 31), "at least 32x32"),
    (torch.randn(3, 32, 32), "batch"),
    (torch.randn(2, 1, 32, 32), "3 channels"),
    (torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8), "float"),
])
def test_clear_error_on_wrong_input(bad, match):
    with pytest.raises(ValueError, match=match):
        common.get_model("cifar_densenet40_k12")(bad)


def test_one_image_in_train_mode_with_a_1x1_last_map_is_a_clear_error():
    net = common.get_model("densenet121").train()
    assert [net.final_map_size(s) for s in (224, 32, 63)] == [7, 1, 2]
    with pytest.raises(ValueError, match="batches of 2"):
        net(torch.randn(1, 3, 32, 32))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 1000)
    # a 2x1 last map holds two values per channel: batch norm trains on it
    assert net(torch.randn(1, 3, 64, 32)).shape == (1, 1000)
    cifar = common.get_model("cifar_densenet40_k12").train()
    assert cifar.final_map_size(32) == 8 and cifar(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_constructor_docstrings_read_the_tables():
    for name, row in D.TABLE2.items():
        assert f"{row.params / 1e6:g}M parameters" in getattr(D, name).__doc__
    assert f"top-1 {D.TABLE3[264][0][0]:g}%" in D.densenet264.__doc__


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        D.DenseNet(num_classes=0)
    with pytest.raises(ValueError, match="stem"):
        D.DenseNet(stem="tiny")


# --------------------------------------------------------------------------- write-it-yourself

class _LearnerDenseLayer(nn.Module):
    """A learner's dense layer in their own style (one Sequential, their own names)."""

    def __init__(self, in_channels, growth_rate, width=None):
        super().__init__()
        width = width or 4 * growth_rate
        self.h = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(),
                               nn.Conv2d(in_channels, width, 1, bias=False),
                               nn.BatchNorm2d(width), nn.ReLU(),
                               nn.Conv2d(width, growth_rate, 3, padding=1, bias=False))

    def forward(self, x):
        return self.h(x)


def test_exercise_accepts_a_learners_own_dense_layer(capsys):
    from common.exercises import check
    check("densenet.DenseLayer", _LearnerDenseLayer)
    assert "all 3 cases pass" in capsys.readouterr().out


def test_exercise_names_the_four_times_the_input_bottleneck():
    from common.exercises import diagnose
    report = diagnose("densenet.DenseLayer",
                      lambda cin, k: _LearnerDenseLayer(cin, k, width=4 * cin))   # the bug
    assert report.status == "failed"
    assert report.known_bugs == ["the 1x1 conv makes 4 x its input, not 4k"]
    assert "4k feature-maps" in report.text


def test_exercise_names_a_transition_without_compression():
    from common.exercises import diagnose

    class NoCompression(nn.Module):
        def __init__(self, in_channels, compression=0.5):
            super().__init__()
            self.bn = nn.BatchNorm2d(in_channels)
            self.conv = nn.Conv2d(in_channels, in_channels, 1, bias=False)

        def forward(self, x):
            return nn.functional.avg_pool2d(self.conv(torch.relu(self.bn(x))), 2)

    report = diagnose("densenet.Transition", NoCompression)
    assert report.status == "failed" and report.known_bugs == ["no compression"]
