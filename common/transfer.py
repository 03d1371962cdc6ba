"""Transfer learning with the course's own models (notebook 09): a new head, frozen parts and
learning rates per part.

    model = common.get_model("resnet50")
    load_official_weights(model)                     # its card's weights, strict, into OUR model
    replace_head(model, num_classes=10)              # a new fc: 2048 -> 10
    freeze(model)                                    # linear probe: only the new head trains
    freeze(model, trainable=("layer4", "fc"))        # or: the last stage too
    recipe = Recipe(..., lr_scales=lr_scales_by_depth(model, 0.5))   # discriminative lrs

The head is the one the model's card declares (``@register_model(..., head="fc")``: VGG's
``classifier.6``, ResNet's and SE-ResNet's ``fc``, DenseNet's ``classifier``, MobileNetV2's and
EfficientNet's ``classifier.1``, ConvNeXt's ``classifier.2``); for a model from elsewhere
(torchvision's, timm's) it is found from the structure: the last module that holds parameters,
which must be an ``nn.Linear``. ``replace_head(model, 0)`` removes it (timm's ``num_classes=0``:
the model returns its features); ``get_classifier`` and ``reset_classifier`` are timm's names.

The parts (``parts``) are what ``freeze`` and ``Recipe.lr_scales`` name: the model's own
top-level parameters (ViT's class token), then its top-level children that hold parameters,
with a ``features`` container opened one level. They are not always the paper's stages
(MobileNetV2's ``features`` holds its blocks one by one, VGG's its single layers): ``stages``
groups them as the model's card declares, and ``lr_scales_by_depth`` scales by stage.

``freeze(model, trainable=...)`` names what TRAINS (timm's ``freeze(model, submodules)`` names
what it freezes: here the argument is keyword-only, so it is always written out). Everything
outside the trainable parts runs as in eval mode even under ``model.train()``: batch norms keep
their running statistics (part of what was learnt), dropout and stochastic depth are off, so the
trainable parts see the features the frozen network computes.

Per-part learning rates go through the recipe: ``Recipe.lr_scales`` multiplies the learning
rate of each named part. ``common.train.optim`` makes the optimizer's parameter groups, each
with its own ``lr`` (the recipe's lr x the part's scale), and ``fit``'s schedule multiplies each
group's own rate every step, so ``param_groups[i]["lr"]`` is the rate that group trains at.
Frozen parameters never enter the optimizer.

The official weights (``load_official_weights``, ``pretrained_weights``, ``pretrained_rename``)
live in ``common.weights`` and the data helpers (``class_subset``, ``with_statistics``,
``check_statistics``) in ``common.data``; both are re-exported here, where notebook 09 imports
them.
"""
from __future__ import annotations

import numbers
from typing import Iterable, Sequence

import torch
from torch import nn

from common.data import check_statistics, class_subset, with_statistics
from common.models.registry import list_models, model_card
from common.weights import load_official_weights, pretrained_rename, pretrained_weights

__all__ = ["head_name", "parts", "stages", "replace_head", "get_classifier", "reset_classifier",
           "NoHead", "freeze", "unfreeze", "trainable_parts", "lr_scales_by_depth",
           "frozen_state_changes", "resize_inputs", "check_part_names",
           # re-exported from common.weights and common.data
           "load_official_weights", "pretrained_weights", "pretrained_rename", "class_subset",
           "with_statistics", "check_statistics"]


class NoHead(nn.Identity):
    """The head of a model re-headed with ``num_classes=0`` (timm's ``num_classes=0``): it
    passes the features through, and keeps the width (and whether the old head had a bias), so
    that ``replace_head`` can give the model a classifier again."""

    def __init__(self, in_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.bias_was = in_features, in_features, bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features} (no head: the model returns its features)"


def _holds_parameters(module: nn.Module, recurse: bool = True) -> bool:
    return next(module.parameters(recurse=recurse), None) is not None


def _card_name(model: nn.Module) -> str | None:
    name = getattr(model, "name", None)
    return name if name in list_models() else None


