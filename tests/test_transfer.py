"""Tests of common/transfer.py (notebook 09): a new head, freezing, per-part learning rates,
for every ImageNet family of the course, ConvNeXt (notebook 08) included, and torchvision's
ConvNeXt."""
import dataclasses
import json

import pytest
import torch
import torchvision
from torch import nn

import common
from common import train as ctrain
from common import transfer as T
from common.train import Recipe, loop, make_optimizer, weight_decay_groups

# family: (model, its head, its last stage, the head's input width)
FAMILIES = {
    "vgg": ("vgg11_bn", "classifier.6", "features.26", 4096),     # its last batch norm
    "resnet": ("resnet18", "fc", "layer4", 512),
    "densenet": ("densenet121", "classifier", "features.denseblock4", 1024),
    "senet": ("seresnet50", "fc", "layer4", 2048),
    "mobilenetv2": ("mobilenet_v2", "classifier.1", "features.18", 1280),
    "efficientnet": ("efficientnet_b0", "classifier.1", "features.8", 1280),
    "convnext": ("convnext_tiny", "classifier.2", "features.7", 768),    # notebook 08's
}


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: on a busy 2-core machine two threads wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _meta(name):
    with torch.device("meta"):
        return common.get_model(name)


def _real(name, seed=0):
    """The ImageNet model with random weights and random batch-norm statistics, built on the
    meta device and then filled (a VGG's 130M-parameter initialisation alone takes seconds)."""
    model = _meta(name).to_empty(device="cpu")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            bound = 1 / max(p[0].numel(), 1) ** 0.5
            p.uniform_(-bound, bound, generator=g)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.zero_()
    return model


@pytest.mark.parametrize("family", FAMILIES)
def test_the_head_is_found_and_replaced_with_the_right_widths(family):
    name, head, _, width = FAMILIES[family]
    model = _meta(name)
    assert T.head_name(model) == head
    assert T.replace_head(model, 7) is model
    new = model.get_submodule(head)
    assert isinstance(new, nn.Linear) and (new.in_features, new.out_features) == (width, 7)
    assert model(torch.empty(2, 3, 224, 224, device="meta")).shape == (2, 7)


def test_convnext_layout_is_re_headed_too():
    """torchvision's ConvNeXt: the layout of the course's (classifier = LayerNorm2d, Flatten,
    Linear), found with no ConvNeXt case in common/transfer.py's code (only its module docstring
    and head_name's error message name ConvNeXt, among the families it knows)."""
    with torch.device("meta"):
        model = torchvision.models.convnext_tiny()
    assert T.head_name(model) == "classifier.2"
    T.replace_head(model, 5)
    assert model(torch.empty(1, 3, 64, 64, device="meta")).shape == (1, 5)
    assert T.freeze(model) == ["classifier.2.weight", "classifier.2.bias"]
    assert T.parts(model)[-2:] == ["features.7", "classifier"]


@pytest.mark.parametrize("family", FAMILIES)
def test_freeze_leaves_exactly_the_named_parts_trainable(family):
    name, head, stage, _ = FAMILIES[family]
    model = T.replace_head(_meta(name), 3)
    assert T.freeze(model) == [f"{head}.weight", f"{head}.bias"]
    assert common.count_params(model, trainable_only=True) == 3 * (FAMILIES[family][3] + 1)
    left = T.freeze(model, trainable=(stage, head))        # replaces the first freeze
    expected = {n for part in (stage, head)
                for n in (f"{part}.{k}" for k, _ in model.get_submodule(part).named_parameters())}
    assert set(left) == expected and len(left) == len(expected)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == expected
    state = T.trainable_parts(model)
    assert state[stage] == "trainable" and list(state.values()).count("trainable") <= 3
    assert T.unfreeze(model) is model and all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("family", FAMILIES)
