"""Model cards and the official weights (common.weights): what each registered model declares is
checked against the model itself, and the loader reads it. No download: the network is cut."""
import re

import pytest
import torch
import torchvision

import common
from common import transfer, weights
from common.models.registry import model_card


def _meta(name, **kwargs):
    with torch.device("meta"):
        return common.get_model(name, **kwargs)


def _structural_head(model):
    """transfer.head_name's fallback, the last module with parameters, for a model whose card
    is not read (a nameless copy)."""
    model.name = None
    try:
        return transfer.head_name(model)
    finally:
        del model.name


@pytest.mark.parametrize("name", common.list_models())
def test_each_card_declares_the_head_the_structure_shows(name):
    card = model_card(name)
    if name == "convnext_roadmap":             # its head depends on the step: found, not declared
        assert card.head is None
        return
    model = _meta(name)
    assert card.head is not None and transfer.head_name(model) == card.head
    assert _structural_head(model) == card.head


@pytest.mark.parametrize("name", [n for n in common.list_models() if model_card(n).weights])
def test_declared_weights_exist_and_fit_the_model(name):
    declared = model_card(name).weights
    if declared.startswith("timm:"):
        import timm
        assert timm.list_pretrained(declared[5:]) == [declared[5:]]
        return
    official = torchvision.models.get_weight(declared)
    assert weights.pretrained_weights(name) is official
    assert common.count_params(_meta(name)) == official.meta["num_params"]


def test_the_loader_reads_the_card_renames_densenets_old_keys_and_prints_nothing(monkeypatch,
                                                                               capsys):
    model = _meta("densenet121").to_empty(device="cpu")
    old = {re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.(weight|bias|running_\w+)$",
                  r"\1.\2.\3", k): v for k, v in model.state_dict().items()}   # 2017's names
    assert old.keys() != model.state_dict().keys()
    asked = []
    monkeypatch.setattr(weights, "_download", lambda w, progress: asked.append(w) or old)
    assert weights.load_official_weights(model, offline=False) is True
    assert asked == [torchvision.models.DenseNet121_Weights.IMAGENET1K_V1]
    assert capsys.readouterr() == ("", "")
    with pytest.raises(RuntimeError, match="Missing key"):           # strict: no renaming
        weights.load_official_weights(model, rename=lambda k: k, offline=False)


def test_timms_weights_of_se_resnet_load_through_timm(monkeypatch):
    import timm

    model = _meta("seresnet50").to_empty(device="cpu")
    made = []

    class Pretrained:
        def state_dict(self):
            return model.state_dict()

    monkeypatch.setattr(timm, "create_model",
                        lambda tag, pretrained: made.append((tag, pretrained)) or Pretrained())
    assert weights.load_official_weights(model, offline=False)
    assert made == [("seresnet50.a1_in1k", True)]
    with pytest.raises(ValueError, match="timm's .*seresnet50.a1_in1k"):
        weights.pretrained_weights("seresnet50")


def test_offline_the_loader_returns_false_or_says_why(capsys):
    model = _meta("resnet18")
    assert weights.load_official_weights(model, offline=True) is False
    assert capsys.readouterr() == ("", "")
    with pytest.raises(weights.WeightsUnavailable, match=r"Offline .*ResNet18_Weights"):
        weights.load_official_weights(model, offline=True, missing_ok=False)
    with pytest.raises(ValueError, match="no model card that names its official weights"):
        weights.load_official_weights(torchvision.models.resnet18(), offline=True)


def test_classify_photo_loads_through_the_loader(monkeypatch):
    calls = []

    def loader(model, w, rename=None, offline=None, **kwargs):
        calls.append((w, kwargs))
        raise weights.WeightsUnavailable("Could not download x (OSError: no internet)")

    monkeypatch.setattr(weights, "load_official_weights", loader)
    w = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    assert common.classify_photo(_meta("resnet18"), w, show=False) is None
    assert calls == [(w, {"missing_ok": False})]
