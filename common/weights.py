"""The official ImageNet weights, in *our* models: each model's card (``@register_model(...,
weights=...)``) names them, ``load_official_weights`` downloads them and loads them with
``strict=True`` (every name and shape must match), and ``classify_photo`` shows them at work
on a real photo.

    model = common.get_model("resnet50")
    load_official_weights(model)                   # its card's: ResNet50_Weights.IMAGENET1K_V2
    classify_photo(model, pretrained_weights("resnet50"))     # the top 5 classes of a flower

The weights need internet (Colab has it; the tests do not): offline (``common.OFFLINE``) or when
the download fails, nothing is loaded and the reason is a ``WeightsUnavailable``.
torchvision (and timm, for SE-Net's weights) are imported only when weights are asked for.
"""
from __future__ import annotations

import torch
from torch import nn

from common import runtime
from common.models.registry import ModelCard, list_models, model_card


class WeightsUnavailable(RuntimeError):
    """Official weights that cannot be had here: offline, or the download failed."""

    def __init__(self, message: str, offline: bool = False):
        super().__init__(message)
        self.offline = offline


def _card(model_name: str | None) -> ModelCard | None:
    return model_card(model_name) if model_name in list_models() else None


def pretrained_weights(model_name: str):
    """torchvision's ImageNet weights for the registered model ``model_name``, as its model card
    declares them (``ResNet50_Weights.IMAGENET1K_V2`` for ``resnet50``...); for a name the course
    does not register, torchvision's default for that name. Nothing is downloaded here. A
    ValueError, whose message lists the models that have them, for a model whose card declares
    no torchvision weights: none at all (``[n for n in list_models() if not
    model_card(n).weights]``: the CIFAR adaptations, VGG's A-LRN and C variants, DenseNet-264,
    SE-ResNet-101 and -152, ConvNeXt's roadmap model), or timm's (SE-ResNet-50 and
    SE-ResNeXt-50: ``load_official_weights`` takes those)."""
    import torchvision  # optional here: heavy to import, and only weights need it

    card = _card(model_name)
    if card is not None and card.weights and card.weights.startswith("timm:"):
        raise ValueError(f"The official weights of {model_name!r} are timm's "
                         f"({card.weights[5:]}), not torchvision's: load_official_weights(model) "
                         "downloads them (notebook 04 shows them at work).")
    if card is not None and card.weights:
        return torchvision.models.get_weight(card.weights)
    if card is None:                  # a model from elsewhere: ask torchvision
        try:
            return torchvision.models.get_model_weights(model_name).DEFAULT
        except (ValueError, KeyError):
            pass
    known = [n for n in list_models()
             if model_card(n).weights and not model_card(n).weights.startswith("timm:")]
    raise ValueError(f"There are no ImageNet weights for {model_name!r} in torchvision (its "
                     f"model card declares none). Models with torchvision's weights: "
                     f"{', '.join(known)}.")


def pretrained_rename(model_name: str):
    """The key renaming the official checkpoint of ``model_name`` needs before a strict load into
    our model, as its model card declares it (None: none). DenseNet's checkpoints were saved
    when a module name could hold a dot: ``denselayer1.norm.1.weight`` comes from a module named
    ``norm.1``, which PyTorch no longer allows, and is ``denselayer1.norm1.weight`` now
    (torchvision's own ``densenet.py`` renames them the same way while loading, "'.'s are no
    longer allowed in module names"; notebook 03 writes the renaming and saves it into
    ``common.models.densenet``)."""
    card = _card(model_name)
    return card.renaming() if card is not None else None


def _label(weights) -> str:
    if isinstance(weights, str):
        return f"timm's {weights[5:]} weights"
    return f"{type(weights).__name__}.{weights.name}"


