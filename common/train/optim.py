"""The recipe's optimizer: its parameter groups (weight decay exemptions, learning rates per
part, frozen parameters left out) and TensorFlow's RMSProp. ``fit`` builds it with
``make_optimizer(model, recipe)``; what each optimizer option means, and which codebase chose
what: ``Recipe`` and docs/recipe.md.

A part's learning rate (``Recipe.lr_scales``) is its group's own ``lr``: the recipe's lr times
the part's scale, written when the groups are made, and ``fit``'s schedule multiplies each
group's own rate every step. So ``param_groups[i]["lr"]`` is the rate the group trains at, a
plain torch optimizer given ``weight_decay_groups`` applies the scales, and torch's and timm's
schedulers (which start from each group's ``lr``) scale them once.
"""
from __future__ import annotations

import torch
from torch import nn

from common.reference import is_norm_layer
from common.train.recipe import Recipe
from common.transfer import parts


class RMSpropTF(torch.optim.Optimizer):
    """RMSProp as TensorFlow 1's ``tf.train.RMSPropOptimizer`` computes it: the optimizer the
    MobileNetV2 and EfficientNet papers trained with (their code is TensorFlow). Per parameter,
    with gradient ``g`` (plus ``weight_decay * w``, the gradient of TF's L2 loss term)::

        ms  = decay * ms + (1 - decay) * g**2          # ms starts at ONE
        mom = momentum * mom + lr * g / sqrt(ms + eps)
        w   = w - mom

    ``torch.optim.RMSprop`` (``Recipe(optimizer="rmsprop")``) differs in three ways:

    1. epsilon: torch divides by ``sqrt(ms) + eps``, TF by ``sqrt(ms + eps)``. The same number
       means different things: TF's eps=1e-3 caps the step where gradients are tiny at
       lr * g / 0.032, torch's at lr * g / 0.001.
    2. the mean square starts at 1 in TF, 0 in torch. Torch's first step is therefore
       lr * g / sqrt((1 - decay) g**2) = lr * 3.2 * sign(g) for decay 0.9, whatever the size of
       g; TF's first steps are about lr * g while ms warms up.
    3. momentum: TF's buffer accumulates lr-scaled updates, torch's accumulates unscaled ones
       and multiplies by the current lr. When the lr changes (every epoch with an exponential
       schedule) TF's buffer keeps the past steps at their old lr; torch rescales all of them.

    Equal to ``timm.optim.RMSpropTF`` with its defaults (``lr_in_momentum=True``), which is tested.
    Not implemented: TF's ``centered`` variant. EfficientNet's code leaves batch-norm
    parameters out of the weight decay; this optimizer decays every parameter it is given."""

    def __init__(self, params, lr: float, decay: float = 0.9, momentum: float = 0.9,
                 eps: float = 1e-3, weight_decay: float = 0.0):
        if not (lr > 0 and 0 <= decay < 1 and momentum >= 0 and eps > 0 and weight_decay >= 0):
            raise ValueError(f"RMSpropTF needs lr > 0, 0 <= decay < 1, momentum >= 0, eps > 0, "
                             f"weight_decay >= 0; got {lr}, {decay}, {momentum}, {eps}, "
                             f"{weight_decay}.")
        super().__init__(params, dict(lr=lr, decay=decay, momentum=momentum, eps=eps,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, decay, momentum = group["lr"], group["decay"], group["momentum"]
            eps, weight_decay = group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if weight_decay:
                    g = g.add(p, alpha=weight_decay)
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p, memory_format=torch.preserve_format)
                    state["momentum_buffer"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format)
                ms, buf = state["square_avg"], state["momentum_buffer"]
                ms.mul_(decay).addcmul_(g, g, value=1 - decay)
                update = g / ms.add(eps).sqrt_()
                if momentum > 0:
                    buf.mul_(momentum).add_(update, alpha=lr)
                    p.sub_(buf)
                else:
                    p.sub_(update, alpha=lr)
        return loss


def weight_decay_groups(model: nn.Module, recipe: Recipe) -> list[dict]:
    """``model``'s trainable parameters as optimizer parameter groups: those the recipe decays,
    and those its ``no_weight_decay`` exempts (``weight_decay=0``), each split by
    ``lr_scales``: a scaled group has its own ``"lr"``, ``recipe.lr`` times its parts' scale
    (what any torch optimizer applies; ``fit``'s schedule multiplies it); a group is left out
    when empty. Frozen parameters (``requires_grad=False``) are left out: in the optimizer,
    weight decay and momentum could still move them. One group of every parameter, as
    ``model.parameters()``, when nothing is exempt, scaled or frozen."""
    every = list(model.parameters())
    if not recipe.no_weight_decay and not recipe.lr_scales and all(p.requires_grad
                                                                   for p in every):
        return [{"params": every}]
    check_lr_scales(model, recipe.lr_scales)
    groups, seen = {}, set()
    for module_name, module in model.named_modules():
        depthwise = (isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1
                     and module.groups == module.in_channels)
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            kind = ("norm" if is_norm_layer(module) else "bias" if name == "bias"
                    else "depthwise" if depthwise and name == "weight"
                    else "layer_scale" if name in ("layer_scale", "gamma") else None)
            exempt = kind in recipe.no_weight_decay
            scale = lr_scale_of(f"{module_name}.{name}" if module_name else name,
                                recipe.lr_scales)
            group = groups.setdefault((exempt, scale), {"params": []})
            group["params"].append(p)
            if exempt:
                group["weight_decay"] = 0.0
            if recipe.lr_scales:
                group["lr"] = recipe.lr * scale
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameter (all are frozen): "
                         "common.transfer.freeze(model, trainable=...) names what trains.")
    # decayed before exempt, then by scale: the same order whatever the modules' order
    return [groups[k] for k in sorted(groups, key=lambda k: (k[0], -k[1]))]


