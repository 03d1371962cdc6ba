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
which must be an ``nn.Linear``. The parts are the model's top-level children that hold
parameters, with torchvision's ``features`` opened one level (its children are the stages).
Frozen batch-norm layers stay in eval mode even under ``model.train()``: their running
statistics are part of what was learnt.

Per-part learning rates go through the recipe: ``Recipe.lr_scales`` multiplies the learning
rate of each named part (``common.train.optim`` makes the optimizer's parameter groups, ``fit``
sets each group's lr to ``lr x lr_factor x lr_scale`` every step). Frozen parameters never
enter the optimizer.

The official weights (``load_official_weights``, ``pretrained_weights``, ``pretrained_rename``)
live in ``common.weights`` and the data helpers (``class_subset``, ``with_statistics``,
``check_statistics``) in ``common.data``; both are re-exported here, where notebook 09 imports
them.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from common.data import check_statistics, class_subset, with_statistics
from common.models.registry import list_models, model_card
from common.weights import load_official_weights, pretrained_rename, pretrained_weights

__all__ = ["head_name", "parts", "replace_head", "freeze", "unfreeze", "trainable_parts",
           "lr_scales_by_depth", "frozen_state_changes", "resize_inputs",
           # re-exported from common.weights and common.data
           "load_official_weights", "pretrained_weights", "pretrained_rename", "class_subset",
           "with_statistics", "check_statistics"]


def _holds_parameters(module: nn.Module, recurse: bool = True) -> bool:
    return next(module.parameters(recurse=recurse), None) is not None


def head_name(model: nn.Module) -> str:
    """The name of ``model``'s classifier, an ``nn.Linear``: the one its model card declares (a
    model built by ``common.get_model``), else, for a model from elsewhere, the last module (in
    ``named_modules`` order, the order torchvision's models build their layers in) that holds
    parameters of its own. Any other last layer (a 1x1 convolution as SqueezeNet's head, a norm
    layer) raises a ValueError: this module does not know how to re-head that model."""
    name = getattr(model, "name", None)
    if name in list_models() and model_card(name).head is not None:
        head = model_card(name).head
        if not isinstance(dict(model.named_modules()).get(head), nn.Linear):
            raise ValueError(f"The model card of {name!r} declares the head {head!r}, but this "
                             f"{type(model).__name__} has no nn.Linear there: was it changed "
                             "after get_model built it? Replace its classifier by hand.")
        return head
    last = None
    for name, module in model.named_modules():
        if _holds_parameters(module, recurse=False):
            last = (name, module)
    if last is None:
        raise ValueError(f"{type(model).__name__} has no parameters: there is no head to find.")
    name, module = last
    if not isinstance(module, nn.Linear) or not name:
        raise ValueError(
            f"Cannot re-head {type(model).__name__}: its last layer with parameters is "
            f"{type(module).__name__} {name!r}, not an nn.Linear classifier. replace_head knows "
            "models whose last layer is a Linear (the course's VGG, ResNet, DenseNet, SE-Net, "
            "MobileNetV2, EfficientNet, ConvNeXt); replace that layer by hand for this one.")
    return name


def parts(model: nn.Module) -> list[str]:
    """The model's parts that hold parameters, input to output: its top-level children
    (``conv1``, ``bn1``, ``layer1``... ``fc``), with torchvision's ``features`` opened one level
    (``features.0``, ``features.1``... ``classifier``), whose children are the stages. The names
    ``freeze`` and ``Recipe.lr_scales`` take (any deeper name of ``model.named_modules()`` works
    too, e.g. ``layer4.2``)."""
    out = []
    for name, child in model.named_children():
        if name == "features" and next(child.children(), None) is not None:
            out += [f"features.{n}" for n, c in child.named_children() if _holds_parameters(c)]
        elif _holds_parameters(child):
            out.append(name)
    return out


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """``model`` with a new classifier for ``num_classes`` classes, in place (and returned): the
    head (``head_name``) is replaced by an ``nn.Linear`` of the same input width, read from the
    old head, with a bias if the old one had one, on its device and dtype. The new layer has
    PyTorch's default initialisation (what we chose: PyTorch's "Transfer Learning for
    Computer Vision Tutorial", pytorch.org/tutorials/beginner/transfer_learning_tutorial.html,
    does the same: ``model_ft.fc = nn.Linear(num_ftrs, 2)``); seed before calling it for the
    same head every run. A model attribute ``num_classes``, where there is one, is updated too."""
    if not (isinstance(num_classes, int) and not isinstance(num_classes, bool)
            and num_classes >= 1):
        raise ValueError(f"num_classes must be a whole number of at least 1, got {num_classes!r}.")
    name = head_name(model)
    old = model.get_submodule(name)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None,
                    device=old.weight.device, dtype=old.weight.dtype)
    setattr(parent, child, new)
    if isinstance(getattr(model, "num_classes", None), int):
        model.num_classes = num_classes
    return model