def test_a_step_leaves_frozen_weights_and_batch_norm_statistics_bit_identical(family):
    name, head, stage, _ = FAMILIES[family]
    torch.manual_seed(0)
    model = T.replace_head(_real(name), 4)
    T.freeze(model, trainable=(stage, head))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recipe = Recipe(epochs=1, lr=0.05, weight_decay=0.01, momentum=0.9)
    optimizer = make_optimizer(model, recipe)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == trainable
    model.train()                                           # as fit does every epoch
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 3])
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    after = model.state_dict()
    inside = lambda k: T._within(k, stage) or T._within(k, head)            # noqa: E731
    frozen = [k for k in before if not inside(k)]
    changed = [k for k in frozen if not torch.equal(before[k], after[k])]
    assert changed == [], f"frozen state moved: {changed[:5]}"
    assert not torch.equal(before[f"{head}.weight"], after[f"{head}.weight"])
    stage_stats = [k for k in before if inside(k) and k.endswith("running_mean")]
    if stage_stats:       # the trainable stage's batch norms learn statistics: the check can fail
        assert any(not torch.equal(before[k], after[k]) for k in stage_stats)


def test_without_the_eval_hook_frozen_batch_norm_statistics_drift():
    """The classic bug the hook prevents: requires_grad=False alone, then model.train()."""
    model = T.replace_head(_real("resnet18"), 2)
    for n, p in model.named_parameters():
        p.requires_grad_(n.startswith("fc"))
    before = model.bn1.running_mean.clone()
    model.train()(torch.randn(2, 3, 32, 32))
    assert not torch.equal(before, model.bn1.running_mean)
    T.freeze(model)
    model.train()
    assert model.bn1.training                       # train() still sets the flag...
    before = model.bn1.running_mean.clone()
    model(torch.randn(2, 3, 32, 32))
    assert not model.bn1.training and torch.equal(before, model.bn1.running_mean)   # ...not used


def test_an_optimizer_holding_frozen_parameters_moves_them_by_weight_decay():
    """Why the optimizer must not hold frozen parameters: with zero (not None) gradients, SGD's
    weight decay still shrinks them."""
    model = T.replace_head(common.get_model("cifar_baseline", widths=(8,), convs_per_stage=1), 2)
    T.freeze(model)
    stem = next(model.features.parameters())
    before = stem.detach().clone()
    naive = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    naive.step()
    assert not torch.equal(before, stem)
    ours = make_optimizer(model, Recipe(epochs=1, weight_decay=0.1))
    assert all(p.requires_grad for g in ours.param_groups for p in g["params"])


def test_clear_errors_for_unknown_parts_and_models():
    model = _meta("resnet18")
    with pytest.raises(ValueError, match=r"no part named 'layer5'.*conv1, bn1, layer1, layer2, "
                                         r"layer3, layer4, fc"):
        T.freeze(model, trainable=("layer4", "layer5"))
    with torch.device("meta"):
        squeezenet = torchvision.models.squeezenet1_0()
    with pytest.raises(ValueError, match=r"Cannot re-head SqueezeNet.*Conv2d 'classifier.1'"):
        T.replace_head(squeezenet, 3)
    for bad in (-1, 5.0, True):                    # 0 is timm's "no head" (features)
        with pytest.raises(ValueError, match="num_classes"):
            T.replace_head(model, bad)
    with pytest.raises(ValueError, match="no parameters under.*Its parts: conv1"):
        make_optimizer(model, Recipe(epochs=1, lr_scales={"layer9": 0.1}))
    T.freeze(model, trainable=[])
    with pytest.raises(ValueError, match="no trainable parameter"):
        weight_decay_groups(model, Recipe(epochs=1))


def test_recipe_lr_scales_validated_canonical_and_old_runs_keep_their_folders():
    a = Recipe(epochs=2, lr_scales={"layer1": 0.1, "fc": 1})
    assert a.lr_scales == (("fc", 1.0), ("layer1", 0.1)) == Recipe(
        epochs=2, lr_scales=[("layer1", 0.1), ("fc", 1.0)]).lr_scales
    for bad in ({"layer1": 0}, {"": 0.5}, "layer1", (("a", 1), ("a", 2))):
        with pytest.raises(ValueError, match="lr_scales"):
            Recipe(epochs=2, lr_scales=bad)
    data = common.load_data("digits", smoke=True, device="cpu", verbose=False)
    plain = Recipe(epochs=2)
    assert common.run_dir_for("g", "m", plain, data) != common.run_dir_for("g", "m", a, data)
    assert ctrain.ADDED_FIELDS["lr_scales"] == plain.lr_scales       # old folders keep names
    assert "lr_scales" in str(a.table()) and "lr_scales" not in str(plain.table())