def _last_layer(model: nn.Module):
    """(name, module) of the last module, in ``named_modules`` order, that holds parameters of
    its own or is a ``NoHead``; None for a model without either."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, NoHead) or _holds_parameters(module, recurse=False):
            last = (name, module)
    return last


def head_name(model: nn.Module) -> str:
    """The name of ``model``'s classifier, an ``nn.Linear`` (or a ``NoHead``): the one its model
    card declares (a model built by ``common.get_model``), else, for a model from elsewhere, the
    last module (in ``named_modules`` order, the order torchvision's models build their layers
    in) that holds parameters of its own. Any other last layer (a 1x1 convolution as
    SqueezeNet's head, a norm layer) raises a ValueError: this module does not know how to
    re-head that model."""
    name = _card_name(model)
    if name is not None and model_card(name).head is not None:
        head = model_card(name).head
        if not isinstance(dict(model.named_modules()).get(head), (nn.Linear, NoHead)):
            raise ValueError(f"The model card of {name!r} declares the head {head!r}, but this "
                             f"{type(model).__name__} has no nn.Linear there: was it changed "
                             "after get_model built it? Replace its classifier by hand.")
        return head
    last = _last_layer(model)
    if last is None:
        raise ValueError(f"{type(model).__name__} has no parameters: there is no head to find.")
    name, module = last
    if not name and isinstance(module, nn.Linear):
        raise ValueError(f"This model is itself an nn.Linear ({module.in_features} -> "
                         f"{module.out_features}), not a network with a classifier inside: "
                         f"make a new one, nn.Linear({module.in_features}, num_classes).")
    if not isinstance(module, (nn.Linear, NoHead)):
        raise ValueError(
            f"Cannot re-head {type(model).__name__}: its last layer with parameters is "
            f"{type(module).__name__} {name!r}, not an nn.Linear classifier. replace_head knows "
            "models whose last layer is a Linear (the course's VGG, ResNet, DenseNet, SE-Net, "
            "MobileNetV2, EfficientNet, ConvNeXt); replace that layer by hand for this one.")
    return name


def get_classifier(model: nn.Module) -> nn.Module:
    """The classifier module (timm's ``model.get_classifier()``): ``head_name``'s module."""
    return model.get_submodule(head_name(model))


def parts(model: nn.Module) -> list[str]:
    """The model's parts, input to output: its own top-level parameters (ViT's
    ``class_token``: they belong to no child, and enter at the input), then its top-level
    children that hold parameters (``conv1``, ``bn1``, ``layer1``... ``fc``), with a
    ``features`` container opened one level (``features.0``, ``features.1``... ``classifier``).
    What a part is depends on how the family is built: EfficientNet's ``features.1`` to
    ``features.7`` are its stages, but MobileNetV2's ``features`` holds its blocks one by one,
    VGG's its single layers, DenseNet's its dense blocks and transitions (``stages`` groups the
    parts into stages). The names ``freeze`` and ``Recipe.lr_scales`` take (any deeper name of
    ``model.named_modules()`` or ``named_parameters()`` works too, e.g. ``layer4.2``)."""
    out = [n for n, _ in model.named_parameters(recurse=False)]
    for name, child in model.named_children():
        if name == "features" and next(child.children(), None) is not None:
            out += [f"features.{n}" for n, c in child.named_children() if _holds_parameters(c)]
        elif _holds_parameters(child):
            out.append(name)
    return out


def stages(model: nn.Module) -> list[list[str]]:
    """``parts(model)`` grouped into the model's stages, input to output: the stem, each stage
    of the paper, the head (ResNet-50: ``[["conv1", "bn1"], ["layer1"], ... ["fc"]]``;
    MobileNetV2: the stem, the seven rows of its Table 2, the last 1x1 convolution, the
    classifier). The grouping is the model card's (``ModelCard.stages``, timm's analogue is
    ``group_matcher``); a model without one (from elsewhere) has each part as a stage."""
    names = parts(model)
    card = _card_name(model)
    rule = model_card(card).stages if card is not None else None
    if rule is None:
        return [[n] for n in names]
    groups = [list(g) for g in rule(model, names)]
    if [p for g in groups for p in g] != names:
        raise ValueError(f"The model card of {card!r} groups the parts into {groups}, which are "
                         f"not its parts {names} in order: fix its stages=, or give "
                         "lr_scales_by_depth(model, factor, names=[...]) the groups.")
    return groups


def _named_things(model: nn.Module) -> dict:
    """Every name a part may have: modules, and parameters (a top-level one is a part)."""
    return {**dict(model.named_parameters()), **dict(model.named_modules())}


def check_part_names(model: nn.Module, names, what: str = "freeze") -> None:
    """Every name in ``names`` must be a module or parameter of ``model`` that holds parameters:
    a ValueError says which is not, and lists the parts (``what`` starts the message)."""
    things = _named_things(model)
    unknown = [n for n in names if n not in things or n == ""]
    example = next((n for n, _ in model.named_modules() if n.count(".") == 2), "layer4.2")
    if unknown:
        raise ValueError(
            f"{what}: {type(model).__name__} has no part named "
            f"{', '.join(map(repr, unknown))}. Its parts: {', '.join(parts(model))} (or any name "
            f"of model.named_modules() or named_parameters(), e.g. {example!r}).")
    empty = [n for n in names if isinstance(things[n], nn.Module)
             and not _holds_parameters(things[n])]
    if empty:
        raise ValueError(
            f"{what}: {', '.join(map(repr, empty))} holds no parameters, so naming it changes "
            f"nothing that learns. Parts that hold parameters: {', '.join(parts(model))}.")


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """``model`` with a new classifier for ``num_classes`` classes, in place (and returned): the
    head (``head_name``) is replaced by an ``nn.Linear`` of the same input width, read from the
    old head, with a bias if the old one had one, on its device and dtype. The new layer has
    PyTorch's default initialisation (what we chose: PyTorch's "Transfer Learning for
    Computer Vision Tutorial", pytorch.org/tutorials/beginner/transfer_learning_tutorial.html,
    does the same: ``model_ft.fc = nn.Linear(num_ftrs, 2)``); seed before calling it for the
    same head every run. ``num_classes=0`` puts a ``NoHead`` there instead (timm's
    ``num_classes=0``): the model returns its features. Auxiliary heads as wide as the old head
    (a Linear under a module whose name starts with "aux": inception_v3's ``AuxLogits.fc``,
    GoogLeNet's ``aux1.fc2`` and ``aux2.fc2``) are replaced the same way. A model attribute
    ``num_classes``, where there is one, is updated too. Any whole number is accepted (a NumPy
    integer too, as ``get_model`` takes it)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or num_classes < 0:
        raise ValueError(f"num_classes is the number of classes of the new head, a whole number "
                         f"of at least 1 (or 0 for no head: the model returns its features, as "
                         f"timm's num_classes=0); got {num_classes!r}.")
    num_classes = int(num_classes)
    name = head_name(model)
    old = model.get_submodule(name)
    for head in [name] + _auxiliary_heads(model, name, old.out_features):
        _put_head(model, head, num_classes)
    if isinstance(getattr(model, "num_classes", None), int):
        model.num_classes = num_classes
    return model


def reset_classifier(model: nn.Module, num_classes: int) -> nn.Module:
    """timm's name for ``replace_head`` (``model.reset_classifier(num_classes)``)."""
    return replace_head(model, num_classes)


def _auxiliary_heads(model: nn.Module, head: str, width: int) -> list[str]:
    return [n for n, m in model.named_modules()
            if n != head and (isinstance(m, NoHead) or isinstance(m, nn.Linear)
                              and m.out_features == width)
            and any(piece.lower().startswith("aux") for piece in n.split(".")[:-1])]


def _put_head(model: nn.Module, name: str, num_classes: int) -> None:
    old = model.get_submodule(name)
    bias = old.bias is not None if isinstance(old, nn.Linear) else old.bias_was
    like = old.weight if isinstance(old, nn.Linear) else next(model.parameters(),
                                                             torch.empty(0))
    if num_classes == 0:
        new = NoHead(old.in_features, bias=bias)
    else:
        new = nn.Linear(old.in_features, num_classes, bias=bias, device=like.device,
                        dtype=like.dtype if like.is_floating_point() else None)
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


class _HoldInEval:
    """Forward pre-hook of a frozen model (``freeze``): the modules outside its trainable parts
    (``names``, each the top of such a subtree) run in eval mode, whatever ``train()`` said. It
    finds them by name at every forward pass, so it survives modules being replaced
    (``nn.SyncBatchNorm.convert_sync_batchnorm``, which ``fit(sync_bn=True)`` calls) and copies
    (``copy.deepcopy``)."""

    def __init__(self, names: Sequence[str]):
        self.names = tuple(names)

    def __call__(self, model: nn.Module, args) -> None:
        if model.training:
            for name in self.names:
                try:
                    model.get_submodule(name).train(False)
                except AttributeError:        # a module replaced since by one of other names
                    continue


def _within(name: str, part: str) -> bool:
    return name == part or name.startswith(part + ".")


def unfreeze(model: nn.Module) -> nn.Module:
    """Undo ``freeze``: every parameter trainable, no module held in eval mode (each module's
    mode set to the model's own, ``model.training``)."""
    for module in model.modules():
        for key, hook in list(module._forward_pre_hooks.items()):
            if isinstance(hook, _HoldInEval):
                del module._forward_pre_hooks[key]
    for p in model.parameters():
        p.requires_grad_(True)
    return model.train(model.training)


def _trainable_names(model: nn.Module, positional, trainable) -> list[str]:
    if positional:
        shown = positional[0] if len(positional) == 1 else positional
        raise TypeError(
            f"Write freeze(model, trainable={shown!r}): it trains only those parts and freezes "
            "the rest. The argument is keyword-only because it names what stays TRAINABLE, the "
            "opposite of timm's freeze(model, submodules), which names what to freeze.")
    if trainable is None:
        try:
            return [head_name(model)]
        except ValueError:
            last = _last_layer(model)
            what = (f"its last layer with parameters is {type(last[1]).__name__} {last[0]!r}"
                    if last else "it has no parameters")
            raise ValueError(
                f"freeze(model) trains the head, and {type(model).__name__} has no nn.Linear "
                f"head to find ({what}): name what trains, freeze(model, trainable=(...)), with "
                f"its parts: {', '.join(parts(model))}.") from None
    if isinstance(trainable, str):
        return [trainable]
    try:
        names = list(trainable)
    except TypeError:
        names = None
    if names is None or not all(isinstance(n, str) for n in names):
        raise TypeError(f"trainable is a part name or a list of part names (parts(model)), e.g. "
                        f"trainable=('layer4', 'fc'); got {trainable!r}.")
    return names


def freeze(model: nn.Module, *positional, trainable: str | Iterable[str] | None = None
           ) -> list[str]:
    """Freeze ``model`` except the parts named by ``trainable`` (keyword-only: it names what
    TRAINS, the opposite of timm's ``freeze(model, submodules)``; default: the head,
    ``head_name(model)``: a linear probe); returns the names of the parameters left trainable.
    The names are those of ``parts(model)``, or any deeper module or parameter name.

    Frozen parameters get ``requires_grad=False``, and everything outside the trainable parts
    runs as in eval mode, even after ``model.train()`` (``fit`` calls it every epoch): batch norms
    normalise with their running statistics and leave them as they are (in train mode they
    would move towards each batch's, changing the frozen part), dropout and stochastic depth are
    off, so the trainable parts learn on the features the frozen network computes in eval mode
    (a linear probe on fixed features; to keep a dropout before the head, name its container,
    e.g. ``trainable=("classifier",)``). A forward pre-hook on ``model`` does this at every
    forward pass, so a module's ``training`` flag reads False only from the next forward on; it
    survives ``copy.deepcopy`` and ``nn.SyncBatchNorm.convert_sync_batchnorm`` (which
    ``fit(..., sync_bn=True)`` calls). Calling ``freeze`` again replaces the earlier freeze
    (``unfreeze`` undoes it). A name that is not a part of ``model``, or one that holds no
    parameters (``avgpool``), raises a ValueError listing the parts."""
    names = _trainable_names(model, positional, trainable)
    check_part_names(model, names)
    unfreeze(model)
    for name, p in model.named_parameters():
        p.requires_grad_(any(_within(name, part) for part in names))
    held = [name for name, _ in model.named_modules() if name and not any(
        _within(name, part) or _within(part, name) for part in names)]
    tops = []                        # the top of each held subtree (named_modules: pre-order)
    for name in held:
        if not (tops and _within(name, tops[-1])):
            tops.append(name)
    hold = _HoldInEval(tops)
    model.register_forward_pre_hook(hold)
    if model.training:
        hold(model, ())
    return [n for n, p in model.named_parameters() if p.requires_grad]


def frozen_state_changes(model: nn.Module, before: dict) -> list[str]:
    """The entries of ``model.state_dict()`` in frozen parts (every parameter with
    ``requires_grad=False`` and every buffer of a module all of whose parameters are frozen:
    batch norm's running statistics) that differ from ``before`` (a copy of an earlier
    ``state_dict()``). Empty when the frozen parts are bit-identical."""
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        own = [prefix + k for k, _ in module.named_parameters(recurse=False)]
        if own and all(k in frozen for k in own):
            frozen |= {prefix + k for k, _ in module.named_buffers(recurse=False)}
    now = model.state_dict()
    return [k for k in now if k in frozen and not torch.equal(now[k], before[k])]


def _resize_hook(size: int):
    def hook(module, args):
        x, *rest = args
        if x.shape[-1] != size or x.shape[-2] != size:
            x = nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                          align_corners=False, antialias=False)
        return (x, *rest)
    hook.size = size
    return hook


