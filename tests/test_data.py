"""common.data: the split, the statistics, the batched augmentation, the offline set, the
errors."""
import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

import common
from common import data as cdata


class FakeCIFAR10:
    """Stands in for torchvision's CIFAR10 (no network): image i carries i in its first pixels."""
    calls = []
    cache = {}

    def __init__(self, root, train=True, download=False):
        FakeCIFAR10.calls.append((train, download))
        if train not in self.cache:
            self.cache[train] = self.make(train)
        self.data, self.targets = self.cache[train]

    @staticmethod
    def make(train):
        n = 50_000 if train else 10_000
        g = np.random.default_rng(1 if train else 2)
        data = g.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        idx = np.arange(n)
        data[:, 0, 0, 0], data[:, 0, 1, 0], data[:, 0, 2, 0] = (
            idx % 256, (idx // 256) % 256, idx // 65536)
        return data, list(idx % 10)


def image_ids(x):
    x = x.long()
    return (x[:, 0, 0, 0] + 256 * x[:, 0, 0, 1] + 65536 * x[:, 0, 0, 2]).tolist()


@pytest.fixture(scope="module")
def small():
    """The offline set in smoke size, loaded once for the tests that only read it."""
    return common.load_data("digits", smoke=True, device="cpu", verbose=False)


@pytest.fixture
def fake_cifar(monkeypatch, tmp_path):
    import torchvision.datasets
    FakeCIFAR10.calls = []
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    return tmp_path


def test_cifar10_split_is_45k_5k_10k_disjoint_and_complete(fake_cifar):
    d = common.load_data("cifar10", root=fake_cifar, smoke=False, device="cpu", verbose=False)
    assert (len(d.train), len(d.val), len(d.test)) == (45_000, 5_000, 10_000)
    assert d.name == "cifar10" and not d.offline and d.classes == cdata.CIFAR10_CLASSES
    train, val = image_ids(d.train.x), image_ids(d.val.x)
    assert not set(train) & set(val)
    assert sorted(train + val) == list(range(50_000))
    assert d.train.x.dtype == torch.uint8 and d.train.x.shape[1:] == (3, 32, 32)
    assert d.train.y.dtype == torch.int64
    # the same split on every call (fixed seed)
    again = common.load_data("cifar10", root=fake_cifar, smoke=False, device="cpu", verbose=False)
    assert image_ids(again.val.x) == val


def test_statistics_come_from_the_training_split_only(fake_cifar):
    d = common.load_data("cifar10", root=fake_cifar, smoke=False, device="cpu", verbose=False)
    pixels = d.train.x.double().div(255).transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(d.mean, pixels.mean(1).float())
    torch.testing.assert_close(d.std, pixels.std(1, unbiased=False).float())
    # normalised training pixels have mean 0 and std 1 per channel
    x = d.normalize(d.train.x[:4000])
    full = d.normalize(d.train.x)
    assert full.mean((0, 2, 3)).abs().max() < 1e-3 and (full.std((0, 2, 3)) - 1).abs().max() < 1e-3
    assert x.dtype == torch.float32


def test_reference_cifar_std_is_the_right_one():
    # The per-pixel std over all training images, not the often copied mean of per-image stds.
    assert cdata.CIFAR10_STD == pytest.approx((0.247, 0.2435, 0.2616), abs=1e-3)
    assert cdata.CIFAR10_STD[0] != pytest.approx(0.2023, abs=1e-3)


def test_channel_stats_matches_numpy():
    x = torch.randint(0, 256, (37, 3, 5, 7), dtype=torch.uint8)
    mean, std = cdata.channel_stats(x)
    a = x.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(mean.numpy(), a.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(std.numpy(), a.std(axis=(0, 2, 3)), rtol=1e-5)


def test_augmentation_equals_torchvision_crop_and_flip_image_by_image(small):
    d = small
    batch = d.train.x[:100]
    out = d.augment(batch, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    ox, oy = torch.randint(0, 9, (100,), generator=g), torch.randint(0, 9, (100,), generator=g)
    flip = torch.rand(100, generator=g) < 0.5
    assert 20 < int(flip.sum()) < 80
    for i in range(100):
        ref = TF.crop(TF.pad(batch[i], [4]), int(oy[i]), int(ox[i]), 32, 32)
        assert torch.equal(out[i], TF.horizontal_flip(ref) if flip[i] else ref)
    assert out.dtype == torch.uint8 and out.shape == batch.shape


def test_augmentation_really_moves_and_flips(small):
    d = small
    x = d.train.x[:64]
    out = d.augment(x, generator=torch.Generator().manual_seed(0))
    changed = (out != x).flatten(1).any(1)
    assert changed.float().mean() > 0.8          # 1/81 * 1/2 chance of staying put per image


def test_batches_cover_the_split_and_drop_last(small):
    d = small
    ys = torch.cat([y for _, y in d.batches("val", 100, shuffle=True,
                                             generator=torch.Generator().manual_seed(0))])
    assert sorted(ys.tolist()) == sorted(d.val.y.tolist())
    sizes = [len(y) for _, y in d.batches("train", 100, drop_last=True)]
    assert sizes == [100] * (len(d.train) // 100)
    x, _ = next(d.batches("train", 8))
    torch.testing.assert_close(x, d.normalize(d.train.x[:8]))


def test_digits_is_real_and_balanced():
    d = common.load_data("digits", smoke=False, device="cpu", verbose=False)
    assert d.offline and d.name == "digits" and d.num_classes == 10
    assert len(d.train) + len(d.val) + len(d.test) == 1797
    counts = torch.bincount(d.train.y, minlength=10)
    assert counts.min() > 0.8 * counts.float().mean()
    assert "offline stand-in" in d.description


def test_digits_are_scikit_learns_read_without_importing_it(monkeypatch):
    """The file read directly (each new process saves scikit-learn's import) gives
    load_digits()'s arrays; without that file, load_digits() itself is used."""
    import importlib.util

    from sklearn.datasets import load_digits

    ref = load_digits()
    for find_spec in (importlib.util.find_spec, lambda name: None):   # the file, then without
        monkeypatch.setattr(importlib.util, "find_spec", find_spec)
        images, target = cdata._digits_arrays()
        assert np.array_equal(images, ref.images) and np.array_equal(target, ref.target)
        assert images.shape == (1797, 8, 8) and target.dtype.kind == "i"


def test_smoke_mode_shrinks_every_split():
    d = common.load_data("digits", smoke=True, device="cpu", verbose=False)
    full = common.load_data("digits", smoke=False, device="cpu", verbose=False)
    for split in ("train", "val", "test"):
        assert len(d[split]) == min(cdata.SMOKE_SIZES[split], len(full[split]))
    assert len(d.train) < len(full.train)
    assert d.smoke and "smoke" in d.description


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ValueError, match=r"Unknown dataset 'cifar100'.*cifar10.*digits"):
        common.load_data("cifar100")


def test_a_file_as_data_directory_is_a_clear_error(tmp_path):
    f = tmp_path / "not-a-dir"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="IMAGENET5_DATA"):
        common.load_data("cifar10", root=f)


def test_offline_without_data_says_how_to_get_it(tmp_path):
    assert common.OFFLINE            # set by conftest: no download is even tried
    with pytest.raises(cdata.DataUnavailable,
                       match=r"cifar-10-python.tar.gz.*load_data\('digits'\)"):
        common.load_data("cifar10", root=tmp_path, fallback=False)


def test_offline_fallback_is_announced_loudly_and_recorded(tmp_path, capsys):
    d = common.load_data("cifar10", root=tmp_path, smoke=True, device="cpu")
    out = capsys.readouterr().out
    assert "OFFLINE STAND-IN" in out and "NOT a CIFAR-10 number" in out
    assert str(tmp_path) in out              # points at the folder that was searched
    assert d.offline and d.name == "digits" and "CIFAR-10" in d.note


def test_failed_download_is_a_clear_error(monkeypatch, tmp_path):
    import torchvision.datasets

    class NoNetwork:
        def __init__(self, root, train=True, download=False):
            if download:
                raise OSError("Temporary failure in name resolution")
            raise RuntimeError("Dataset not found or corrupted.")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", NoNetwork)
    monkeypatch.setattr(common, "OFFLINE", False)
    with pytest.raises(cdata.DataUnavailable, match=r"could not be downloaded.*name resolution"):
        common.load_data("cifar10", root=tmp_path / "new", fallback=False)


def test_data_on_disk_is_used_without_download(fake_cifar):
    common.load_data("cifar10", root=fake_cifar, smoke=True, device="cpu", verbose=False)
    assert all(dl is False for _, dl in FakeCIFAR10.calls)


def test_unknown_split_is_a_clear_error(small):
    d = small
    with pytest.raises(ValueError, match="'train', 'val' or 'test'"):
        next(d.batches("validation", 8))


def test_val_fraction_zero_trains_on_all_50k(fake_cifar):
    d = common.load_data("cifar10", root=fake_cifar, smoke=False, device="cpu", val_fraction=0,
                         verbose=False)
    assert (len(d.train), len(d.val), len(d.test)) == (50_000, 0, 10_000)
    assert sorted(image_ids(d.train.x)) == list(range(50_000))
    assert d.val.x.shape == (0, 3, 32, 32) and list(d.batches("val", 128)) == []
    assert "no validation split" in d.description
    default = common.load_data("cifar10", root=fake_cifar, smoke=False, device="cpu",
                               verbose=False)
    assert default.description == "cifar10"        # the default split keeps its old name


def test_every_non_default_split_has_its_own_description(small):
    names = {common.load_data("digits", smoke=True, device="cpu", verbose=False, **kw).description
             for kw in ({}, {"val_fraction": 0}, {"val_fraction": 0.2}, {"split_seed": 1})}
    assert len(names) == 4 and small.description in names


@pytest.mark.parametrize("bad", [1, 1.5, -0.1, "0.1"])
def test_bad_val_fraction_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\).*0 trains on all"):
        common.load_data("digits", val_fraction=bad, verbose=False)


def test_quick_mode_cuts_cifar10_to_the_quick_sizes_and_smoke_wins(fake_cifar):
    d = common.load_data("cifar10", root=fake_cifar, quick=True, smoke=False, device="cpu",
                         verbose=False)
    assert (len(d.train), len(d.val), len(d.test)) == tuple(cdata.QUICK_SIZES.values())
    assert d.quick and not d.smoke and d.description == "cifar10 [quick mode]"
    assert len(set(d.train.y.tolist())) == 10                        # a random subset
    s = common.load_data("cifar10", root=fake_cifar, quick=True, smoke=True, device="cpu",
                         verbose=False)
    assert len(s.train) == cdata.SMOKE_SIZES["train"] and s.smoke and not s.quick


def test_mode_flags_set_on_common_reach_the_code_that_reads_them(fake_cifar, monkeypatch):
    """common.SMOKE / QUICK / OFFLINE are common.runtime's flags, not copies: setting them on
    the package (a notebook, a monkeypatch) changes what load_data and fit do."""
    from common import runtime

    assert common.SMOKE is runtime.SMOKE is True       # conftest sets IMAGENET5_SMOKE=1
    monkeypatch.setattr(common, "SMOKE", False)
    monkeypatch.setattr(common, "QUICK", True)
    assert (runtime.SMOKE, runtime.QUICK) == (False, True)
    d = common.load_data("cifar10", root=fake_cifar, device="cpu", verbose=False)
    assert d.quick and not d.smoke and len(d.train) == cdata.QUICK_SIZES["train"]
    monkeypatch.setattr(runtime, "OFFLINE", False)       # and the other way round
    assert common.OFFLINE is False
    assert {"SMOKE", "QUICK", "OFFLINE"} <= set(dir(common))


def test_quick_mode_keeps_the_small_offline_set_whole():
    full = common.load_data("digits", smoke=False, device="cpu", verbose=False)
    quick = common.load_data("digits", quick=True, smoke=False, device="cpu", verbose=False)
    assert len(quick.train) == len(full.train) and "quick mode" in quick.description


@pytest.mark.parametrize("flips", ["drawn", "none", "all"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_augmentation_on_a_cpu_slices_the_same_images_as_the_gather_bit_for_bit(small, flips,
                                                                               dtype):
    """On a CPU augment crops each image as a slice (faster there); other devices use one
    indexed gather of the batch. Both must give the same images for the same draws."""
    from common.bundle import _crop_flip_gather, _crop_flip_slices, crop_flip_draws
    x = small.train.x[:50].to(dtype)
    for seed in range(5):
        ox, oy, flip = crop_flip_draws(len(x), torch.Generator().manual_seed(seed))
        flip = {"drawn": flip, "none": torch.zeros_like(flip),
                "all": torch.ones_like(flip)}[flips]
        sliced = _crop_flip_slices(x, ox, oy, flip, 4)
        assert sliced.dtype == dtype and sliced.shape == x.shape
        assert torch.equal(sliced, _crop_flip_gather(x, ox, oy, flip, 4))
    g = torch.Generator().manual_seed(7)
    assert torch.equal(small.augment(x, generator=g),
                       _crop_flip_gather(x, *crop_flip_draws(len(x),
                                                             torch.Generator().manual_seed(7)),
                                         4))
