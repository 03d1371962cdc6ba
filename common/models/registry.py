"""A model registry in torchvision's style: ``register_model``, ``get_model``, ``list_models``, and
a model card for each model: the facts about it that other code needs, declared where the model
is registered instead of guessed from its structure.

Model files in this folder (written in the notebooks, saved here by ``python -m common.save``)
decorate their public constructors with ``@register_model("name", head=..., weights=...)``.
Re-running a notebook cell re-registers the name, so ``get_model`` then builds the version the
learner just edited.
"""
from __future__ import annotations

import difflib
import fnmatch
import inspect
import numbers
import re
from dataclasses import dataclass
from typing import Callable

import torch.nn as nn


@dataclass(frozen=True)
class ModelCard:
    """What the course declares about a registered model (``model_card(name)``).

    name (str): the registry name, ``get_model``'s first argument
    constructor (callable): the function ``get_model`` calls with its keywords
    head (str): the classifier's module name, an ``nn.Linear`` (``"fc"``); read by
        ``common.transfer.head_name`` (default None: not declared, found from the structure)
    weights (str): the official ImageNet weights: torchvision's
        ``"ResNet50_Weights.IMAGENET1K_V2"`` or timm's ``"timm:seresnet50.a1_in1k"``; read by
        ``common.weights`` (default None: none)
    rename (callable or str): maps a key of those weights' old checkpoints to our module names
        (DenseNet's ``norm.1`` -> ``norm1``), or the name of such a function where the
        constructor is defined, so a notebook may define it in a later cell (default None)
    stages (callable): ``stages(model, parts) -> [[part, ...], ...]``: the model's parts
        (``common.transfer.parts``, input to output) grouped into its stages: the stem, each
        stage of the paper, the head; read by ``common.transfer.stages`` and
        ``lr_scales_by_depth`` (timm's analogue: ``group_matcher``). ``stages_joining`` makes
        one. Default: the rule of the course's family the name belongs to (``FAMILY_STAGES``),
        else None: each part is a stage
    nchw_on (tuple): the device types (``"cpu"``, ``"cuda"``) on which the model trains faster
        in NCHW than in channels_last, measured; ``fit`` and ``evaluate`` then keep it in NCHW
        there (``common.train.precision.channels_last_for``). Default: its family's
        (``FAMILY_NCHW_ON``: DenseNet on CPUs), else () (channels_last wherever it is faster
        for convolutions)
    """
    name: str
    constructor: Callable[..., nn.Module]
    head: str | None = None
    weights: str | None = None
    rename: Callable[[str], str] | str | None = None
    stages: Callable[[nn.Module, list[str]], list[list[str]]] | None = None
    nchw_on: tuple[str, ...] = ()

    def renaming(self) -> Callable[[str], str] | None:
        """The ``rename`` function, a name looked up where the constructor was defined."""
        if isinstance(self.rename, str):
            found = self.constructor.__globals__.get(self.rename)
            if not callable(found):
                raise ValueError(f"The model card of {self.name!r} names the renaming "
                                 f"{self.rename!r}, which {self.constructor.__module__} does not "
                                 "define: define it, or fix the name in @register_model.")
            return found
        return self.rename


def stages_joining(joins_previous: Callable[[nn.Module, str], bool]):
    """A ``ModelCard.stages`` rule: each part starts a new stage unless
    ``joins_previous(model, part)`` says it belongs to the stage of the part before it."""
    def rule(model: nn.Module, parts: list[str]) -> list[list[str]]:
        groups: list[list[str]] = []
        for part in parts:
            if groups and joins_previous(model, part):
                groups[-1].append(part)
            else:
                groups.append([part])
        return groups
    rule.joins_previous = joins_previous
    return rule


def _feature(model: nn.Module, part: str) -> tuple[int, nn.Module] | None:
    """(i, module) of a part ``features.i``; None for any other part."""
    head, _, index = part.partition(".")
    if head != "features" or not index.isdigit():
        return None
    return int(index), model.features[int(index)]


def _stem_norm(model: nn.Module, part: str) -> bool:
    """ResNet's (and SE-ResNet's, ResNeXt's) stem: ``conv1`` and its batch norm ``bn1``."""
    return part == "bn1"


def _no_pool_before(model: nn.Module, part: str) -> bool:
    """VGG's (and notebook 00's baseline's) stages end at a max-pool: a layer of ``features``
    joins the one before it unless a max-pool lies between them."""
    found = _feature(model, part)
    if found is None or found[0] == 0:
        return False
    i = found[0]
    before = list(model.features.children())[:i]
    k = max((j for j, m in enumerate(before) if _holds_params(m)), default=None)
    return k is not None and not any(isinstance(m, nn.MaxPool2d) for m in before[k + 1:])