def resize_inputs(model: nn.Module, size: int | None) -> nn.Module:
    """Resize every input batch to ``size`` x ``size`` pixels (bilinear) before ``model`` sees
    it, e.g. CIFAR's 32-pixel images upsampled to the 224 pixels torchvision's ImageNet weights
    are evaluated at (their ``transforms().crop_size``; the default ResNet-50 weights,
    ``IMAGENET1K_V2``, were trained on smaller, 176-pixel crops: notebook 09, section 4),
    without changing the model's modules or names (a forward pre-hook). ``size=None`` removes
    it. Costs the model's multiply-adds at ``size``: the convolutions' are (size / 32)**2 times
    those at 32 pixels (224 = 7 x 32: every feature map scales exactly), but the layers that see
    a pooled vector (the classifier, SE's excitation, VGG's layers after its adaptive pooling)
    cost the same at both sizes, so the whole is less: 47.8x for ResNet-50, 39.6x for
    EfficientNet-B0, 35.4x for VGG-16-BN at 224 (``common.count_macs``; notebook 09 counts
    ResNet-50's)."""
    for key, hook in list(model._forward_pre_hooks.items()):
        if hasattr(hook, "size"):
            del model._forward_pre_hooks[key]
    if size is not None:
        model.register_forward_pre_hook(_resize_hook(size))
    return model


