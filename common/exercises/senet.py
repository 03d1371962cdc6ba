"""Exercises of notebook 04 (SE-Net, Hu et al., arXiv:1709.01507): the squeeze-and-excitation
block, and the v1.5 bottleneck with an SE block on its residual branch.

The references are the course's saved blocks (``common.models.senet``, built on
``common.models.resnet``); the known bugs rely only on their module names (``fc1``, ``fc2``,
``activation``, ``gate``; ``conv1`` ... ``bn3``, ``relu``, ``downsample``, ``se``)."""
import torch

from common.exercises import Case, Mutant, exercise, get_exercise
from common.exercises.resnet import _bottleneck_branch as _branch  # notebook 02's
from common.exercises.resnet import _shortcut  # notebook 02's
from common.models import resnet, senet

# --------------------------------------------------------------------------- the SE block

def _excite(se, z):
    return se.gate(se.fc2(se.activation(se.fc1(z))))


def _softmax_gate(se, x):
    z = x.mean((2, 3), keepdim=True)
    return x * torch.softmax(se.fc2(se.activation(se.fc1(z))), dim=1)


def _relu_gate(se, x):
    z = x.mean((2, 3), keepdim=True)
    return x * torch.relu(se.fc2(se.activation(se.fc1(z))))


def _max_squeeze(se, x):
    return x * _excite(se, x.amax((2, 3), keepdim=True))


def _no_relu(se, x):
    return x * se.gate(se.fc2(se.fc1(x.mean((2, 3), keepdim=True))))


def _scale_over_width(se, x):
    s = _excite(se, x.mean((2, 3), keepdim=True))
    return x * s.view(x.shape[0], 1, 1, -1)


def _squeeze_over_channels(se, x):
    return x * _excite(se, x.mean(1, keepdim=True))


def _add_instead_of_scale(se, x):
    return x + _excite(se, x.mean((2, 3), keepdim=True))


def _hard_sigmoid_gate(se, x):
    z = x.mean((2, 3), keepdim=True)
    return x * torch.nn.functional.hardsigmoid(se.fc2(se.activation(se.fc1(z))))


def _gate_without_grad(se, x):
    with torch.no_grad():                          # "the gate is only a weighting"
        s = _excite(se, x.mean((2, 3), keepdim=True))
    return x * s


def _detached_squeeze(se, x):
    return x * _excite(se, x.detach().mean((2, 3), keepdim=True))


def _weights_only(se, x):
    return _excite(se, x.mean((2, 3), keepdim=True)).expand_as(x)


