"""common.exercises: every reference passes, every known bug is caught and named, learners' own
names and orders are accepted, and each generic pattern of the checker is recognised."""
import inspect
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common import exercises as E
from common.exercises import Case, Mutant, check, diagnose, list_exercises

NAMES = list_exercises()
MUTANTS = [(name, m.title) for name in NAMES for m in E.get_exercise(name).mutants]


# --------------------------------------------------------------------------- the registry

def test_the_course_exercises_are_registered_under_their_paper_file():
    assert {"resnet.BasicBlock", "resnet.Bottleneck", "vgg.stage", "vgg.features"} <= set(NAMES)
    for name in NAMES:
        ex = E.get_exercise(name)
        assert ex.reference.__module__ == f"common.exercises.{name.split('.')[0]}", name
        assert len(ex.cases) >= 2 and ex.mutants, f"{name}: several cases and known bugs"


def test_unknown_name_lists_the_exercises():
    with pytest.raises(ValueError, match="resnet.BasicBlock.*vgg.stage") as err:
        check("resnet.BasicBlok", nn.Identity)
    assert "did you mean 'resnet.BasicBlock'" in str(err.value)


@pytest.mark.parametrize("name", NAMES)
def test_the_reference_passes(name, capsys):
    ex = E.get_exercise(name)
    check(name, ex.reference)
    out = capsys.readouterr().out
    assert f"all {len(ex.cases)} cases pass (weights copied by name)" in out
    assert all(case.label in out for case in ex.cases) and "max |diff|" in out


@pytest.mark.parametrize("name,title", MUTANTS, ids=[f"{n}: {t}" for n, t in MUTANTS])
def test_every_known_bug_is_caught_and_named(name, title):
    ex = E.get_exercise(name)
    mutant = next(m for m in ex.mutants if m.title == title)
    report = diagnose(name, E._mutant_factory(ex, mutant))
    assert report.status == "failed"
    assert report.known_bugs == [title], "a known bug must be told apart from the others"
    assert mutant.diagnosis in report.text
    with pytest.raises(AssertionError, match=re.escape("Known bug: " + title[:20])):
        check(name, E._mutant_factory(ex, mutant))


# --------------------------------------------------------------------------- not done yet