def test_fit_trains_each_part_at_its_scaled_learning_rate(monkeypatch):
    torch.manual_seed(0)
    data = common.load_data("digits", smoke=True, device="cpu", verbose=False)
    model = common.get_model("cifar_baseline", widths=(8, 16), convs_per_stage=1)
    scales = T.lr_scales_by_depth(model, 0.5)
    assert scales == tuple((n, 0.5 ** (len(T.parts(model)) - 1 - i))
                           for i, n in enumerate(T.parts(model)))   # one part per stage here
    names = {id(p): n for n, p in model.named_parameters()}
    stepped = []                  # each step's lr per group, as the optimizer's step sees them

    def recording(m, r):
        optimizer = make_optimizer(m, r)
        optimizer.register_step_pre_hook(lambda o, args, kwargs: stepped.append(
            {ctrain.lr_scale_of(names[id(g["params"][0])], scales): g["lr"]
             for g in o.param_groups}))
        return optimizer

    monkeypatch.setattr(loop, "make_optimizer", recording)
    recipe = Recipe(epochs=1, lr=0.2, schedule="constant", lr_scales=scales, batch_size=128)
    h = common.fit(model, data, recipe, smoke=True, verbose=False, amp=False)
    assert stepped and all(lrs == {s: pytest.approx(0.2 * s) for s in lrs} for lrs in stepped)
    assert len(stepped[0]) == len(set(dict(scales).values())) and h["recipe"]["lr_scales"]
    assert h["lr"][-1] == 0.2                # the schedule's rate for scale 1, as fit set it


