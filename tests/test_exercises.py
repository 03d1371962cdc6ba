"""common.exercises: every reference passes, every known bug is caught and named, learners' own
names and orders are accepted, and each generic pattern of the checker is recognised."""
import inspect
import re

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from common import exercises as E
from common.exercises import Case, Mutant, check, diagnose, list_exercises
from common.exercises import registry as C  # the registry: its private table
from common.exercises.efficientnet import as_block

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
    report = diagnose(name, C.mutant_factory(ex, mutant))
    assert report.status == "failed"
    assert report.known_bugs == [title], "a known bug must be told apart from the others"
    assert mutant.diagnosis in report.text
    with pytest.raises(AssertionError, match=re.escape("Known bug: " + title[:20])):
        check(name, C.mutant_factory(ex, mutant))


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

    assert (diagnose("resnet.Bottleneck", V1).known_bugs
            == ["the stride in the first 1x1 conv (v1)"])


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


def nested_vgg_features(config, batch_norm=False):
    """VGG's features with a Sequential per stage: right layers, other names than torchvision's."""
    from common.models import vgg
    stages, c = [], 3
    for row in config:
        layers, c = vgg.stage(c, row, batch_norm)
        stages.append(nn.Sequential(*layers))
    return nn.Sequential(*stages)


def test_vgg_features_must_keep_torchvisions_indices():
    report = diagnose("vgg.features", nested_vgg_features)
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
    monkeypatch.setattr(C, "_REGISTRY", dict(C._REGISTRY))

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
    monkeypatch.setattr(C, "_REGISTRY", dict(C._REGISTRY))

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
    monkeypatch.setattr(C, "_REGISTRY", dict(C._REGISTRY))
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
    monkeypatch.setattr(C, "_REGISTRY", {})
    doc = E.__doc__
    example = inspect.cleandoc(doc.split("A complete example::", 1)[1].split("\n\nChoose", 1)[0])
    example = example.replace("\"The residual branch ends in a ReLU before the addition ...\"",
                              "\"A ReLU before the addition.\"")
    namespace = {"__name__": "common.exercises.resnet"}
    exec(compile(example, "<docstring>", "exec"), namespace)          # noqa: S102
    assert diagnose("resnet.BasicBlock", namespace["basic_block"]).status == "passed"
    ex = C._REGISTRY["resnet.BasicBlock"]
    bug = C.mutant_factory(ex, ex.mutants[0])
    assert diagnose("resnet.BasicBlock", bug).known_bugs == ["ReLU before the addition"]