def _same_row(model: nn.Module, part: str) -> bool:
    """MobileNetV2's stages are the rows of its Table 2: a block keeps the row of the block
    before it when it has the residual connection (same width and resolution); the first
    block of each row changes one of them, and has none."""
    found = _feature(model, part)
    return found is not None and bool(getattr(found[1], "use_res_connect", False))


def _dense_stage(model: nn.Module, part: str) -> bool:
    """DenseNet: the stem's norm joins its convolution, a transition layer the dense block
    before it (as timm's densenet groups them), and the final norm ``norm5`` the last dense
    block (our choice: timm's pattern matches nothing for it and puts it with the classifier)."""
    last = part.rpartition(".")[2]
    return last in ("norm0", "norm5") or last.startswith("transition")


def _after_downsampling(model: nn.Module, part: str) -> bool:
    """ConvNeXt in torchvision's layout (``features``: the stem, then each stage, with a
    downsampling layer before every stage but the first): a stage joins the downsampling layer
    before it (as the official code's layer decay and timm's ``stages.N.downsample`` group)."""
    found = _feature(model, part)
    return found is not None and found[0] >= 3 and found[0] % 2 == 1


def _holds_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


#: The stage rule of each of the course's families, by registry name (shell-style patterns): a
#: model card that declares no ``stages`` gets its family's. EfficientNet has none: its
#: ``features.1`` to ``features.7`` are its stages already, each part a stage.
FAMILY_STAGES = (
    (("resnet*", "resnext*", "seresnet*", "seresnext*", "cifar_resnet*", "cifar_plain*",
      "cifar_seresnet*"), stages_joining(_stem_norm)),
    (("vgg*", "cifar_vgg*", "cifar_baseline"), stages_joining(_no_pool_before)),
    (("mobilenet_v2", "cifar_mobilenet_v2"), stages_joining(_same_row)),
    (("densenet*", "cifar_densenet*"), stages_joining(_dense_stage)),
    (("convnext_*", "cifar_convnext"), stages_joining(_after_downsampling)),
)


def _family_stages(name: str):
    return next((rule for patterns, rule in FAMILY_STAGES
                 if any(fnmatch.fnmatchcase(name, p) for p in patterns)), None)


#: Where each of the course's families trains faster in NCHW than in channels_last, by registry
#: name (shell-style patterns): a model card that declares no ``nchw_on`` gets its family's.
#: DenseNet on CPUs: every layer concatenates all earlier maps, which costs more in channels_last
#: with oneDNN; DenseNet-BC-100 (k = 12 and 24) trained 1.10-1.16x faster per image in NCHW (one
#: thread, bf16, a shared 2-core AMD EPYC Zen 4, issue 32's study). Not measured on GPUs.
FAMILY_NCHW_ON = (
    (("densenet*", "cifar_densenet*"), ("cpu",)),
)


def _family_nchw_on(name: str) -> tuple[str, ...]:
    return next((devices for patterns, devices in FAMILY_NCHW_ON
                 if any(fnmatch.fnmatchcase(name, p) for p in patterns)), ())


_CARDS: dict[str, ModelCard] = {}


def register_model(name: str | None = None, *, head: str | None = None,
                   weights: str | None = None, rename: Callable[[str], str] | str | None = None,
                   stages: Callable[[nn.Module, list[str]], list[list[str]]] | None = None,
                   nchw_on: tuple[str, ...] | None = None):
    """Decorator: register a model constructor under ``name`` (default: the function's name),
    with its model card (``ModelCard`` says what ``head``, ``weights``, ``rename``, ``stages``
    and ``nchw_on`` mean)."""
    if isinstance(nchw_on, str) or not all(d in ("cpu", "cuda", "mps")
                                           for d in (nchw_on or ())):
        raise ValueError(f"nchw_on={nchw_on!r}: give a tuple of device types, e.g. ('cpu',).")
    if weights is not None and not (weights.startswith("timm:") or re.fullmatch(r"\w+\.\w+",
                                                                                 weights)):
        raise ValueError(f"weights={weights!r}: give torchvision's 'Enum.MEMBER' (e.g. "
                         "'ResNet50_Weights.IMAGENET1K_V2') or 'timm:<model>.<tag>'.")

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        _CARDS[key] = ModelCard(key, fn, head=head, weights=weights, rename=rename,
                                stages=stages if stages is not None else _family_stages(key),
                                nchw_on=tuple(nchw_on) if nchw_on is not None
                                else _family_nchw_on(key))
        return fn

    return wrap


