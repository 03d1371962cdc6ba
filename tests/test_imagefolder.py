"""ImageNet-style data: load_data("imagefolder", root=...) on tiny folders of PNG/JPEG files the
tests write themselves; the pipeline against torchvision's transforms, determinism across
workers and processes, fit and evaluate on it, and the errors."""
import sys
from pathlib import Path

import pytest
import torch

import common
from common import data as cdata

sys.path.insert(0, str(Path(__file__).parent))
from _train_helpers import one_thread_per_test, write_folder  # noqa: E402,F401


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = write_folder(tmp_path_factory.mktemp("images") / "tiny", classes=("cat", "dog", "fox"),
                        per_class=(6, 3))
    from PIL import Image
    Image.new("L", (30, 20), 128).save(root / "train" / "fox" / "grey.JPEG")  # 1 channel, .JPEG
    (root / "train" / "cat" / "readme.txt").write_text("not an image: ignored")
    return root


def load(root, **kw):
    return common.load_data("imagefolder", root=root, device="cpu", verbose=False,
                            **{"crop_size": 16, "workers": 0, "smoke": False, **kw})


def test_the_folder_gives_classes_splits_and_labels(folder, capsys):
    d = common.load_data("imagefolder", root=folder, device="cpu", crop_size=16, workers=0,
                         smoke=False)
    assert "has no test/ folder: the test split is the val/ images" in capsys.readouterr().out
    assert d.classes == ("cat", "dog", "fox") and d.num_classes == 3
    assert (len(d.train), len(d.val), len(d.test)) == (19, 9, 9) and d.test is d.val
    assert d.train.y.tolist() == [0] * 6 + [1] * 6 + [2] * 7
    assert d.description == "imagefolder:tiny [16px crops]" and d.resize_size == 18
    assert torch.allclose(d.mean, torch.tensor(cdata.IMAGENET_MEAN))


def test_evaluation_batches_are_torchvisions_resize_centre_crop_and_normalize(folder):
    import torchvision.transforms as T
    from PIL import Image

    d = load(folder, crop_size=24)
    reference = T.Compose([T.Resize(27), T.CenterCrop(24), T.PILToTensor()])
    x, y = next(d.batches("val", 9))
    assert x.shape == (9, 3, 24, 24) and x.dtype == torch.float32
    for i in range(9):
        with Image.open(d.val.paths[i]) as f:
            ref = reference(f.convert("RGB"))
        mean, std = torch.tensor(cdata.IMAGENET_MEAN), torch.tensor(cdata.IMAGENET_STD)
        expected = (ref.float() / 255 - mean[:, None, None]) / std[:, None, None]
        torch.testing.assert_close(x[i], expected, atol=1e-5, rtol=0)
    assert y.tolist() == d.val.y.tolist()


def test_training_crops_are_torchvisions_random_resized_crop_and_flip_from_each_seed(folder):
    import torchvision.transforms as T
    from PIL import Image

    d = load(folder)
    g = torch.Generator().manual_seed(3)
    order = torch.randperm(len(d.train), generator=g)
    seeds = torch.randint(0, 2 ** 62, (len(d.train),), generator=g)
    x, _ = next(d.batches("train", 4, shuffle=True, augment=True,
                          generator=torch.Generator().manual_seed(3)))
    tf = T.Compose([T.RandomResizedCrop(16), T.RandomHorizontalFlip(), T.PILToTensor()])
    for j in range(4):
        torch.manual_seed(int(seeds[j]))
        with Image.open(d.train.paths[order[j]]) as f:
            ref = tf(f.convert("RGB"))
        torch.testing.assert_close(d.normalize(ref[None])[0], x[j], atol=1e-5, rtol=0)