def test_an_se_block_written_with_linear_layers_passes_and_one_with_a_bug_does_not():
    """Fully connected layers as nn.Linear hold the same values as 1x1 convolutions: the checker
    reshapes the weights it copies, and still catches a bug in such a block."""

    class LinearSE(nn.Module):
        def __init__(self, channels, reduced, gate=torch.sigmoid):
            super().__init__()
            self.fc1, self.fc2, self.gate = (nn.Linear(channels, reduced),
                                             nn.Linear(reduced, channels), gate)

        def forward(self, x):
            s = self.gate(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
            return x * s[:, :, None, None]

    check("senet.SqueezeExcitation", LinearSE)
    report = diagnose("senet.SqueezeExcitation",
                      lambda c, r: LinearSE(c, r, gate=lambda t: t.softmax(1)))
    assert report.status == "failed"


# ---------------------------------------------------------------------- issue 22: learners' blocks
# Each block below is written as a learner would write it (from the statement, not by editing
# the reference); each must pass (with its note when it is an accepted variant) or fail with the
# cause named.

def _expect(report, stage, known=None, hint=None, says=(), never=()):
    assert report.status == "failed" and report.stage == stage, report.text
    if known is not None:
        assert report.known_bugs == [known], report.text
    if hint is not None:
        assert hint in report.hints, report.text
    for words in says:
        assert words in report.text, (words, report.text)
    for words in never:
        assert words not in report.text, (words, report.text)


class DetachedBasicBlock(LearnerBasicBlock):
    """`identity = x.clone().detach()`, "to be safe" after the in-place warning."""

    def forward(self, x):
        identity = self.shortcut(x.clone().detach())
        return F.relu(self.branch(x) + identity)


class DetachedBottleneck(LearnerBottleneck):
    def forward(self, x):
        identity = x.clone().detach()
        if self.proj is not None:
            identity = self.proj(identity)
        return F.relu(self.restore(self.spatial(self.reduce(x))) + identity)


class LearnerInvertedResidual(nn.Module):
    """Right: expansion (none when t = 1), depthwise with the stride, linear projection."""

    def __init__(self, cin, cout, stride, t, detach=False, stride_in_projection=False):
        super().__init__()
        hidden = cin * t
        layers = []
        if t != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        dw_stride, pw_stride = (1, stride) if stride_in_projection else (stride, 1)
        layers += [nn.Conv2d(hidden, hidden, 3, dw_stride, 1, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), nn.ReLU6(),
                   nn.Conv2d(hidden, cout, 1, pw_stride, bias=False), nn.BatchNorm2d(cout)]
        self.layers = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout
        self.detach = detach

    def forward(self, x):
        out = self.layers(x)
        if self.residual:
            out = out + (x.clone().detach() if self.detach else x)
        return out


class LearnerSE(nn.Module):
    """Right, with nn.Linear FCs (the statement says Linear is fine). `bug` selects one mistake."""

    def __init__(self, channels, reduced, act=nn.ReLU, bug=None):
        super().__init__()
        self.fc1, self.fc2, self.act, self.bug = (nn.Linear(channels, reduced),
                                                  nn.Linear(reduced, channels), act(), bug)

    def excite(self, z):
        s = self.fc2(self.act(self.fc1(z)))
        return F.hardsigmoid(s) if self.bug == "hardsigmoid" else torch.sigmoid(s)

    def forward(self, x):
        z = (x.detach() if self.bug == "detached squeeze" else x).mean((2, 3))
        if self.bug == "no_grad":                          # "the gate is only a weighting"
            with torch.no_grad():
                s = self.excite(z)
        else:
            s = self.excite(z)
        if self.bug == "in place":
            x *= s[:, :, None, None]
            return x
        return x * s[:, :, None, None]


class LearnerMBConv(nn.Module):
    """Right: expand (none when t = 1), depthwise k x k with the stride, SE through
    in_channels // 4, linear projection; SiLU. Options: batch-norm constants, one bug."""

    def __init__(self, cin, cout, k, stride, t, eps=1e-5, momentum=0.1, bug=None):
        super().__init__()
        hidden = cin * t
        bn = lambda c: nn.BatchNorm2d(c, eps=eps, momentum=momentum)   # noqa: E731
        self.expand = (nn.Sequential(nn.Conv2d(cin, hidden, 1, bias=False), bn(hidden), nn.SiLU())
                       if t != 1 else nn.Identity())
        self.dw = nn.Sequential(nn.Conv2d(hidden, hidden, k, stride, k // 2, groups=hidden,
                                          bias=False), bn(hidden), nn.SiLU())
        se_channels = cout if bug == "se after projection" else hidden
        self.se = LearnerSE(se_channels, max(1, cin // 4), act=nn.SiLU)
        self.project = nn.Sequential(nn.Conv2d(hidden, cout, 1, bias=False), bn(cout))
        self.residual, self.bug = stride == 1 and cin == cout, bug

    def forward(self, x):
        out = self.dw(self.expand(x))
        if self.bug == "se after projection":
            out = self.se(self.project(out))
        else:
            out = self.project(self.se(out))
        if self.residual:
            if self.bug == "stochastic depth always on":   # torchvision.ops.stochastic_depth
                out = torchvision.ops.stochastic_depth(out, 0.2, "row", training=True)
            out = out + (x.clone().detach() if self.bug == "detach" else x)
        return out


class LearnerDenseLayer(nn.Module):
    def __init__(self, cin, k, dropout=0.0, concat=False):
        super().__init__()
        self.norm1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, 4 * k, 1, bias=False)
        self.norm2, self.conv2 = nn.BatchNorm2d(4 * k), nn.Conv2d(4 * k, k, 3, padding=1,
                                                                   bias=False)
        self.dropout, self.concat = dropout, concat

    def forward(self, x):
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        if self.dropout:
            out = F.dropout(out, self.dropout)      # sec. 4.2's 0.2; training=True by default
        return torch.cat([x, out], 1) if self.concat else out


class LearnerSEBottleneck(LearnerBottleneck):
    """Right: the SE block on the output of the last batch norm, before the addition."""

    def __init__(self, cin, planes, stride=1, bug=None):
        super().__init__(cin, planes, stride)
        self.bug = bug
        if bug == "se after conv2":
            self.se = LearnerSE(planes, max(1, planes // 16))
        else:
            self.se = LearnerSE(4 * planes, 4 * planes // 16)
        if bug == "stride in conv3":
            self.spatial[0].stride, self.restore[0].stride = (1, 1), (stride, stride)

    def forward(self, x):
        identity = x if self.proj is None else self.proj(x)
        if self.bug == "se after conv2":
            out = self.restore(self.se(self.spatial(self.reduce(x))))
        else:
            out = self.se(self.restore(self.spatial(self.reduce(x))))
        return F.relu(out + identity)


def my_round_filters(filters, width_coefficient, bug=None):
    v = filters * width_coefficient
    if bug == "python round":
        new = max(8, round(v / 8) * 8)
    else:
        new = max(8, int(v + 4) // 8 * 8)
    if new < 0.9 * (filters if bug == "unscaled" else v):
        new += 8
    return new


# 1. Wrong code that passes: no gradient compared, a CPU tensor, randomness in eval.

@pytest.mark.parametrize("name,block", [
    ("resnet.BasicBlock", DetachedBasicBlock),
    ("resnet.Bottleneck", DetachedBottleneck),
    ("mobilenetv2.InvertedResidual", lambda *a: LearnerInvertedResidual(*a, detach=True)),
    ("efficientnet.MBConv", lambda *a: LearnerMBConv(*a, bug="detach")),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_detached_shortcut_is_caught_by_its_gradient(name, block):
    _expect(diagnose(name, block), "gradients", known="the shortcut detached",
            says=("the gradient does not flow through your shortcut",
                  "the input's gradient: DIFFERS"))


def test_the_learners_inverted_residual_and_mbconv_pass():
    assert diagnose("mobilenetv2.InvertedResidual", LearnerInvertedResidual).status == "passed"
    assert diagnose("efficientnet.MBConv", LearnerMBConv).status == "passed"


def test_an_se_gate_without_gradient_and_a_detached_squeeze_are_caught():
    _expect(diagnose("senet.SqueezeExcitation", lambda c, r: LearnerSE(c, r, bug="no_grad")),
            "gradients", known="the gate computed without gradient",
            says=("the gradient does not flow through your SE branch", "none reaches fc1, fc2"))
    _expect(diagnose("senet.SqueezeExcitation",
                     lambda c, r: LearnerSE(c, r, bug="detached squeeze")),
            "gradients", known="the squeeze detached",
            says=("the gradient does not flow through your squeeze",))


def test_a_detached_shortcut_without_a_known_bug_gets_the_generic_cause(toy):
    class Detached(Inverted):
        def forward(self, x):
            out = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(
                x))))))))
            return out + x.detach() if self.use_res else out

    report = diagnose("toy.Inverted", lambda cin, cout, stride=1: Detached(cin, cout, stride))
    _expect(report, "gradients", hint="input-gradient",
            says=("the gradient does not flow through your shortcut",))


def test_round_filters_compares_the_10_percent_rule_with_the_scaled_count():
    assert diagnose("efficientnet.round_filters", as_block(my_round_filters)).status == "passed"
    report = diagnose("efficientnet.round_filters",
                      as_block(lambda f, w: my_round_filters(f, w, bug="unscaled")))
    _expect(report, "shape", known="the 10% rule against the unscaled filters",
            says=("(1, 16, 1, 1), the reference's (1, 24, 1, 1)",))


def test_round_filters_tells_pythons_round_from_the_official_rule():
    report = diagnose("efficientnet.round_filters",
                      as_block(lambda f, w: my_round_filters(f, w, bug="python round")))
    _expect(report, "shape", known="Python's round() on a tie", says=("52 = 6.5 x 8",))


def test_a_shortcut_made_with_torch_zeros_on_the_cpu_is_caught():
    class ZerosOnTheCPU(LearnerBasicBlock):
        def shortcut(self, x):
            x = x[:, :, ::self.stride, ::self.stride]
            n, _, h, w = x.shape
            return torch.cat([x, torch.zeros(n, self.cout - self.cin, h, w)], dim=1)

    _expect(diagnose("resnet.BasicBlock", ZerosOnTheCPU), "device", hint="device",
            says=("x.new_zeros", "on cpu in bfloat16: the output is on cpu in float32"))


@pytest.mark.parametrize("name,block", [
    ("densenet.DenseLayer", lambda cin, k: LearnerDenseLayer(cin, k, dropout=0.2)),
    ("efficientnet.MBConv", lambda *a: LearnerMBConv(*a, bug="stochastic depth always on")),
], ids=["F.dropout", "stochastic_depth"])
def test_dropout_or_stochastic_depth_left_on_in_eval_mode_is_named(name, block):
    _expect(diagnose(name, block), "random", hint="random-in-eval",
            says=("training=self.training",))


# 2. Right code that fails: accepted variants pass with their note.

def test_option_a_padded_on_both_sides_passes_with_a_note():
    class BothSides(LearnerBasicBlock):
        def shortcut(self, x):
            x = x[:, :, ::self.stride, ::self.stride]
            extra = self.cout - self.cin
            return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))

    report = diagnose("resnet.BasicBlock", BothSides)
    assert report.status == "passed" and report.accepted == "zero channels padded on both sides"
    assert "Accepted: zero channels padded on both sides" in report.text
    assert "appends them" in report.text and "all 4 cases pass" in report.text