@exercise(
    "senet.SqueezeExcitation",
    paper="Hu et al. (arXiv:1709.01507), Fig. 1, Eqns. 2-4; biases in the FCs as in the official "
          "models and timm",
    cases=[
        Case("64 channels reduced to 4, on a 6x5 map", (64, 4), (2, 64, 6, 5)),
        Case("16 channels reduced to 4, on a 5x16 map (as wide as it has channels)", (16, 4),
             (2, 16, 5, 16), tags=("square",)),
        Case("8 channels reduced to 1 (a small CIFAR stage)", (8, 1), (3, 8, 4, 4)),
    ],
    hints={"square": "Right except where the map is as wide as it has channels: your weights "
                     "are broadcast over the width, not over the channels.",
           "input-modified": "An in-place operation changed the tensor your block was given "
                             "(`x *= s`, `x.mul_(s)`): the code that called the SE block may "
                             "still use x (in an SE-ResNet, the residual branch's output before "
                             "the scaling), and in training autograd fails where the previous "
                             "layer saved it for the backward pass. Return a new tensor: "
                             "`x * s`.",
           "input-gradient": "The gradient with respect to your block's input differs while "
                             "every parameter's agrees: the gradient does not flow through your "
                             "squeeze (computed from a detached x, or under torch.no_grad())."},
    mutants=[
        Mutant("softmax instead of sigmoid",
               "Your gate is a softmax over the channels: the weights then compete and sum to "
               "one, so each channel is scaled by about 1/C. The excitation must be "
               "\"non-mutually-exclusive\", \"rather than enforcing a one-hot activation\": a "
               "sigmoid, one independent weight in (0, 1) per channel (sec. 3.2, Eqn. 3).",
               forward=_softmax_gate),
        Mutant("ReLU as the gate",
               "Your excitation ends in a ReLU, not a sigmoid: its weights are unbounded and "
               "often exactly zero. Table 12 tried it: worse than no SE block at all. Eqn. 3 "
               "ends in sigma, the sigmoid.",
               forward=_relu_gate),
        Mutant("a hard sigmoid as the gate",
               "Your gate is a hard sigmoid (F.hardsigmoid: relu6(x + 3) / 6, piecewise linear), "
               "MobileNetV3's cheap approximation. SE-Net's gate is the sigmoid, sigma in Eqn. 3: "
               "close, but not the same numbers.",
               forward=_hard_sigmoid_gate),
        Mutant("the gate computed without gradient",
               "Your excitation runs under torch.no_grad() (or on detached tensors): the outputs "
               "are right, but the gradient does not flow through your SE branch, so fc1 and fc2 "
               "never learn and the block stays at its random initial weighting. The gate is "
               "learned: W1 and W2 of Eqn. 3 are its parameters.",
               forward=_gate_without_grad),
        Mutant("the squeeze detached",
               "Your squeeze is computed from a detached input (`x.detach().mean(...)`): the "
               "outputs are right, but the gradient does not flow through your squeeze back to "
               "the input, only through the scaling; the layers before the SE block then learn "
               "as if the weighting did not depend on them.",
               forward=_detached_squeeze),
        Mutant("max pooling as the squeeze",
               "Your squeeze takes each channel's maximum; the paper's takes its mean, global "
               "average pooling (Eqn. 2). Max pooling is a valid variant (Table 11) but not this "
               "block.",
               forward=_max_squeeze),
        Mutant("no ReLU between the FCs",
               "The two FCs follow each other without the ReLU (delta in Eqn. 3) between them: "
               "then they are one linear map, and the bottleneck only limits it.",
               forward=_no_relu),
        Mutant("the weights broadcast over the width",
               "Your weights have the shape (N, 1, 1, C), so they line up with the width, not the "
               "channels: a shape error on most maps, and a silent wrong result when the map is "
               "as wide as it has channels. Shape them (N, C, 1, 1) so that s_c scales every "
               "pixel of channel c (Eqn. 4).",
               forward=_scale_over_width),
        Mutant("the squeeze over the channels",
               "You average over the channels (dimension 1) instead of the height and width: the "
               "squeeze must give one number per channel, z_c, the mean of channel c over H x W "
               "(Eqn. 2): x.mean((2, 3)).",
               forward=_squeeze_over_channels),
        Mutant("the weights added, not multiplied",
               "You add the excitation to the feature map; Eqn. 4 multiplies: each channel is "
               "scaled by its weight, x_c * s_c.",
               forward=_add_instead_of_scale),
        Mutant("the weights returned instead of the rescaled map",
               "Your block returns the excitation weights (broadcast to the map's shape), not "
               "the map scaled by them: the output is s_c * u_c (Eqn. 4), not s_c.",
               forward=_weights_only),
        Mutant("FCs without biases",
               "Your FCs have no biases. Eqn. 3 leaves them out (and so do the paper's "
               "ablations), but the official models and timm have them, and so does this "
               "exercise: nn.Linear and nn.Conv2d have bias=True by default.",
               build=lambda channels, reduced: senet.SqueezeExcitation(channels, reduced,
                                                                       bias=False)),
    ],
)
def squeeze_excitation(channels, reduced_channels):
    """The SE block: global average pooling, FC to reduced_channels, ReLU, FC back, sigmoid,
    channel-wise scale."""
    return senet.SqueezeExcitation(channels, reduced_channels)


# --------------------------------------------------------------------------- the SE bottleneck

def _se_after_addition(b, x):
    return b.se(b.relu(_branch(b, x) + _shortcut(b, x)))


def _se_after_addition_before_relu(b, x):
    return b.relu(b.se(_branch(b, x) + _shortcut(b, x)))


def _se_on_shortcut(b, x):
    return b.relu(_branch(b, x) + b.se(_shortcut(b, x)))


def _se_before_last_bn(b, x):
    out = b.relu(b.bn1(b.conv1(x)))
    out = b.relu(b.bn2(b.conv2(out)))
    return b.relu(b.bn3(b.se(b.conv3(out))) + _shortcut(b, x))