def test_an_epoch_depends_on_its_seed_only_not_on_workers_or_processes(folder):
    d = load(folder)

    def epoch(seed=0, shard=(0, 1), workers=0):
        d.workers = workers
        g = torch.Generator().manual_seed(seed)
        return list(d.batches("train", 6, shuffle=True, augment=True, generator=g,
                              drop_last=True, shard=shard))

    whole = epoch()
    assert len(whole) == 3 and all(x.shape == (6, 3, 16, 16) for x, _ in whole)
    for (xa, ya), (xb, yb) in zip(whole, epoch(workers=2)):        # decoded in 2 workers
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    r0, r1 = epoch(shard=(0, 2)), epoch(shard=(1, 2))               # two processes' pieces
    for (x, y), (x0, y0), (x1, y1) in zip(whole, r0, r1):
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
    assert not torch.equal(epoch(seed=1)[0][0], whole[0][0])        # another epoch, other crops
    before = torch.get_rng_state()
    epoch()
    assert torch.equal(torch.get_rng_state(), before)      # the caller's random state untouched


def test_fit_and_evaluate_take_an_image_folder(folder, tmp_path):
    d = load(folder)
    torch.manual_seed(0)
    model = common.get_model("cifar_baseline", num_classes=3, widths=(8, 16, 32),
                             convs_per_stage=1)
    recipe = common.Recipe(epochs=2, batch_size=8, lr=0.05, schedule="constant")
    h = common.fit(model, d, recipe, run_dir=tmp_path, amp=False, smoke=False, quick=False,
                   progress=False, verbose=False)
    assert h["epoch"] == [1, 2] and h["dataset"] == "imagefolder:tiny [16px crops]"
    assert len(h["val_acc"]) == 2 and (tmp_path / "checkpoint.pt").exists()
    test = common.evaluate(model, d, "test", batch_size=4, amp=False)
    assert test["acc"] == pytest.approx(h["val_acc"][-1]) and 0 < test["loss"] < 20


def test_smoke_mode_keeps_a_seeded_subset_of_every_class(tmp_path, monkeypatch):
    monkeypatch.setitem(cdata.SMOKE_SIZES, "train", 12)
    root = write_folder(tmp_path / "f", classes=("a", "b", "c"), per_class=(8, 2))
    d = load(root, smoke=True)
    again = load(root, smoke=True)
    assert len(d.train) == 12 and d.train.paths == again.train.paths
    assert set(d.train.y.tolist()) == {0, 1, 2} and "[smoke subset]" in d.description


def test_no_folder_no_images_and_different_classes_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="There is no folder .*nowhere"):
        load(tmp_path / "nowhere")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "val").mkdir()
    with pytest.raises(ValueError, match="train holds no images: put each class's"):
        load(tmp_path / "empty")
    root = write_folder(tmp_path / "novalfolder")
    for f in (root / "val").rglob("*"):
        f.unlink() if f.is_file() else None
    with pytest.raises(ValueError, match="val holds no images"):
        load(root)
    root = write_folder(tmp_path / "noval")
    import shutil
    shutil.rmtree(root / "val")
    with pytest.raises(FileNotFoundError, match="has no val/ folder: the layout is"):
        load(root)
    root = write_folder(tmp_path / "mismatch")
    (root / "val" / "b").rename(root / "val" / "z")
    with pytest.raises(ValueError, match=r"hold different classes \(only in train/: b; only in "
                                         r"val/: z\)"):
        load(root)
    root = write_folder(tmp_path / "emptyclass")
    (root / "train" / "c").mkdir()
    with pytest.raises(ValueError, match="Class folders without images in .*train: c"):
        load(root)
    with pytest.raises(ValueError, match="needs root=PATH"):
        common.load_data("imagefolder")
    with pytest.raises(ValueError, match="val_fraction and split_seed do not apply"):
        common.load_data("imagefolder", root=root, val_fraction=0)
    with pytest.raises(TypeError, match="does not take crop_size"):
        common.load_data("digits", crop_size=32)


def test_a_file_that_is_not_an_image_is_named_when_it_is_decoded(tmp_path):
    root = write_folder(tmp_path / "f")
    (root / "val" / "b" / "broken.jpg").write_bytes(b"not a JPEG")
    d = load(root)
    for workers in (0, 1):                   # in this process, and from a DataLoader worker
        d.workers = workers
        with pytest.raises(ValueError, match=r"broken\.jpg cannot be read as an image .*replace "
                                             "the file or remove it"):
            list(d.batches("val", 8))