def test_a_dense_layer_returning_the_concatenation_is_an_interface_choice():
    _expect(diagnose("densenet.DenseLayer", lambda cin, k: LearnerDenseLayer(cin, k, concat=True)),
            "shape", known="the layer returns the concatenation",
            says=("an interface choice, not a mistake against the paper",))
    assert diagnose("densenet.DenseLayer", LearnerDenseLayer).status == "passed"


def test_vgg_stage_without_bias_before_batch_norm_passes_with_a_note_and_features_says_why_not():
    def stage(in_channels, row, batch_norm=False):
        layers = []
        for spec in row:
            k, c = (int(v) for v in spec.removeprefix("conv").split("-"))
            layers.append(nn.Conv2d(in_channels, c, k, padding=k // 2, bias=not batch_norm))
            layers += [nn.BatchNorm2d(c), nn.ReLU()] if batch_norm else [nn.ReLU()]
            in_channels = c
        return nn.Sequential(*layers, nn.MaxPool2d(2, 2))

    report = diagnose("vgg.stage", stage)
    assert report.status == "passed" and report.accepted == "no bias before batch norm"
    assert "torchvision's vgg*_bn" in report.text

    def features(config, batch_norm=False):
        layers, c = [], 3
        for row in config:
            for spec in row:
                if spec == "LRN":
                    layers.append(nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0))
                    continue
                stage_layers = list(stage(c, [spec], batch_norm))[:-1]
                layers += stage_layers
                c = stage_layers[0].out_channels
            layers.append(nn.MaxPool2d(2, 2))
        return nn.Sequential(*layers)

    _expect(diagnose("vgg.features", features), "parameters", known="no bias before batch norm",
            says=("torchvision's vgg*_bn keep bias=True",))


def test_vgg_stage_without_any_bias_is_still_a_bug_and_the_hint_does_not_say_it_is_right():
    def stage(in_channels, row, batch_norm=False):
        layers = []
        for spec in row:
            k, c = (int(v) for v in spec.removeprefix("conv").split("-"))
            layers.append(nn.Conv2d(in_channels, c, k, padding=k // 2, bias=False))
            layers += [nn.BatchNorm2d(c), nn.ReLU()] if batch_norm else [nn.ReLU()]
            in_channels = c
        return nn.Sequential(*layers, nn.MaxPool2d(2, 2))

    _expect(diagnose("vgg.stage", stage), "parameters", known="convs without bias",
            says=("Without batch norm, VGG's convs have biases",), never=("needs no bias",))


@pytest.mark.parametrize("eps,momentum,title", [
    (1e-3, 0.1, "TensorFlow's batch-norm epsilon 1e-3"),
    (1e-3, 0.01, "TensorFlow's batch norm (eps 1e-3, momentum 0.01)"),
])
def test_mbconv_with_tensorflows_batch_norm_passes_with_a_note(eps, momentum, title):
    report = diagnose("efficientnet.MBConv",
                      lambda *a: LearnerMBConv(*a, eps=eps, momentum=momentum))
    assert report.status == "passed" and report.accepted == title, report.text


# 3. Wrong leads in the diagnosis.

def test_the_stride_in_the_last_1x1_conv_is_named_not_blamed_on_dropout():
    class StrideInConv3(LearnerBottleneck):
        def __init__(self, cin, planes, stride=1):
            super().__init__(cin, planes, stride)
            self.spatial[0].stride, self.restore[0].stride = (1, 1), (stride, stride)

    _expect(diagnose("resnet.Bottleneck", StrideInConv3), "train",
            known="the stride in the last 1x1 conv",
            says=("same outputs as the stride in the 3x3",),
            never=("dropout",))
    _expect(diagnose("mobilenetv2.InvertedResidual",
                     lambda *a: LearnerInvertedResidual(*a, stride_in_projection=True)),
            "train", known="the stride in the projection", never=("dropout",))
    # no known bug for it in the SE bottleneck: the generic cause says the same
    _expect(diagnose("senet.SEBottleneck",
                     lambda *a: LearnerSEBottleneck(*a, bug="stride in conv3")),
            "train", hint="stride-late", says=("same outputs in eval mode",), never=("dropout",))


def test_a_moved_se_block_is_named_by_its_position_and_width():
    assert diagnose("senet.SEBottleneck", LearnerSEBottleneck).status == "passed"
    _expect(diagnose("senet.SEBottleneck",
                     lambda *a: LearnerSEBottleneck(*a, bug="se after conv2")),
            "parameters", hint="se-position", says=("on 64 channels", "on 256 channels"),
            never=("kernel size differs",))
    _expect(diagnose("efficientnet.MBConv",
                     lambda *a: LearnerMBConv(*a, bug="se after projection")),
            "parameters", hint="se-position", says=("Your SE block sits after",),
            never=("kernel size differs",))


def test_a_hard_sigmoid_gate_is_named_not_blamed_on_batch_norm():
    _expect(diagnose("senet.SqueezeExcitation", lambda c, r: LearnerSE(c, r, bug="hardsigmoid")),
            "outputs", known="a hard sigmoid as the gate", never=("eps",))


def test_a_hard_sigmoid_without_a_known_bug_gets_the_approximation_cause(monkeypatch):
    monkeypatch.setattr(C, "_REGISTRY", dict(C._REGISTRY))
    E.exercise("toy.SE", paper="a test", cases=[Case("16 -> 4", (16, 4), (2, 16, 5, 5)),
                                                Case("8 -> 2", (8, 2), (2, 8, 5, 5))])(LearnerSE)
    report = diagnose("toy.SE", lambda c, r: LearnerSE(c, r, bug="hardsigmoid"))
    _expect(report, "outputs", hint="small-difference-no-bn", says=("hard sigmoid",),
            never=("eps",))


def test_a_layer_defined_but_never_called_is_named():
    class NoBn2(LearnerBasicBlock):
        def branch(self, x):
            return self.c2(F.relu(self.n1(self.c1(x))))        # n2 defined, never called

    _expect(diagnose("resnet.BasicBlock", NoBn2), "outputs", hint="unused-layer",
            says=("never uses: n2",), never=("No known pattern",))

    class Transition(nn.Module):
        def __init__(self, cin, compression=0.5):
            super().__init__()
            self.bn = nn.BatchNorm2d(cin)
            self.conv = nn.Conv2d(cin, int(cin * compression), 1, bias=False)

        def forward(self, x):
            return F.avg_pool2d(self.conv(F.relu(x)), 2)      # the bn forgotten

    _expect(diagnose("densenet.Transition", Transition), "outputs", hint="unused-layer",
            says=("never uses: bn",))


def test_a_build_error_is_not_followed_by_no_known_pattern():
    class Typo(LearnerBasicBlock):
        def forward(self, x):
            return F.relu(self.branch(x) + self.shortcut(x) + self.bias)   # no such attribute

    _expect(diagnose("resnet.BasicBlock", Typo), "build", says=("AttributeError",),
            never=("No known pattern",))


def test_round_filters_without_as_block_says_to_wrap_it():
    _expect(diagnose("efficientnet.round_filters", my_round_filters), "build",
            says=("as_block(my_round_filters)",), never=("nn.Sequential",))


def test_a_built_block_passed_to_a_function_exercise_says_to_pass_the_function():
    with pytest.raises(TypeError, match="Pass your function itself") as err:
        check("vgg.stage", learner_stage()(3, ["conv3-64"]))
    assert "nn.Sequential" not in str(err.value)


@pytest.mark.parametrize("name,block,says", [
    ("senet.SqueezeExcitation", lambda c, r: LearnerSE(c, r, bug="in place"), "x * s"),
], ids=["SE"])
def test_the_in_place_message_fits_a_block_without_shortcut(name, block, says):
    _expect(diagnose(name, block), "build", hint="input-modified", says=(says,),
            never=("shortcut",))


def test_the_in_place_message_of_the_dense_layer_speaks_of_the_concatenation():
    class InPlace(LearnerDenseLayer):
        def forward(self, x):
            x = F.relu(self.norm1(x))
            return self.conv2(F.relu(self.norm2(self.conv1(x))))

    class InPlaceOnX(LearnerDenseLayer):
        def forward(self, x):
            out = self.conv2(F.relu(self.norm2(self.conv1(F.relu_(self.norm1(x))))))
            x.relu_()                                       # "x is not needed any more"
            return out

    assert diagnose("densenet.DenseLayer", InPlace).status == "passed"
    _expect(diagnose("densenet.DenseLayer", InPlaceOnX), "build", hint="input-modified",
            says=("concatenates",), never=("shortcut",))


@pytest.mark.parametrize("notebook,words", [
    ("04_senet", "`nn.Linear` on the `(N, C)` means is fine too"),
    ("05_mobilenetv2", "(no expansion layer when `expand_ratio` is 1)"),
    ("03_densenet", "torchvision's interface"),
    ("06_efficientnet", "PyTorch's default batch norm"),
    ("02_resnet", "Ours appends the zero channels after"),
    ("01_vgg", "whose convs keep their bias"),
])
def test_the_exercise_statements_say_what_the_checker_expects(notebook, words):
    """The statement is the learner's only specification: what the checker requires or accepts
    (issue 22) is said there, not only in the collapsed hint."""
    from pathlib import Path
    text = (Path(__file__).resolve().parent.parent / "notebooks" / f"{notebook}.py").read_text()
    statement = text.split("### Write it yourself", 1)[1]
    statement = " ".join(line.removeprefix("#").strip() for line in statement.splitlines())
    assert words in statement


# ---------------------------------------------------------------------- issue 30: ConvNeXt, names
# Each block below is written as a learner would write it from notebook 08's statement, skeleton
# and hint (or, for the older exercises, from theirs), not by editing the reference.

class FacebookLayerNorm(nn.Module):
    """The official repository's LayerNorm (facebookresearch/ConvNeXt, models/convnext.py): its
    own weight and bias, F.layer_norm over the last dimension (channels-last)."""

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))
        self.eps, self.normalized_shape = eps, (dim,)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class FacebookBlock(nn.Module):
    """The official `Block`'s structure and names: gamma of shape (dim,), applied channels-last,
    before the permute back."""

    def __init__(self, dim, drop_path=0.0, layer_scale_init_value=1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = FacebookLayerNorm(dim, eps=1e-6)
        self.pwconv1, self.act = nn.Linear(dim, 4 * dim), nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones((dim)))
        self.drop_path = nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.pwconv2(self.act(self.pwconv1(self.norm(self.dwconv(x).permute(0, 2, 3, 1)))))
        x = (self.gamma * x).permute(0, 3, 1, 2)
        return shortcut + self.drop_path(x)


class LearnerCNBlock(nn.Module):
    """Right, from the statement: channels-last with nn.LayerNorm and nn.Linear, layer scale of
    the shape the skeleton allows (applied before or after the permute back). Options: one
    mistake each."""

    def __init__(self, dim, gamma=(-1, 1, 1), kernel=7, padding=None, groups=None, expansion=4,
                 dw_bias=True, scale=1e-6, eps=1e-6, act=None, extra=None):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, kernel, padding=kernel // 2 if padding is None else padding,
                            groups=dim if groups is None else groups, bias=dw_bias)
        self.ln = nn.LayerNorm(dim, eps=eps)
        self.up, self.act, self.down = (nn.Linear(dim, expansion * dim), act or nn.GELU(),
                                        nn.Linear(expansion * dim, dim))
        shape = tuple(dim if s == -1 else s for s in gamma)
        self.gamma = None if scale is None else nn.Parameter(torch.full(shape, scale))
        self.extra = extra or nn.Identity()                  # dropout, stochastic depth

    def forward(self, x):
        out = self.down(self.act(self.up(self.ln(self.dw(x).permute(0, 2, 3, 1)))))
        if self.gamma is not None and self.gamma.dim() == 1:
            out = self.gamma * out                   # channels-last, like the official code
        out = out.permute(0, 3, 1, 2)
        if self.gamma is not None and self.gamma.dim() > 1:
            out = self.gamma * out
        return x + self.extra(out)