def test_class_subset_relabels_caps_and_keeps_the_statistics():
    data = common.load_data("digits", smoke=True, device="cpu", verbose=False)
    sub = T.class_subset(data, [7, 5], per_class=10)
    assert sub.classes == ("7", "5") and sub.num_classes == 2
    assert torch.equal(sub.mean, data.mean) and torch.equal(sub.std, data.std)
    assert torch.bincount(sub.train.y).tolist() == [10, 10]
    assert len(sub.test) == int(((data.test.y == 7) | (data.test.y == 5)).sum())
    first7 = data.train.x[data.train.y == 7][:10]
    assert torch.equal(sub.train.x[sub.train.y == 0], first7)
    assert "classes 7,5; 10 per class" in sub.description
    with pytest.raises(ValueError, match="distinct indices"):
        T.class_subset(data, [1, 1])
    imagenet = T.with_statistics(data, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    T.check_statistics(imagenet, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with pytest.raises(AssertionError, match="with_statistics"):
        T.check_statistics(data, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    x = data.train.x[:2]
    assert not torch.allclose(imagenet.normalize(x), data.normalize(x))   # no stale cache
    assert dataclasses.replace(data) is not data


def test_pretrained_weights_and_their_renaming():
    assert T.pretrained_weights("resnet50") is torchvision.models.ResNet50_Weights.DEFAULT
    assert T.pretrained_weights("efficientnet_b0").transforms().mean == [0.485, 0.456, 0.406]
    with pytest.raises(ValueError, match="no ImageNet weights for 'cifar_resnet20'.*resnet50"):
        T.pretrained_weights("cifar_resnet20")
    rename = T.pretrained_rename("densenet121")
    assert rename("features.denseblock1.denselayer1.norm.1.weight") == \
        "features.denseblock1.denselayer1.norm1.weight"
    assert rename("features.norm0.weight") == "features.norm0.weight"
    assert T.pretrained_rename("resnet50") is None


def test_frozen_state_changes_sees_parameters_and_statistics_of_frozen_parts_only():
    model = T.replace_head(common.get_model("cifar_baseline", widths=(8,), convs_per_stage=1), 2)
    T.freeze(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()(torch.randn(4, 3, 16, 16))
    with torch.no_grad():
        model.fc.weight.add_(1.0)                          # a trainable part may change
    assert T.frozen_state_changes(model, before) == []
    bn = next(n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d))
    with torch.no_grad():
        model.get_submodule(bn).running_mean.add_(1.0)
        next(model.features.parameters()).add_(1.0)
    changed = T.frozen_state_changes(model, before)
    assert f"{bn}.running_mean" in changed and any(k.endswith("weight") for k in changed)


def test_resize_inputs_upsamples_without_renaming_anything():
    with torch.device("meta"):
        model = common.get_model("resnet18").eval()
    keys = list(model.state_dict())
    seen = []
    model.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[-1]))
    T.resize_inputs(model, 224)
    T.resize_inputs(model, 96)                             # replaces, never stacks
    model(torch.empty(1, 3, 32, 32, device="meta"))
    T.resize_inputs(model, None)
    model(torch.empty(1, 3, 32, 32, device="meta"))
    assert seen == [96, 32] and list(model.state_dict()) == keys


def test_command_line_freeze_trains_only_the_named_parts(tmp_path, capsys):
    from common import cli

    tiny = ["cifar_baseline", "--model-kwargs", '{"widths": [8, 16], "convs_per_stage": 1}',
            "--data", "digits", "--mode", "smoke", "--epochs", "1", "--batch-size", "64",
            "--no-amp", "--run-dir", str(tmp_path / "run")]
    torch.manual_seed(0)
    model, _ = cli.train([*tiny, "--freeze", "fc", "--lr-scales", "fc=0.5"])
    assert "--freeze: " in capsys.readouterr().out
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    settings = json.loads((tmp_path / "run" / cli.SETTINGS).read_text())
    assert settings["--freeze"] == "fc" and settings["--lr-scales"] == [["fc", 0.5]]
    assert cli.main([*tiny[:-1], str(tmp_path / "other"), "--freeze", "layer9"]) == 2
    assert "no part named 'layer9'" in capsys.readouterr().err
    assert cli.main([*tiny[:-1], str(tmp_path / "p"), "--pretrained"]) == 2
    assert "no ImageNet weights for 'cifar_baseline'" in capsys.readouterr().err


# --- transfer's sharp edges (issue 31) ----------------------------------------------------------

def test_frozen_batch_norms_stay_frozen_through_the_sync_batch_norm_conversion():
    """fit(sync_bn=True) converts after the user's freeze. On a CPU without a process group
    SyncBatchNorm falls back to batch_norm, so the mechanism shows: train-mode forwards must
    leave the frozen running statistics as they were."""
    model = T.replace_head(_real("resnet18"), 3)
    T.freeze(model, trainable=("layer4", "fc"))
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(model.bn1, nn.SyncBatchNorm)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()(torch.randn(4, 3, 32, 32))
    assert not model.bn1.training and model.layer4[0].bn1.training
    assert T.frozen_state_changes(model, before) == []
    assert not torch.equal(before["layer4.0.bn1.running_mean"], model.layer4[0].bn1.running_mean)


@pytest.mark.parametrize("name, head", [("efficientnet_b0", "classifier.1"),   # stochastic depth
                                        ("vgg11_bn", "classifier.6")])          # dropout
def test_a_linear_probe_sees_fixed_features(name, head):
    """Everything outside the trainable parts runs as in eval mode: stochastic depth and dropout
    of the frozen parts are off, so the head sees the same features at every pass."""
    model = T.replace_head(_real(name), 3)
    seen = []
    model.get_submodule(head).register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        model.train()(x), model(x)
        assert not torch.equal(seen[0], seen[1])     # without freeze: random layers at work
        T.freeze(model)
        model.train()(x), model(x)
        assert torch.equal(seen[2], seen[3])
        model.eval()(x)
        assert torch.equal(seen[2], seen[4])         # the features of eval mode
        T.unfreeze(model)
        assert all(m.training is False for m in model.modules())   # as eval() left them
        model.train()(x), model(x)
        assert not torch.equal(seen[5], seen[6])


def test_a_trainable_part_keeps_its_dropout():
    model = T.replace_head(_meta("vgg11_bn"), 3)
    T.freeze(model, trainable=("classifier",))           # fc6, fc7 and their dropout learn
    model.train()
    model(torch.empty(2, 3, 32, 32, device="meta"))
    assert model.classifier[2].training and not model.features[0].training


def test_everything_includes_top_level_parameters():
    """ViT's class token is a parameter of the model itself, under no child module."""
    with torch.device("meta"):
        vit = torchvision.models.vit_b_16()
    assert T.parts(vit)[0] == "class_token"
    T.freeze(vit, trainable=T.parts(vit))
    assert all(p.requires_grad for p in vit.parameters())
    T.freeze(vit, trainable=("class_token", "heads"))
    assert [n for n, p in vit.named_parameters() if p.requires_grad] == [
        "class_token", "heads.head.weight", "heads.head.bias"]
    assert T.trainable_parts(vit)["class_token"] == "trainable"
    assert dict(T.lr_scales_by_depth(vit, 0.5))["class_token"] == 0.5 ** (len(T.parts(vit)) - 1)


def test_replace_head_takes_numpy_integers_and_re_heads_auxiliary_heads():
    np = pytest.importorskip("numpy")
    model = T.replace_head(_meta("resnet18"), np.int64(5))
    assert model.fc.out_features == 5 and type(model.fc.out_features) is int
    with torch.device("meta"):
        inception = torchvision.models.inception_v3(init_weights=False)
        googlenet = torchvision.models.googlenet(init_weights=False)
    T.replace_head(inception, 7)
    assert inception.fc.out_features == inception.AuxLogits.fc.out_features == 7
    T.replace_head(T.replace_head(inception, 0), 3)       # features only, then a head again
    assert inception.fc.out_features == inception.AuxLogits.fc.out_features == 3
    T.replace_head(googlenet, 7)
    assert {googlenet.get_submodule(n).out_features for n in ("fc", "aux1.fc2", "aux2.fc2")} \
        == {7}
    assert googlenet.aux1.fc1.out_features == 1024                 # not a head: kept


def test_features_without_a_head_and_timm_s_names():
    """timm's num_classes=0 (an identity head: the model returns its features), get_classifier
    and reset_classifier, as functions."""
    model = T.replace_head(_meta("resnet50"), 0)
    assert model(torch.empty(2, 3, 64, 64, device="meta")).shape == (2, 2048)
    assert "fc" not in T.parts(model)
    assert T.reset_classifier(model, 4) is model
    assert T.get_classifier(model) is model.fc and model.fc.out_features == 4
    assert model(torch.empty(2, 3, 64, 64, device="meta")).shape == (2, 4)


def test_freeze_names_what_trains_by_keyword_only():
    model = _meta("resnet18")
    with pytest.raises(TypeError, match=r"trainable=\('layer4', 'fc'\).*timm"):
        T.freeze(model, ("layer4", "fc"))
    assert not any(p.requires_grad is False for p in model.parameters())    # nothing done


def test_clear_errors_for_bad_arguments():
    model = _meta("resnet18")
    with pytest.raises(TypeError, match="trainable.*part names.*123"):
        T.freeze(model, trainable=123)
    with pytest.raises(ValueError, match="'avgpool' holds no parameters"):
        T.freeze(model, trainable=("avgpool", "fc"))
    with pytest.raises(ValueError, match="is itself an nn.Linear"):
        T.replace_head(nn.Linear(4, 3), 2)
    with torch.device("meta"):
        squeezenet = torchvision.models.squeezenet1_0()
    with pytest.raises(ValueError, match=r"freeze\(model\) trains the head.*trainable="):
        T.freeze(squeezenet)
    with pytest.raises(ValueError, match="factor"):
        T.lr_scales_by_depth(model, True)


@pytest.mark.parametrize("name, stages", [
    ("resnet50", 6), ("seresnet50", 6), ("vgg16_bn", 6), ("densenet121", 6),
    ("mobilenet_v2", 10), ("efficientnet_b0", 10), ("convnext_tiny", 6),
    ("cifar_resnet20", 5), ("cifar_mobilenet_v2", 10), ("cifar_densenet40_k12", 5),
    ("cifar_vgg16_bn", 6), ("cifar_baseline", 4), ("cifar_convnext", 6),
])
def test_depth_follows_the_stages_of_each_family(name, stages):
    """lr_scales_by_depth halves the rate per stage (the model card's grouping), not per part:
    MobileNetV2's features hold its blocks one by one, VGG's single layers."""
    model = _meta(name)
    groups = T.stages(model)
    assert len(groups) == stages and [p for g in groups for p in g] == T.parts(model)
    scales = dict(T.lr_scales_by_depth(model, 0.5))
    assert set(scales) == set(T.parts(model))
    assert min(scales.values()) == 0.5 ** (stages - 1)
    assert all(scales[p] == 0.5 ** (stages - 1 - i) for i, g in enumerate(groups) for p in g)


def test_stages_of_mobilenet_v2_are_the_rows_of_table_2():
    groups = T.stages(_meta("mobilenet_v2"))
    assert [len(g) for g in groups] == [1, 1, 2, 3, 4, 3, 3, 1, 1, 1]
    assert groups[3] == ["features.4", "features.5", "features.6"]
    convnext = T.stages(_meta("convnext_tiny"))
    assert convnext[1:3] == [["features.1"], ["features.2", "features.3"]]  # downsampling first
    assert T.stages(_meta("resnet18"))[0] == ["conv1", "bn1"]
    names = T.lr_scales_by_depth(_meta("resnet18"), 0.1, names=[("conv1", "bn1"), "layer4"])
    assert names == (("conv1", 0.1), ("bn1", 0.1), ("layer4", 1.0))


def test_each_group_carries_its_own_learning_rate():
    """The effective rate is each group's lr: what a plain torch optimizer applies, what timm's
    schedulers scale once, what an lr logger reads."""
    model = common.get_model("cifar_baseline", widths=(8, 16), convs_per_stage=1)
    recipe = Recipe(epochs=1, lr=0.2, momentum=0.0, weight_decay=0.0,
                    lr_scales=(("features.0", 0.25), ("fc", 1.0)))
    lrs = {tuple(id(p) for p in g["params"]): g["lr"] for g in make_optimizer(
        model, recipe).param_groups}
    first = next(model.features.parameters())
    assert next(lr for ids, lr in lrs.items() if id(first) in ids) == pytest.approx(0.05)
    plain = torch.optim.SGD(weight_decay_groups(model, recipe), lr=0.2)
    assert sorted(g["lr"] for g in plain.param_groups) == pytest.approx([0.05, 0.2])
    timm_scheduler = pytest.importorskip("timm.scheduler")
    opt = make_optimizer(model, recipe)
    sched = timm_scheduler.StepLRScheduler(opt, decay_t=1, decay_rate=0.5)
    sched.step(1)
    assert sorted(g["lr"] for g in opt.param_groups) == pytest.approx([0.025, 0.1])


def test_the_models_pretrained_weights_names_as_without_torchvision_weights():
    """pretrained_weights' docstring names these as without torchvision's weights: they are."""
    from common.models import list_models, model_card

    none = {"vgg11_lrn", "vgg11_lrn_bn", "vgg16_c", "vgg16_c_bn", "densenet264", "seresnet101",
            "seresnet152", "convnext_roadmap"}
    assert {n for n in list_models() if not model_card(n).weights} == none | set(
        list_models("cifar_*"))
    for name in [*none, "seresnet50", "seresnext50_32x4d", "cifar_resnet20"]:
        with pytest.raises(ValueError, match=name):
            T.pretrained_weights(name)
