"""common.display (tables, block diagrams) and common.output_shapes."""
import io

import matplotlib
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch
from torch import nn

import common

matplotlib.use("Agg")


# --- table -------------------------------------------------------------------------------------

def test_table_is_aligned_text_in_a_terminal_and_markdown_in_a_notebook():
    t = common.table([("ResNet-20", 20, 0.27), ("ResNet-110", 110, 1.7)],
                     header=("model", "layers", "params (M)"))
    lines = str(t).splitlines()
    assert lines[0].split() == ["model", "layers", "params", "(M)"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert len({len(line) for line in lines}) == 1                  # every column padded
    assert lines[2].startswith("ResNet-20 ") and lines[2].endswith(" 0.27")   # numbers right
    assert repr(t) == str(t)
    md = t._repr_markdown_().splitlines()
    assert md[0] == "| model | layers | params (M) |" and md[1] == "|---|---:|---:|"
    assert md[3] == "| ResNet-110 | 110 | 1.7 |"


def test_table_escapes_markdown_and_refuses_ragged_rows():
    md = common.table([("a|b", "two\nlines")], header=("x", "y"))._repr_markdown_()
    assert "a\\|b" in md and "two lines" in md
    assert str(common.table([(1, "a")])).splitlines() == ["1  a"]    # no header
    with pytest.raises(ValueError, match="same number of cells.*\\[2, 3\\]"):
        common.table([(1, 2), (1, 2, 3)])
    with pytest.raises(ValueError, match="same number of cells"):
        common.table([(1, 2)], header=("only one",))


# --- output_shapes -----------------------------------------------------------------------------

def test_output_shapes_of_the_children_in_the_order_they_run():
    net = common.get_model("cifar_resnet20")
    shapes = common.output_shapes(net, (2, 3, 32, 32))
    assert list(shapes) == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3",
                            "avgpool", "fc"]
    x = torch.zeros(2, 3, 32, 32)
    with torch.no_grad():
        want = net.eval().layer2(net.layer1(net.relu(net.bn1(net.conv1(x))))).shape
    assert shapes["layer2"] == tuple(want) and shapes["fc"] == (2, 10)


def test_output_shapes_of_named_submodules_leave_no_hook_and_keep_the_mode():
    net = common.get_model("cifar_resnet20").train()
    shapes = common.output_shapes(net, torch.zeros(1, 3, 32, 32),
                                  names=["layer3.0.conv1", "layer2.0.downsample", "layer1"])
    assert shapes == {"layer1": (1, 16, 32, 32), "layer2.0.downsample": (1, 32, 16, 16),
                      "layer3.0.conv1": (1, 64, 8, 8)}
    assert net.training and not any(m._forward_hooks for m in net.modules())
    assert all(p.grad is None for p in net.parameters())


def test_output_shapes_clear_errors_and_cleanup_after_a_failure():
    net = common.get_model("cifar_resnet20")
    with pytest.raises(ValueError, match=r"no submodule 'layer4'; did you mean .*'layer1'"):
        common.output_shapes(net, (1, 3, 32, 32), names=["layer4"])
    with pytest.raises(ValueError):                                 # the model's own error
        common.output_shapes(net, (1, 1, 32, 32))
    assert not any(m._forward_hooks for m in net.modules()) and net.training


def test_output_shapes_of_modules_with_several_outputs_or_none():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.split, self.unused = nn.Identity(), nn.Linear(1, 1)

        def forward(self, x):
            return self.split((x, x[:, :1]))

    assert common.output_shapes(Two(), (2, 3)) == {"split": ((2, 3), (2, 1)), "unused": None}


# --- block diagrams ----------------------------------------------------------------------------

def _parts(fig):
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    circles = [p for p in ax.patches if isinstance(p, Circle)]
    return ax, boxes, arrows, circles


def _render(fig):
    canvas = FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue().startswith(b"\x89PNG")
    return canvas.get_renderer()


@pytest.mark.parametrize("layers, after, shortcut", [
    (["3x3 conv, 64", "3x3 conv, 64"], ["ReLU"], "identity"),
    (["1x1 conv, 64", "3x3 conv, 64", "1x1 conv, 256"], [], "identity x (256-d)"),
    (["3x3 conv", "3x3 conv"], ["ReLU"], ["1x1 conv, /2", "BN"]),
    (["3x3 conv", "3x3 conv"], [], None),
])
def test_block_diagram_draws_each_layer_arrow_and_the_merge(layers, after, shortcut):
    fig = common.block_diagram(layers, shortcut=shortcut, after=after, title="a block",
                               notes=["BN, ReLU"])
    ax, boxes, arrows, circles = _parts(fig)
    side = 0 if shortcut is None or isinstance(shortcut, str) else len(shortcut)
    merge = shortcut is not None
    assert len(boxes) == len(layers) + len(after) + side
    # in, between the layers, into the merge and out of it (+ the shortcut's), after, out
    assert len(arrows) == 1 + (len(layers) - 1) + 2 * merge + len(after) + 1
    assert len(circles) == merge
    first = max(boxes[:len(layers)], key=lambda b: b.get_y())
    start, end = arrows[0]._posA_posB                      # the input arrow reaches layer 1
    assert end[1] == pytest.approx(first.get_y() + first.get_height()) and end[0] == start[0]
    renderer = _render(fig)
    title = ax.title.get_window_extent(renderer)
    for text in ax.texts:                                  # no label runs into the title
        assert not text.get_window_extent(renderer).overlaps(title), text.get_text()
    for box, label in zip(boxes, [*layers]):               # each label fits in its box
        text = next(t for t in ax.texts if t.get_text() == label)
        inside = box.get_window_extent(renderer)
        extent = text.get_window_extent(renderer)
        assert inside.x0 <= extent.x0 and extent.x1 <= inside.x1, label
    if merge:                                              # the "+" node is a circle on screen
        e = circles[0].get_window_extent(renderer)
        assert e.width == pytest.approx(e.height, rel=0.02)
        assert any(t.get_text() == "+" for t in ax.texts)


@pytest.mark.parametrize("merge, symbol", [("+", "+"), ("x", "×"), ("concat", "C")])
def test_block_diagram_merges_for_resnet_senet_and_densenet(merge, symbol):
    ax = _parts(common.block_diagram(["a", "b"], merge=merge))[0]
    assert symbol in [t.get_text() for t in ax.texts]
    with pytest.raises(ValueError, match="Unknown merge 'max'.*'\\+'"):
        common.block_diagram(["a"], merge="max")


def test_block_diagrams_puts_panels_side_by_side_under_one_title():
    fig = common.block_diagrams(
        dict(layers=["3x3, 64", "3x3, 64"], title="basic"),
        dict(layers=["1x1, 64", "3x3, 64", "1x1, 256"], title="bottleneck", input_label="256-d"),
        title="Figure 5")
    assert [ax.get_title() for ax in fig.axes] == ["basic", "bottleneck"]
    assert fig.get_suptitle() == "Figure 5"
    renderer = _render(fig)
    left, right = (ax.get_window_extent(renderer) for ax in fig.axes)
    assert left.x1 <= right.x0 and abs(left.y1 - right.y1) < 2     # side by side, tops aligned
    assert fig._repr_png_().startswith(b"\x89PNG")                # a notebook shows it
    with pytest.raises(ValueError, match="needs 'layers'"):
        common.block_diagrams(dict(title="no layers"))