class ChannelsFirstCNBlock(nn.Module):
    """Right, the hint's other reading: 1x1 convolutions and a channels-first LayerNorm written
    by hand (the mean and variance over dimension 1); `axes` selects a wrong one."""

    def __init__(self, dim, axes=(1,)):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.weight, self.bias = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))
        self.pw1, self.pw2 = nn.Conv2d(dim, 4 * dim, 1), nn.Conv2d(4 * dim, dim, 1)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim, 1, 1))
        self.axes = axes

    def forward(self, x):
        out = self.dw(x)
        mean = out.mean(self.axes, keepdim=True)
        var = (out - mean).pow(2).mean(self.axes, keepdim=True)
        out = (out - mean) / torch.sqrt(var + 1e-6)
        out = self.weight[:, None, None] * out + self.bias[:, None, None]
        return x + self.gamma * self.pw2(F.gelu(self.pw1(out)))


class ChannelsFirstWithNormModule(nn.Module):
    """ChannelsFirstCNBlock with its norm as a module of its own (the learner's fix after the
    checker refused the loose parameters)."""

    class Norm(nn.Module):
        def __init__(self, dim, axes):
            super().__init__()
            self.weight, self.bias = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))
            self.axes = axes

        def forward(self, x):
            mean = x.mean(self.axes, keepdim=True)
            var = (x - mean).pow(2).mean(self.axes, keepdim=True)
            x = (x - mean) / torch.sqrt(var + 1e-6)
            return self.weight[:, None, None] * x + self.bias[:, None, None]

    def __init__(self, dim, axes=(1,)):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = self.Norm(dim, axes)
        self.pw1, self.pw2 = nn.Conv2d(dim, 4 * dim, 1), nn.Conv2d(4 * dim, dim, 1)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim, 1, 1))

    def forward(self, x):
        return x + self.gamma * self.pw2(F.gelu(self.pw1(self.norm(self.dw(x)))))