def model_card(name: str) -> ModelCard:
    """The card of the registered model ``name`` (an error suggests close names)."""
    if not isinstance(name, str) or name not in _CARDS:
        close = difflib.get_close_matches(str(name), _CARDS, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown model name {name!r}.{hint} Available models: {', '.join(list_models())}."
        )
    return _CARDS[name]


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, e.g. ``list_models("cifar_*")``."""
    return sorted(n for n in _CARDS if fnmatch.fnmatch(n, pattern))


def get_model(name: str, /, **kwargs) -> nn.Module:
    """Build a registered model, e.g. ``get_model("resnet50", num_classes=1000)``. A keyword the
    model does not take is refused with the list of those it takes."""
    card = model_card(name)
    n = kwargs.get("num_classes", 1)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
        raise ValueError(f"num_classes must be a positive whole number, the number of classes in "
                         f"your data (e.g. num_classes=data.num_classes); got {n!r}.")
    try:
        model = card.constructor(**kwargs)
    except TypeError as err:
        m = _BINDING_ERROR.search(str(err))
        if not (m and m.group(2) in kwargs):
            raise
        raise TypeError(_keyword_help(card, m.group(2), m.group(1).startswith("multiple"))
                        ) from err
    model.name = name    # fit's label for the run, and how its card is found (not in state_dict)
    return model


_BINDING_ERROR = re.compile(r"(unexpected keyword argument|multiple values for (?:keyword )?"
                            r"argument) '(\w+)'")


_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _builds(fn: Callable) -> type | None:
    """The model class ``fn`` passes its ``**kwargs`` on to, as its return annotation says."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    passes_on = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    return sig.return_annotation if passes_on and inspect.isclass(sig.return_annotation) else None


def constructor_keywords(fn: Callable) -> list[str]:
    """The keywords a constructor's signature names and, when it passes ``**kwargs`` on, those of
    the functions it calls by name (``seresnet50`` -> ``_seresnet``) and of the model class it
    returns (its return annotation): a plain listing, read from signatures only, which may
    include keywords the constructor sets itself (``help(fn)`` says more)."""
    names, todo, seen = [], [fn], set()
    while todo:
        f = todo.pop(0)
        if id(f) in seen or len(seen) > 8:
            continue
        seen.add(id(f))
        try:
            params = inspect.signature(f).parameters.values()
        except (TypeError, ValueError):
            continue
        names += [p.name for p in params if p.kind in _KEYWORD_KINDS and p.name not in names]
        if inspect.isfunction(f) and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            scope = f.__globals__
            todo += [scope[n] for n in f.__code__.co_names if inspect.isfunction(scope.get(n))]
            todo += [c for c in (_builds(f),) if c is not None]
    return names


def _keyword_help(card: ModelCard, bad: str, sets_itself: bool) -> str:
    name, fn, cls = card.name, card.constructor, _builds(card.constructor)
    if sets_itself:
        msg = (f"get_model({name!r}) does not take {bad!r}: {name} sets it itself. Choose the "
               f"model by name instead (list_models() shows them all).")
    else:
        close = difflib.get_close_matches(bad, constructor_keywords(fn), n=3)
        msg = f"get_model({name!r}) does not take the keyword {bad!r}." + (
            f" Did you mean {', '.join(map(repr, close))}?" if close else "")
    whose = (f"its own and those of the {cls.__name__} it builds, some of which it may set "
             "itself" if cls is not None else "its signature's")
    return (msg + f" {name} takes: {', '.join(sorted(constructor_keywords(fn))) or 'no keywords'}"
            f" ({whose}; see help({fn.__module__}.{fn.__qualname__})).")


def check_image_batch(x, channels: int = 3, min_size: int = 1, training: bool = False,
                      final_map_size=None) -> None:
    """Raise a clear error unless ``x`` is a float batch shaped (N, channels, H, W) with H and W
    at least ``min_size``. With ``training=True`` (pass the model's ``self.training``), also
    refuse one image whose last feature map is 1x1: batch norm in train mode cannot normalise a
    single value per channel (torch's own error says only "Expected more than 1 value per
    channel"). ``final_map_size(side) -> side`` gives that map; by default a network whose total
    stride is ``min_size`` (convolutions padded, so a side of ``min_size`` or less ends at 1)."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(
            f"Expected a batch of images shaped (N, {channels}, H, W); got a tensor shaped "
            f"{tuple(x.shape)}. Add a batch dimension with x.unsqueeze(0) for a single image, "
            f"and give {channels} channels (grey images: x.expand(-1, {channels}, -1, -1))."
        )
    if min(x.shape[-2:]) < min_size:
        raise ValueError(
            f"Images of {tuple(x.shape[-2:])} pixels are too small for this model: "
            f"it needs at least {min_size}x{min_size}."
        )
    if not x.is_floating_point():
        raise ValueError(
            f"Expected a float tensor, got {x.dtype}: convert and normalise uint8 images first "
            "(data.normalize(x) does both)."
        )
    if training and x.shape[0] == 1:
        side = final_map_size or (lambda n: 1 if n <= min_size else 2)
        if side(x.shape[-2]) * side(x.shape[-1]) == 1:
            raise ValueError(
                f"One {x.shape[-2]}x{x.shape[-1]} image in train mode ends on a 1x1 map, and "
                "batch norm cannot normalise a single value per channel. Train on batches of 2 or "
                "more, or on larger images; to predict one image, call model.eval() first.")