class SkeletonInInit(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        raise NotImplementedError("write __init__")


class SkeletonInForward(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)

    def forward(self, x):
        raise NotImplementedError("write forward")


class NoForwardYet(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()


@pytest.mark.parametrize("skeleton", [SkeletonInInit, SkeletonInForward, NoForwardYet])
def test_a_skeleton_is_not_done_yet_without_an_error(skeleton, capsys):
    check("resnet.BasicBlock", skeleton)                    # does not raise
    out = capsys.readouterr().out
    assert "not done yet" in out and "NotImplementedError" in out
    assert "first block of a stage" in out                  # the cases it will be checked on


def test_a_not_implemented_error_inside_torch_is_a_bug_not_a_skeleton():
    class Upsampling(nn.Module):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__()

        def forward(self, x):
            return F.interpolate(x, scale_factor=2, mode="linear")    # needs 3-D input

    report = diagnose("resnet.BasicBlock", Upsampling)
    assert report.status == "failed" and report.stage == "build"
    assert "Got 4D input" in report.text and "mode=\"linear\"" in report.text


def test_usage_errors_say_what_to_pass():
    with pytest.raises(TypeError, match="not a block already built"):
        check("resnet.BasicBlock", SkeletonInForward(16, 16))
    with pytest.raises(TypeError, match="needs your class"):
        check("resnet.BasicBlock", 42)
    report = diagnose("vgg.stage", lambda c, row, bn=False: [nn.Conv2d(c, 64, 3, padding=1)])
    assert report.stage == "build" and "nn.Sequential(*layers)" in report.text


# --------------------------------------------------------------------------- learners' own code

class LearnerBasicBlock(nn.Module):
    """Right, with the learner's own names, the shortcut first, option A by concatenation."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.cin, self.cout, self.stride = cin, cout, stride
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.n1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.n2 = nn.BatchNorm2d(cout)

    def shortcut(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        zeros = x.new_zeros(x.shape[0], self.cout - self.cin, *x.shape[2:])
        return torch.cat([x, zeros], dim=1)

    def branch(self, x):
        return self.n2(self.c2(F.relu(self.n1(self.c1(x)))))

    def forward(self, x):
        identity = self.shortcut(x)
        return F.relu(self.branch(x) + identity)


class LearnerBottleneck(nn.Module):
    """Right (v1.5, option B), with its projection defined AND computed first: the layers of
    equal shapes (the projection and the last 1x1 conv) come in another order than the
    reference's."""

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        cout = 4 * planes
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))
        self.reduce = nn.Sequential(nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes),
                                    nn.ReLU())
        self.spatial = nn.Sequential(nn.Conv2d(planes, planes, 3, stride, 1, bias=False),
                                     nn.BatchNorm2d(planes), nn.ReLU())
        self.restore = nn.Sequential(nn.Conv2d(planes, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.proj is None else self.proj(x)
        return F.relu(self.restore(self.spatial(self.reduce(x))) + identity)


def test_learners_names_and_order_are_accepted(capsys):
    check("resnet.BasicBlock", LearnerBasicBlock)
    assert "weights copied by position" in capsys.readouterr().out
    check("resnet.Bottleneck", LearnerBottleneck)
    assert "matching layers of the same shapes" in capsys.readouterr().out


def learner_block(**bug):
    """LearnerBasicBlock with one bug."""
    class Buggy(LearnerBasicBlock):
        def __init__(self, cin, cout, stride=1):
            super().__init__(cin, cout, stride)
            if bug.get("stride_in_conv2"):
                self.c1.stride, self.c2.stride = (1, 1), (stride, stride)

        def forward(self, x):
            if bug.get("bn_after_addition"):               # the second BN moved past the addition
                out = self.c2(F.relu(self.n1(self.c1(x))))
                return F.relu(self.n2(out + self.shortcut(x)))
            return F.relu(self.branch(x) + self.shortcut(x))
    return Buggy


def test_the_stride_in_the_wrong_conv_is_named():
    report = diagnose("resnet.BasicBlock", learner_block(stride_in_conv2=True))
    assert report.stage == "outputs" and report.known_bugs == ["the stride in the second conv"]
    assert "Known bug: the stride in the second conv" in report.text and "DIFFERS" in report.text


def test_a_misplaced_batch_norm_is_caught_although_a_default_one_hides_it():
    buggy, right = learner_block(bn_after_addition=True)(32, 32, 2), LearnerBasicBlock(32, 32, 2)
    buggy.load_state_dict(right.state_dict())
    x = torch.randn(2, 32, 8, 8)
    with torch.no_grad():                                   # default BN: the identity in eval mode
        torch.testing.assert_close(buggy.eval()(x), right.eval()(x), atol=1e-4, rtol=1e-4)
    report = diagnose("resnet.BasicBlock", learner_block(bn_after_addition=True))
    assert report.status == "failed" and report.stage == "outputs"


def test_the_copied_cifar_option_a_is_explained():
    """akamaster/pytorch_resnet_cifar10's shortcut: planes // 4 zeros on each side, every other
    pixel, whenever the shape changes; right only for 16 -> 32 at stride 2."""
    class CopiedFromTheWeb(LearnerBasicBlock):
        def shortcut(self, x):
            if self.stride == 1 and self.cin == self.cout:
                return x
            return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.cout // 4, self.cout // 4))

    report = diagnose("resnet.BasicBlock", CopiedFromTheWeb)
    assert report.stage == "build" and "shape-mismatch" in report.hints
    assert "stride 2, channels kept" in report.text and "It runs in: " in report.text


def test_a_bottleneck_four_times_too_wide_is_named():
    class Wide(LearnerBottleneck):
        def __init__(self, cin, planes, stride=1):
            super().__init__(cin, planes, stride)
            w = 4 * planes                                 # the inner width read as planes * 4
            self.reduce[0], self.reduce[1] = nn.Conv2d(cin, w, 1, bias=False), nn.BatchNorm2d(w)
            self.spatial[0] = nn.Conv2d(w, w, 3, stride, 1, bias=False)
            self.spatial[1] = nn.BatchNorm2d(w)
            self.restore[0] = nn.Conv2d(w, w, 1, bias=False)

    report = diagnose("resnet.Bottleneck", Wide)
    assert report.stage == "parameters" and "width-x4" in report.hints
    assert report.known_bugs == ["the bottleneck 4x too wide"] and "<-- differs" in report.text


def test_the_v1_bottleneck_is_named():
    class V1(LearnerBottleneck):
        def __init__(self, cin, planes, stride=1):
            super().__init__(cin, planes, stride)
            self.reduce[0].stride, self.spatial[0].stride = (stride, stride), (1, 1)

    assert diagnose("resnet.Bottleneck", V1).known_bugs == ["the stride in the first 1x1 conv (v1)"]


def learner_stage(padding=None, bn_after_relu=False):
    def my_stage(in_channels, row, batch_norm=False):
        blocks = []
        for spec in row:
            k, c = (int(v) for v in spec.removeprefix("conv").split("-"))
            layers = [nn.Conv2d(in_channels, c, k, padding=k // 2 if padding is None else padding)]
            act = [nn.BatchNorm2d(c), nn.ReLU()] if batch_norm else [nn.ReLU()]
            layers += act[::-1] if bn_after_relu else act
            blocks.append(nn.Sequential(*layers))            # nested: names differ
            in_channels = c
        return nn.Sequential(*blocks, nn.MaxPool2d(2))
    return my_stage


def test_vgg_stage_learner_versions():
    assert diagnose("vgg.stage", learner_stage()).status == "passed"
    assert diagnose("vgg.stage", learner_stage(padding=0)).known_bugs == ["no padding"]
    report = diagnose("vgg.stage", learner_stage(bn_after_relu=True))
    assert report.known_bugs == ["batch norm after the ReLU"]


def test_vgg_features_must_keep_torchvisions_indices():
    def nested(config, batch_norm=False):
        from common.models import vgg
        stages, c = [], 3
        for row in config:
            layers, c = vgg.stage(c, row, batch_norm)
            stages.append(nn.Sequential(*layers))
        return nn.Sequential(*stages)

    report = diagnose("vgg.features", nested)
    assert report.stage == "names" and "strict=True" in report.text


def test_check_leaves_the_learners_random_state_and_threads_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    check("resnet.BasicBlock", E.get_exercise("resnet.BasicBlock").reference)
    assert torch.equal(torch.rand(3), expected) and torch.get_num_threads() == threads


# --------------------------------------------------------------------------- generic patterns

class Inverted(nn.Module):
    """A toy block for the generic patterns: 1x1 expand (x4), 3x3 with the stride, 1x1 project
    with no activation after it (a linear bottleneck), plus the input where the shape allows."""

    def __init__(self, cin, cout, stride=1, *, expand=4, stride_at=2, final_relu=False,
                 residual=True, eps=1e-5, momentum=0.1, bias=False, extra_bn=False,
                 shared_bn=False, inplace_add=False, bn_in_eval=False):
        super().__init__()
        hidden = cin * expand
        self.conv1 = nn.Conv2d(cin, hidden, 1, stride if stride_at == 1 else 1, bias=bias)
        self.bn1 = nn.BatchNorm2d(hidden, eps=eps, momentum=momentum)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, stride if stride_at == 2 else 1, 1, bias=False)
        self.bn2 = self.bn1 if shared_bn else nn.BatchNorm2d(hidden, eps=eps, momentum=momentum)
        self.conv3 = nn.Conv2d(hidden, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=eps, momentum=momentum)
        if extra_bn:
            self.bn4 = nn.BatchNorm2d(cout)
        self.use_res = residual and stride == 1 and cin == cout
        self.final_relu, self.inplace_add, self.bn_in_eval = final_relu, inplace_add, bn_in_eval

    def bn(self, m, x):
        if self.bn_in_eval:                                 # running statistics, even in training
            return F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0,
                                m.eps)
        return m(x)

    def forward(self, x):
        out = F.relu(self.bn(self.bn1, self.conv1(x)))
        out = F.relu(self.bn(self.bn2, self.conv2(out)))
        out = self.bn(self.bn3, self.conv3(out))
        if self.use_res:
            if self.inplace_add:
                x += out
                out = x
            else:
                out = out + x
        return F.relu(out) if self.final_relu else out


@pytest.fixture
def toy(monkeypatch):
    """Registers "toy.Inverted" (no known bugs: only the generic patterns can speak)."""
    monkeypatch.setattr(E, "_REGISTRY", dict(E._REGISTRY))

    @E.exercise("toy.Inverted", paper="a test", hints={"residual": "Wrong where it adds x."},
                cases=[Case("8 -> 8, stride 1, residual", (8, 8, 1), (2, 8, 6, 6),
                            tags=("residual",)),
                       Case("8 -> 16, stride 1", (8, 16, 1), (2, 8, 6, 6), tags=("channels",)),
                       Case("8 -> 16, stride 2", (8, 16, 2), (2, 8, 6, 6),
                            tags=("stride", "channels"))])
    def inverted(cin, cout, stride=1):
        return Inverted(cin, cout, stride)

    return lambda **bug: (lambda cin, cout, stride=1: Inverted(cin, cout, stride, **bug))


@pytest.mark.parametrize("bug,stage,hint", [
    (dict(final_relu=True), "outputs", "activation-after"),
    (dict(stride_at=1), "outputs", "tag:stride"),
    (dict(residual=False), "outputs", "tag:residual"),
    (dict(eps=1e-3), "outputs", "small-difference"),
    (dict(expand=16), "parameters", "width-x4"),
    (dict(bias=True), "parameters", "conv-bias"),
    (dict(extra_bn=True), "parameters", "unused-layer"),
    (dict(shared_bn=True), "parameters", "shared-layer"),
    (dict(momentum=0.01), "train", "bn-momentum"),
    (dict(bn_in_eval=True), "train", "train-only"),
    (dict(inplace_add=True), "build", "input-modified"),
], ids=lambda v: v if isinstance(v, str) else next(iter(v), ""))
def test_generic_patterns_are_recognised(toy, bug, stage, hint):
    report = diagnose("toy.Inverted", toy(**bug))
    assert report.status == "failed" and report.stage == stage, report.text
    assert hint in report.hints and report.known_bugs == [], report.text
    assert "Likely cause: " in report.text
    assert diagnose("toy.Inverted", toy()).status == "passed"


def test_the_tag_hint_text_of_the_exercise_or_the_default(toy):
    assert "Wrong where it adds x." in diagnose("toy.Inverted", toy(residual=False)).text
    assert E.TAG_HINTS["stride"] in diagnose("toy.Inverted", toy(stride_at=1)).text


def test_shape_and_crash_patterns(monkeypatch):
    monkeypatch.setattr(E, "_REGISTRY", dict(E._REGISTRY))

    class Relu(nn.Module):
        def __init__(self, c, k=3, padding=1, stride=1, relu=True, cin=None):
            super().__init__()
            self.conv = nn.Conv2d(cin or c, c, k, stride, padding)
            self.relu = relu

        def forward(self, x):
            return F.relu(self.conv(x)) if self.relu else self.conv(x)

    E.exercise("toy.Relu", paper="a test",
               cases=[Case("4 channels", (4,), (1, 4, 8, 8)),
                      Case("stride 2", (4,), (1, 4, 8, 8), kwargs={"stride": 2})])(Relu)
    cases = {"padding": lambda c, stride=1: Relu(c, padding=0, stride=stride),
             "spatial-larger": lambda c, stride=1: Relu(c),
             "kernel-size": lambda c, stride=1: Relu(c, k=5, padding=2, stride=stride),
             "activation-missing": lambda c, stride=1: Relu(c, stride=stride, relu=False),
             "channel-mismatch": lambda c, stride=1: Relu(c, stride=stride, cin=2 * c)}
    for hint, cand in cases.items():
        assert hint in diagnose("toy.Relu", cand).hints, hint


# --------------------------------------------------------------------------- the registration API

def test_registration_rejects_what_cannot_work(monkeypatch):
    monkeypatch.setattr(E, "_REGISTRY", dict(E._REGISTRY))
    ref = lambda c, stride=1: nn.Conv2d(c, c, 3, stride, 1)     # noqa: E731
    with pytest.raises(ValueError, match="do not fit"):
        E.exercise("toy.conv", paper="", cases=[Case("x", (1, 2, 3), (1, 1, 4, 4))])(ref)
    with pytest.raises(ValueError, match="'<paper>.<block>'"):
        E.exercise("conv", paper="", cases=[Case("x", (1,), (1, 1, 4, 4))])(ref)
    with pytest.raises(ValueError, match="exactly one of build= or forward="):
        Mutant("t", "d")
    with pytest.raises(ValueError, match="already registered"):
        E.exercise("resnet.BasicBlock", paper="", cases=[Case("x", (1,), (1, 1, 4, 4))])(ref)


def test_the_module_docstring_example_registers_and_works(monkeypatch):
    """The example the paper files copy: run it as written."""
    monkeypatch.setattr(E, "_REGISTRY", {})
    doc = E.__doc__
    example = inspect.cleandoc(doc.split("A complete example::", 1)[1].split("\n\nChoose", 1)[0])
    example = example.replace("\"The residual branch ends in a ReLU before the addition ...\"",
                              "\"A ReLU before the addition.\"")
    namespace = {"__name__": "common.exercises.resnet"}
    exec(compile(example, "<docstring>", "exec"), namespace)          # noqa: S102
    assert diagnose("resnet.BasicBlock", namespace["basic_block"]).status == "passed"
    ex = E._REGISTRY["resnet.BasicBlock"]
    bug = E._mutant_factory(ex, ex.mutants[0])
    assert diagnose("resnet.BasicBlock", bug).known_bugs == ["ReLU before the addition"]


def test_an_se_block_written_with_linear_layers_passes_and_one_with_a_bug_does_not():
    """Fully connected layers as nn.Linear hold the same values as 1x1 convolutions: the checker
    reshapes the weights it copies, and still catches a bug in such a block."""

    class LinearSE(nn.Module):
        def __init__(self, channels, reduced, gate=torch.sigmoid):
            super().__init__()
            self.fc1, self.fc2, self.gate = nn.Linear(channels, reduced), nn.Linear(reduced, channels), gate

        def forward(self, x):
            s = self.gate(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
            return x * s[:, :, None, None]

    check("senet.SqueezeExcitation", LinearSE)
    report = diagnose("senet.SqueezeExcitation",
                      lambda c, r: LinearSE(c, r, gate=lambda t: t.softmax(1)))
    assert report.status == "failed"