class LearnerDownsample(nn.Module):
    """Right, from the statement and hint: nn.LayerNorm between two permutes, then the 2x2 conv."""

    def __init__(self, cin, cout, back=(0, 3, 1, 2), extra=None):
        super().__init__()
        self.norm, self.conv = nn.LayerNorm(cin, eps=1e-6), nn.Conv2d(cin, cout, 2, stride=2)
        self.back, self.extra = back, extra or nn.Identity()

    def forward(self, x):
        return self.extra(self.conv(self.norm(x.permute(0, 2, 3, 1)).permute(*self.back)))


# 1. Right blocks that failed.

def test_the_official_convnext_block_passes():
    report = diagnose("convnext.CNBlock", FacebookBlock)
    assert report.status == "passed" and report.accepted is None, report.text


@pytest.mark.parametrize("gamma", [(-1,), (-1, 1, 1), (1, -1, 1, 1)],
                         ids=["dim", "dim,1,1", "1,dim,1,1"])
def test_a_layer_scale_of_any_broadcastable_shape_is_the_same_parameter(gamma):
    report = diagnose("convnext.CNBlock", lambda dim: LearnerCNBlock(dim, gamma=gamma))
    assert report.status == "passed", report.text


def test_the_channels_first_reading_of_the_hint_passes():
    assert diagnose("convnext.CNBlock", ChannelsFirstWithNormModule).status == "passed"