def _stay_in_eval(module: nn.Module, args) -> None:
    """Forward pre-hook of a frozen batch-norm layer: eval mode, whatever ``train()`` said."""
    module.training = False


def _names(trainable) -> list[str]:
    return [trainable] if isinstance(trainable, str) else list(trainable)


def _within(name: str, part: str) -> bool:
    return name == part or name.startswith(part + ".")


def unfreeze(model: nn.Module) -> nn.Module:
    """Undo ``freeze``: every parameter trainable, no batch-norm layer held in eval mode."""
    for module in model.modules():
        for key, hook in list(module._forward_pre_hooks.items()):
            if hook is _stay_in_eval:
                del module._forward_pre_hooks[key]
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def freeze(model: nn.Module, trainable: str | Iterable[str] | None = None) -> list[str]:
    """Freeze ``model`` except the parts named in ``trainable`` (default: the head,
    ``head_name(model)``: a linear probe); returns the names of the parameters left trainable.

    Frozen parameters get ``requires_grad=False``; frozen batch-norm layers are put in eval mode
    and kept there by a forward pre-hook, even after ``model.train()`` (``fit`` calls it every
    epoch): in train mode a batch norm normalises with the batch's statistics and moves its
    running statistics towards them, which would change the frozen part. Calling ``freeze``
    again replaces the earlier freeze (``unfreeze`` undoes it). A name that is not a module of
    ``model`` raises a ValueError listing the parts that exist. The model keeps the hooks when
    copied (``copy.deepcopy``); ``fit(..., sync_bn=True)`` replaces batch-norm layers by new ones
    without them, so freeze after converting there."""
    names = [head_name(model)] if trainable is None else _names(trainable)
    modules = dict(model.named_modules())
    unknown = [n for n in names if n not in modules or n == ""]
    if unknown:
        raise ValueError(
            f"{type(model).__name__} has no part named {', '.join(map(repr, unknown))}. Its "
            f"parts: {', '.join(parts(model))} (or any name of model.named_modules(), e.g. "
            f"{next((n for n in modules if n.count('.') == 2), head_name(model))!r}).")
    unfreeze(model)
    for name, p in model.named_parameters():
        p.requires_grad_(any(_within(name, part) for part in names))
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm) and not any(_within(name, part) for part in names):
            module.eval()
            module.register_forward_pre_hook(_stay_in_eval)
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
    it: CIFAR's 32-pixel images upsampled to the 224 pixels ImageNet weights were trained at,
    without changing the model's modules or names (a forward pre-hook). ``size=None`` removes
    it. Costs the model's multiply-adds at ``size``, (size / 32)**2 times those at 32 pixels."""
    for key, hook in list(model._forward_pre_hooks.items()):
        if hasattr(hook, "size"):
            del model._forward_pre_hooks[key]
    if size is not None:
        model.register_forward_pre_hook(_resize_hook(size))
    return model


def trainable_parts(model: nn.Module) -> dict[str, str]:
    """Each part of ``parts(model)``: "trainable", "frozen" or "partly frozen"."""
    out = {}
    for part in parts(model):
        flags = {p.requires_grad for p in model.get_submodule(part).parameters()}
        out[part] = ("trainable" if flags == {True} else "frozen" if flags == {False}
                     else "partly frozen")
    return out


def lr_scales_by_depth(model: nn.Module, factor: float,
                       names: Sequence[str] | None = None) -> tuple:
    """Discriminative learning rates: ``Recipe.lr_scales`` pairs giving the last of ``names``
    (default ``parts(model)``, input to output) the recipe's lr, the one before it ``factor``
    times that, the one before ``factor**2`` times, and so on: early, general features change
    least. ``factor`` is in (0, 1]."""
    if not 0 < factor <= 1:
        raise ValueError(f"factor must be in (0, 1] (e.g. 0.5: each earlier part learns half as "
                         f"fast), got {factor!r}.")
    names = parts(model) if names is None else list(names)
    return tuple((n, factor ** (len(names) - 1 - i)) for i, n in enumerate(names))