def trainable_parts(model: nn.Module) -> dict[str, str]:
    """Each part of ``parts(model)``: "trainable", "frozen" or "partly frozen"."""
    things, out = _named_things(model), {}
    for part in parts(model):
        thing = things[part]
        params = [thing] if isinstance(thing, nn.Parameter) else list(thing.parameters())
        flags = {p.requires_grad for p in params}
        out[part] = ("trainable" if flags == {True} else "frozen" if flags == {False}
                     else "partly frozen")
    return out


def lr_scales_by_depth(model: nn.Module, factor: float,
                       names: Sequence[str | Sequence[str]] | None = None) -> tuple:
    """Discriminative learning rates (Howard & Ruder 2018, ULMFiT, sec. 3.2): ``Recipe.lr_scales``
    pairs giving the last stage of ``model`` the recipe's lr, the stage before it ``factor``
    times that, the one before ``factor**2`` times, and so on: early, general features change
    least. The stages are ``stages(model)`` (the model card's: ResNet's stem, its four stages,
    its head), every part of a stage at the stage's scale; or ``names``, input to output, each a
    part name or a tuple of names that share a scale. ``factor`` is in (0, 1]. (timm's
    ``layer_decay`` is the same formula over its ``group_matcher``'s groups.)"""
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not 0 < factor <= 1:
        raise ValueError(f"factor must be a number in (0, 1] (e.g. 0.5: each earlier stage "
                         f"learns half as fast), got {factor!r}.")
    if names is None:
        groups = stages(model)
    else:
        groups = [[n] if isinstance(n, str) else list(n) for n in names]
        check_part_names(model, [n for g in groups for n in g], "lr_scales_by_depth")
    return tuple((n, float(factor) ** (len(groups) - 1 - i)) for i, g in enumerate(groups)
                 for n in g)