def make_optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``params``: a model (its trainable parameters, with the
    recipe's ``no_weight_decay`` exemptions and ``lr_scales``: ``weight_decay_groups``, each
    scaled group with its own lr), parameters, or parameter groups. ``fit`` sets each group's
    lr every step: the rate the group was made with times the schedule's factor."""
    return _make_optimizer(params, recipe)


def _make_optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    if isinstance(params, nn.Module):
        params = weight_decay_groups(params, recipe)
    elif recipe.no_weight_decay or recipe.lr_scales:
        raise ValueError("recipe.no_weight_decay and recipe.lr_scales need the model (to find "
                         "norm layers, biases, depthwise convolutions and named parts): pass "
                         "make_optimizer(model, recipe).")
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                               nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, betas=recipe.adam_betas,
                                 eps=recipe.adam_eps, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=recipe.lr, alpha=recipe.rmsprop_decay,
                                   eps=recipe.rmsprop_eps, momentum=recipe.momentum,
                                   weight_decay=recipe.weight_decay)
    return RMSpropTF(params, lr=recipe.lr, decay=recipe.rmsprop_decay, momentum=recipe.momentum,
                     eps=recipe.rmsprop_eps, weight_decay=recipe.weight_decay)


def check_lr_scales(model: nn.Module, lr_scales) -> None:
    """Every name in ``lr_scales`` must be a module or parameter of ``model`` that holds
    parameters (a ValueError lists the parts)."""
    things = _named_parameters_of(model)
    unknown = [n for n, _ in lr_scales if not things.get(n)]
    if unknown:
        raise ValueError(f"Recipe.lr_scales names {', '.join(map(repr, unknown))}, which "
                         f"{type(model).__name__} has no parameters under. Its parts: "
                         f"{', '.join(parts(model))}.")


def frozen_lr_scales(model: nn.Module, lr_scales) -> list[str]:
    """The names in ``lr_scales`` whose parameters are all frozen: their scale changes nothing,
    since frozen parameters never enter the optimizer."""
    things = _named_parameters_of(model)
    return [n for n, _ in lr_scales
            if things.get(n) and not any(p.requires_grad for p in things[n])]


def _named_parameters_of(model: nn.Module) -> dict[str, list]:
    """{name: the parameters under it} for every module and parameter name of ``model`` (a
    part may be a parameter of its own, ViT's ``class_token``)."""
    out = {n: list(m.parameters()) for n, m in model.named_modules() if n}
    out.update({n: [p] for n, p in model.named_parameters()})
    return out


def lr_scale_of(name: str, lr_scales) -> float:
    """The lr scale of parameter ``name``: that of the longest part in ``lr_scales`` it lies
    in (the part itself, or a name under it: ``layer1`` holds ``layer1.0.conv1.weight``), else
    1."""
    best, scale = -1, 1.0
    for part, s in lr_scales:
        if (name == part or name.startswith(part + ".")) and len(part) > best:
            best, scale = len(part), s
    return scale