def _download(weights, progress: bool) -> dict:
    """The state dict of torchvision's ``weights`` (an enum member) or of timm's ("timm:tag")."""
    try:
        if isinstance(weights, str):
            import timm  # optional here: heavy to import, and only SE-Net's weights need it

            return timm.create_model(weights[5:], pretrained=True).state_dict()
        return weights.get_state_dict(progress=progress)
    except Exception as err:          # no internet, a proxy, ... (re-raised, said)
        url = weights[5:] if isinstance(weights, str) else weights.url
        raise WeightsUnavailable(f"Could not download {url} ({type(err).__name__}: {err})"
                                 ) from err


def load_official_weights(model: nn.Module, weights=None, rename=None,
                          offline: bool | None = None, *, missing_ok: bool = True,
                          progress: bool = True) -> bool:
    """Official ImageNet weights loaded into *our* ``model`` with ``strict=True`` (a name or shape
    that differs raises). ``weights``: torchvision's (an enum member such as
    ``ResNet50_Weights.IMAGENET1K_V2``) or ``"timm:<model>.<tag>"``; default: the ones the
    model's card declares (a model built by ``common.get_model``). ``rename(key) -> key`` maps
    old checkpoint names first (default: the card's, DenseNet's). Prints nothing (``progress``:
    torch's download bar, on stderr, while a file downloads). True when loaded; offline or when
    the download fails, False, or with ``missing_ok=False`` a ``WeightsUnavailable`` that says
    why."""
    card = _card(getattr(model, "name", None))
    if weights is None:
        if card is None or not card.weights:
            raise ValueError(f"{type(model).__name__} has no model card that names its official "
                             "weights: pass them, e.g. load_official_weights(model, "
                             "ResNet50_Weights.IMAGENET1K_V2).")
        weights = card.weights if card.weights.startswith("timm:") else \
            pretrained_weights(card.name)
    if rename is None and card is not None:
        rename = card.renaming()
    try:
        if runtime.OFFLINE if offline is None else offline:
            raise WeightsUnavailable(f"Offline (IMAGENET5_OFFLINE=1): {_label(weights)} cannot "
                                     "be downloaded", offline=True)
        state = _download(weights, progress)
    except WeightsUnavailable:
        if missing_ok:
            return False
        raise
    if rename is not None:
        state = {rename(k): v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return True


def sample_photo() -> torch.Tensor:
    """The flower photo that ships with scikit-learn (no download): uint8, (3, H, W)."""
    from sklearn.datasets import load_sample_image  # optional here: heavy to import

    return torch.from_numpy(load_sample_image("flower.jpg").copy()).permute(2, 0, 1)


def classify_photo(model: nn.Module, weights, photo: torch.Tensor | None = None, top: int = 5,
                   rename=None, offline: bool | None = None, show: bool = True):
    """Official weights in *our* model, on a real photo: ``load_official_weights(model, weights,
    rename)`` (torchvision's ``weights``, a ``WeightsEnum`` member such as
    ``ResNet50_Weights.IMAGENET1K_V2``, loaded with ``strict=True``), then ``photo`` (default
    ``sample_photo()``) classified with the weights' own preprocessing (``weights.transforms()``).
    Shows the photo (``show``), prints the ``top`` classes and returns them as
    ``[(probability, category), ...]``. Offline (``common.OFFLINE``) or when the download fails
    it says so and returns None: the weights need internet (Colab has it; the tests do not)."""
    photo = sample_photo() if photo is None else photo
    batch = weights.transforms()(photo).unsqueeze(0)
    try:
        load_official_weights(model, weights, rename, offline, missing_ok=False)
    except WeightsUnavailable as err:
        print(f"{err}, so this cell stops here. On Colab it loads them into our "
              f"{type(model).__name__} and classifies the photo." if err.offline
              else f"{err}; moving on.")
        return None
    with torch.no_grad():
        probs = model.eval()(batch).softmax(1)[0]
    if show:
        import matplotlib.pyplot as plt  # optional here: heavy to import, only to show it

        plt.figure(figsize=(4, 3))
        plt.imshow(photo.permute(1, 2, 0))
        plt.axis("off")
        plt.show()
    result = [(p.item(), weights.meta["categories"][i]) for p, i in zip(*probs.topk(top))]
    for p, name in result:
        print(f"{p:6.1%}  {name}")
    return result