def test_a_layer_norm_as_loose_parameters_is_refused_and_the_message_says_so():
    _expect(diagnose("convnext.CNBlock", ChannelsFirstCNBlock), "parameters", hint="regrouped",
            says=("A norm written as the block's own weight and bias",
                  "(the block itself): ChannelsFirstCNBlock (weight (16,), bias (16,), gamma"),
            never=("SE block",))


def test_gelus_tanh_form_passes_with_a_note():
    report = diagnose("convnext.CNBlock",
                      lambda dim: LearnerCNBlock(dim, act=nn.GELU(approximate="tanh")))
    assert report.status == "passed" and report.accepted == "GELU's tanh approximation"
    assert "exact nn.GELU()" in report.text and "BERT and GPT-2" in report.text


# 2. Wrong leads: the right cause first, never an SE block the learner did not write.

@pytest.mark.parametrize("bug,known,hint,says", [
    (dict(groups=1), None, "groups", "has groups=1, the reference's block.0 groups=16"),
    (dict(kernel=3), None, "kernel-size", "yours 3x3, the reference's 7x7"),
    (dict(expansion=2), None, "layer-width", "4 x dim wide"),
    (dict(dw_bias=False), None, "conv-bias", "have no bias where the reference's have one"),
    (dict(scale=None), "no layer scale", "missing-layer",
     "Layer Scale [74] of initial value 1e-6"),
], ids=["groups", "3x3", "expansion 2", "depthwise bias", "layer scale"])
def test_a_cnblock_with_a_wrong_layer_gets_its_own_hint_not_the_se_one(bug, known, hint, says):
    report = diagnose("convnext.CNBlock", lambda dim: LearnerCNBlock(dim, **bug))
    _expect(report, "parameters", known=known, hint=hint, says=(says,), never=("SE block",))
    assert report.hints[0] == hint, report.hints                   # the right cause first