def _relu_before_se(b, x):
    return b.relu(b.se(b.relu(_branch(b, x))) + _shortcut(b, x))


def _no_se(b, x):
    return b.relu(_branch(b, x) + _shortcut(b, x))


def _reduced_from_planes(inplanes, planes, stride=1):
    block = se_bottleneck(inplanes, planes, stride)
    block.se = senet.SqueezeExcitation(planes * 4, max(1, planes // 16))
    return block


def _se_after_3x3(inplanes, planes, stride=1):
    """The SE block after the 3x3 conv (Table 15's SE_3x3): built for `planes` channels."""
    block = se_bottleneck(inplanes, planes, stride)
    block.se = senet.SqueezeExcitation(planes, senet.reduced_width(planes, 16))

    def forward(b, x):
        out = b.relu(b.bn1(b.conv1(x)))
        out = b.se(b.relu(b.bn2(b.conv2(out))))
        return b.relu(b.bn3(b.conv3(out)) + _shortcut(b, x))
    block.forward = forward.__get__(block)
    return block


SE_PLACEMENT = ("Squeeze and excitation \"both act before summation with the identity branch\" "
                "(sec. 3.3, Fig. 3): the SE block rescales the residual branch after its last "
                "batch norm, then the shortcut is added, then the ReLU.")


@exercise(
    "senet.SEBottleneck",
    paper="Hu et al. (arXiv:1709.01507), Fig. 3 and Table 1 (SE-ResNet-50); the v1.5 bottleneck "
          "with a projection shortcut of notebook 02 (He et al. 2015; torchvision)",
    cases=get_exercise("resnet.Bottleneck").cases,     # notebook 02's: SE changes no shape
    mutants=[
        Mutant("SE after the addition",
               "Your SE block rescales the sum (after the addition and its ReLU), shortcut "
               "included: the ablation's SE-POST (Fig. 5, Table 14), which trains worse. "
               + SE_PLACEMENT,
               forward=_se_after_addition),
        Mutant("SE after the addition, before the ReLU",
               "Your SE block rescales the sum of the branch and the shortcut. " + SE_PLACEMENT,
               forward=_se_after_addition_before_relu),
        Mutant("SE on the shortcut",
               "Your SE block rescales the shortcut instead of the residual branch: the "
               "ablation's SE-Identity (Fig. 5, Table 14), a different network whose weights do "
               "not transfer. " + SE_PLACEMENT,
               forward=_se_on_shortcut),
        Mutant("SE before the last batch norm",
               "Your SE block acts between the last 1x1 conv and its batch norm, so the batch "
               "norm undoes part of the scaling. " + SE_PLACEMENT,
               forward=_se_before_last_bn),
        Mutant("a ReLU before the SE block",
               "Your residual branch passes a ReLU before the SE block and the addition, so it "
               "can never be negative. As in notebook 02, the branch ends with the last batch "
               "norm; the ReLU comes after the addition.",
               forward=_relu_before_se),
        Mutant("the SE block is never applied",
               "Your block has an SE block but forward never uses it: this is the plain "
               "bottleneck. " + SE_PLACEMENT,
               forward=_no_se),
        Mutant("the reduction from the bottleneck width",
               "Your SE block reduces planes / 16 channels, but it recalibrates the block's "
               "output, planes * 4 channels, and reduces those: planes * 4 / 16 (Table 1: "
               "fc, [16, 256] in conv2_x, where planes is 64).",
               build=_reduced_from_planes),
        Mutant("the SE block after the 3x3 conv",
               "Your SE block sits inside the branch, after the 3x3 conv, on planes channels: "
               "Table 15's SE_3x3 variant. The paper's SE-ResNet puts it after the last batch "
               "norm, on planes * 4 channels (Table 1).",
               build=_se_after_3x3),
    ],
)
def se_bottleneck(inplanes, planes, stride=1):
    """The v1.5 bottleneck with an SE block (r = 16) after its last batch norm, and a projection
    shortcut (1x1 conv + batch norm) where the shape changes."""
    out_channels = planes * resnet.Bottleneck.expansion
    return senet.SEBottleneck(inplanes, planes, stride,
                              resnet.make_shortcut("B", inplanes, out_channels, stride))