def test_own_named_mbconv_and_se_bottleneck_get_their_hints_through():
    class BiasedDepthwise(LearnerMBConv):
        def __init__(self, cin, cout, k, stride, t):
            super().__init__(cin, cout, k, stride, t)
            self.dw[0] = nn.Conv2d(cin * t, cin * t, k, stride, k // 2, groups=cin * t)

    class BiasedSpatial(LearnerSEBottleneck):
        def __init__(self, cin, planes, stride=1):
            super().__init__(cin, planes, stride)
            self.spatial[0] = nn.Conv2d(planes, planes, 3, stride, 1)

    for name, block in [("efficientnet.MBConv", BiasedDepthwise),
                        ("senet.SEBottleneck", BiasedSpatial)]:
        _expect(diagnose(name, block), "parameters", hint="conv-bias",
                says=("have a bias where the reference's have none",), never=("SE block sits",))


def test_se_bottleneck_with_reduction_4_is_named_as_such_not_the_expansion_factor():
    class Reduction4(LearnerSEBottleneck):
        def __init__(self, cin, planes, stride=1):
            super().__init__(cin, planes, stride)
            self.se = LearnerSE(4 * planes, planes)           # r = 4: 256 -> 64 -> 256

    _expect(diagnose("senet.SEBottleneck", Reduction4), "parameters", hint="se-reduction",
            says=("squeezes 256 channels to 64 (a reduction ratio r = 4)", "to 16 (r = 16)"),
            never=("expansion factor 4",))


class SigmoidGELU(nn.Module):
    """GELU as x * sigmoid(1.702 x), Hendrycks & Gimpel's second approximation."""

    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


def test_near_misses_of_the_cnblock_name_its_own_causes_not_the_hard_sigmoid():
    _expect(diagnose("convnext.CNBlock", lambda dim: LearnerCNBlock(dim, eps=1e-5)), "outputs",
            known="LayerNorm with PyTorch's default eps", says=("ConvNeXt's is 1e-6",),
            never=("hard sigmoid",))
    report = diagnose("convnext.CNBlock", lambda dim: LearnerCNBlock(dim, act=SigmoidGELU()))
    _expect(report, "outputs", hint="small-difference-no-bn",
            says=("GELU's form", "the norm's eps"), never=("hard sigmoid",))
    assert report.hints[0] == "small-difference-no-bn" and report.known_bugs == []


def test_a_layer_norm_over_the_wrong_axes_is_named():
    report = diagnose("convnext.CNBlock",
                      lambda dim: ChannelsFirstWithNormModule(dim, axes=(2, 3)))
    _expect(report, "outputs", known="LayerNorm over the height and width",
            never=("hard sigmoid",))


def test_a_7x7_conv_with_padding_2_is_named_as_padding_not_the_shortcut():
    report = diagnose("convnext.CNBlock", lambda dim: LearnerCNBlock(dim, padding=2))
    _expect(report, "build", hint="padding-mismatch", says=("padding K // 2 (3 for 7x7",),
            never=("shortcut",))
    assert report.hints == ["padding-mismatch"]


def test_downsample_with_height_and_width_swapped_is_named():
    report = diagnose("convnext.Downsample",
                      lambda a, b: LearnerDownsample(a, b, back=(0, 3, 2, 1)))
    _expect(report, "shape", known="map transposed by the permute back", hint="transposed",
            never=("padding",))
    assert report.hints[0] == "transposed"


def test_an_se_gate_cast_to_float32_is_a_dtype_bug_not_a_device_one():
    class Float32Gate(LearnerSE):
        def forward(self, x):
            s = torch.sigmoid(self.fc2(self.act(self.fc1(x.mean((2, 3))))))
            return x * s.float()[:, :, None, None]          # "the gate in full precision"

    _expect(diagnose("senet.SqueezeExcitation", Float32Gate), "device", hint="dtype-cast",
            says=("the output's dtype is not the input's (float32 on cpu in bfloat16)",
                  "`.to(x.dtype)`"), never=("works only on the CPU",))


def test_a_names_failure_is_not_followed_by_no_known_pattern():
    _expect(diagnose("vgg.features", nested_vgg_features), "names", says=("strict=True",),
            never=("No known pattern",))


# 3. Wrong blocks that passed.

def test_a_layer_scale_that_starts_at_1_is_caught_at_its_start():
    _expect(diagnose("convnext.CNBlock", lambda dim: LearnerCNBlock(dim, scale=1.0)),
            "initial values", hint="initial-value",
            says=("your gamma starts at 1, the reference's layer_scale at 1e-06",
                  "Layer Scale [74] of initial value 1e-6 is applied"))
    right = diagnose("convnext.CNBlock", lambda dim: LearnerCNBlock(dim, scale=1e-6))
    assert right.status == "passed", right.text


@pytest.mark.parametrize("name,block,says", [
    ("convnext.CNBlock", lambda dim: LearnerCNBlock(dim, extra=nn.Dropout(0.1)),
     "your extra (Dropout, p=0.1)"),
    ("convnext.CNBlock",
     lambda dim: LearnerCNBlock(dim, extra=torchvision.ops.StochasticDepth(0.1, "row")),
     "your extra (StochasticDepth, p=0.1)"),
    ("convnext.Downsample", lambda a, b: LearnerDownsample(a, b, extra=nn.Dropout2d(0.2)),
     "your extra (Dropout2d, p=0.2)"),
    ("senet.SqueezeExcitation", lambda c, r: LearnerSE(c, r, act=lambda: nn.Sequential(
        nn.ReLU(), nn.Dropout(0.5))), "your act.1 (Dropout, p=0.5)"),
], ids=["CNBlock dropout", "CNBlock stochastic depth", "Downsample", "SqueezeExcitation"])
def test_dropout_or_stochastic_depth_on_in_train_mode_is_caught_and_named(name, block, says):
    _expect(diagnose(name, block), "train", hint="random-in-train", says=(says,))


def test_functional_dropout_in_train_mode_is_caught_without_a_module_to_name():
    class FunctionalDropout(LearnerCNBlock):
        def forward(self, x):
            out = super().forward(x) - x
            return x + F.dropout(out, 0.1, training=self.training)

    _expect(diagnose("convnext.CNBlock", FunctionalDropout), "train", hint="random-in-train",
            says=("F.dropout(x, p, training=self.training)",))
