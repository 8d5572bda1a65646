"""Offline data sets: toy generators, digits, npz and image-folder loaders, model-space conventions."""
import math

import numpy as np
import pytest
import torch

from configs.default import get_default_configs
from sde_lib.mixture import two_mode_mixture
from scoredata import (DATASETS, TOY_SETS, data_range, get_dataset, is_image, n_bins, toy,
                       to_unit_images)


def _config(dataset="toy2d", shape=(2,), **data):
    c = get_default_configs()
    c.data.dataset = dataset
    c.data.shape = shape
    for k, v in data.items():
        setattr(c.data, k, v)
    return c


# ------------------------------------------------------------------------------------------ toy sets
@pytest.mark.parametrize("name", sorted(TOY_SETS))
def test_toy_sets_shape_scale_determinism(name):
    x = toy(name, 20000, torch.Generator().manual_seed(0))
    assert x.shape == (20000, 2) and x.dtype == torch.float32 and bool(torch.isfinite(x).all())
    rms = float(x.pow(2).mean().sqrt())
    assert 0.8 < rms < 1.4, rms                       # roughly unit scale
    assert float(x.mean(0).abs().max()) < 0.35        # roughly centred
    assert torch.equal(x, toy(name, 20000, torch.Generator().manual_seed(0)))
    assert not torch.equal(x, toy(name, 20000, torch.Generator().manual_seed(1)))


def test_two_mode_is_the_exact_mixture():
    mix = two_mode_mixture()
    x = toy("two_mode", 20000, torch.Generator().manual_seed(0))
    w = mix.mode_weights(x)
    assert abs(float(w[0]) - 0.2) < 0.012 and abs(float(w[1]) - 0.8) < 0.012   # binomial se 0.0028
    small = x[mix.component_index(x) == 0]
    assert torch.allclose(small.mean(0), torch.tensor([-2.4, -2.4]), atol=0.02)
    assert abs(float(small.std()) - 0.25) < 0.01


def test_toy_set_structure():
    g = torch.Generator().manual_seed(0)
    x = toy("eight_gaussians", 20000, g)
    angle = torch.arange(8) * 2 * math.pi / 8
    d = torch.cdist(x, 1.4 * torch.stack([angle.cos(), angle.sin()], 1))
    assert float(d.min(1).values.max()) < 0.6                       # std 0.1 around each centre
    frac = torch.bincount(d.argmin(1), minlength=8) / 20000.
    assert float((frac - 0.125).abs().max()) < 0.015               # equal weights (se 0.0023)
    cb = toy("checkerboard", 20000, g)
    assert float(cb.abs().max()) <= 2.0
    assert bool((torch.remainder(torch.floor(cb[:, 0]) + torch.floor(cb[:, 1]), 2) == 0).all())  # even squares
    assert len(torch.unique(torch.floor(cb), dim=0)) == 8
    m = toy("moons", 20000, g) / 1.4 + torch.tensor([0.5, 0.25])     # back to the raw half circles
    dist = torch.minimum((m.norm(dim=1) - 1).abs(), ((m - torch.tensor([1., 0.5])).norm(dim=1) - 1).abs())
    assert float(dist.max()) < 0.5                                 # noise std 0.1
    sr = toy("swiss_roll", 20000, g) * 7.
    phase = torch.cos(torch.atan2(sr[:, 1], sr[:, 0]) - sr.norm(dim=1))  # on the spiral r = theta
    assert float(torch.quantile(phase, 0.01)) > 0.5
    wrong = torch.randn(20000, 2, generator=g) * 7.                 # a blob fails the spiral check
    assert float(torch.quantile(torch.cos(torch.atan2(wrong[:, 1], wrong[:, 0]) - wrong.norm(dim=1)), 0.01)) < 0


def test_toy_errors():
    with pytest.raises(ValueError, match="name"):
        toy("spiral", 10)
    with pytest.raises(ValueError, match="n"):
        toy("moons", 0)
    with pytest.raises(ValueError, match="generator"):
        toy("moons", 10, generator=3)


def test_toy2d_dataset_splits():
    c = _config(toy="moons", n_train=500, n_test=200)
    tr, te = get_dataset(c, "train"), get_dataset(c, "test")
    assert tr.shape == (500, 2) and te.shape == (200, 2)
    assert not torch.equal(tr[:200], te)                           # independent streams per split
    assert torch.equal(tr, get_dataset(c, "train"))                # deterministic
    c.seed = 43
    assert not torch.equal(tr, get_dataset(c, "train"))            # follows config.seed
    assert data_range(c) is None and n_bins(c) is None and not is_image(c)


# ------------------------------------------------------------------------------------------ digits
@pytest.fixture(scope="module")
def digits():
    c = _config("digits", (1, 8, 8))
    return c, get_dataset(c, "train"), get_dataset(c, "test")


def test_digits_split_and_levels(digits):
    from sklearn.datasets import load_digits
    c, tr, te = digits
    assert tr.shape == (1497, 1, 8, 8) and te.shape == (300, 1, 8, 8) and tr.dtype == torch.float32
    k = torch.cat([tr, te]) * 17
    assert torch.allclose(k, k.round(), atol=1e-5)                   # level k -> k / 17
    assert float(k.min()) == 0 and round(float(k.max())) == 16
    assert data_range(c) == (0., 1.) and n_bins(c) == 17 and is_image(c)
    # train + test is the whole data set (as a multiset of images), so the split is disjoint
    raw = torch.from_numpy(load_digits().images).reshape(-1, 64).double()
    mine = k.reshape(-1, 64).round().double()
    assert torch.equal(torch.unique(raw, dim=0, return_counts=True)[1].sort().values,
                       torch.unique(mine, dim=0, return_counts=True)[1].sort().values)
    assert torch.equal(torch.unique(raw, dim=0), torch.unique(mine, dim=0))
    # the split is fixed: it does not move with config.seed
    c2 = _config("digits", (1, 8, 8))
    c2.seed = 7
    assert torch.equal(get_dataset(c2, "test"), te)


def test_digits_bins_make_bits_per_dim_exact(digits):
    """Dequantized x + U[0, 1) (b - a) / n stays in level k's bin and inside data_range."""
    c, tr, _ = digits
    a, b = data_range(c)
    n = n_bins(c)
    u = torch.rand(tr.shape, generator=torch.Generator().manual_seed(0)) * 0.999
    xt = tr + u * (b - a) / n
    assert float(xt.min()) >= a and float(xt.max()) < b
    assert torch.equal(torch.floor((xt - a) / (b - a) * n), torch.round((tr - a) / (b - a) * n))


def test_digits_centered(digits):
    _, tr, _ = digits
    c = _config("digits", (1, 8, 8), centered=True)
    trc = get_dataset(c, "train")
    assert torch.allclose(trc, 2 * tr - 1, atol=1e-6)
    assert data_range(c) == (-1., 1.) and float(trc.min()) == -1.
    assert torch.allclose(to_unit_images(trc, c), to_unit_images(tr, _config("digits", (1, 8, 8))))


def test_to_unit_images(digits):
    c, tr, _ = digits
    u = to_unit_images(tr, c)
    assert u.shape == tr.shape and float(u.min()) == 0. and float(u.max()) == 1.
    assert torch.allclose(u * 16, (tr * 17).round(), atol=1e-4)      # level k -> k / 16 (top level white)
    assert float(to_unit_images(tr + 5., c).max()) == 1.              # samples out of range are clipped
    with pytest.raises(ValueError, match="x"):
        to_unit_images(torch.zeros(4, 2), _config())
    with pytest.raises(ValueError, match="x"):
        to_unit_images(torch.zeros(4, 1, 4, 4), c)


# ------------------------------------------------------------------------------------------ npz
def _levels(n, shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def test_npz_train_test_hwc(tmp_path):
    tr, te = _levels(20, (4, 5, 3)), _levels(6, (4, 5, 3), 1)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=tr, x_test=te)
    c = _config("npz", (3, 4, 5), path=str(path))
    xtr, xte = get_dataset(c, "train"), get_dataset(c, "test")
    assert xtr.shape == (20, 3, 4, 5) and xte.shape == (6, 3, 4, 5)
    assert torch.equal(xtr * 256, torch.from_numpy(tr.transpose(0, 3, 1, 2)).float())   # k -> k / 256, CHW
    assert data_range(c) == (0., 1.) and n_bins(c) == 256 and is_image(c)
    assert torch.allclose(to_unit_images(xte, c) * 255, torch.from_numpy(te.transpose(0, 3, 1, 2)).float())
    c.data.n_bins = 16                                               # keep the top 4 bits
    assert torch.equal(get_dataset(c, "train") * 16, torch.from_numpy(tr.transpose(0, 3, 1, 2) // 16).float())


def test_npz_keys_layouts_and_single_array(tmp_path):
    a = _levels(10, (1, 3, 3))
    np.savez(tmp_path / "chw.npz", train=a, test=a[:2])
    assert get_dataset(_config("npz", (1, 3, 3), path=str(tmp_path / "chw.npz")), "test").shape == (2, 1, 3, 3)
    np.savez(tmp_path / "gray.npz", train=a[:, 0], test=a[:2, 0])   # [n, H, W]
    assert torch.equal(get_dataset(_config("npz", (1, 3, 3), path=str(tmp_path / "gray.npz")), "train") * 256,
                       torch.from_numpy(a).float())
    x = _levels(50, (2, 2, 1))
    np.savez(tmp_path / "one.npz", x=x)
    c = _config("npz", (1, 2, 2), path=str(tmp_path / "one.npz"))
    tr, te = get_dataset(c, "train"), get_dataset(c, "test")
    assert tr.shape[0] == 45 and te.shape[0] == 5                   # test_fraction 0.1
    rows = lambda t: sorted(map(tuple, (t * 256).round().reshape(t.shape[0], -1).int().tolist()))
    assert rows(torch.cat([tr, te])) == rows(torch.from_numpy(x).float() / 256)   # a partition of x
    assert torch.equal(te, get_dataset(c, "test"))


def test_npz_errors(tmp_path):
    with pytest.raises(ValueError, match=r"config\.data\.path.*x_train"):
        get_dataset(_config("npz", (1, 3, 3), path=str(tmp_path / "missing.npz")), "train")
    with pytest.raises(ValueError, match=r"config\.data\.path is not set"):
        get_dataset(_config("npz", (1, 3, 3)), "train")
    np.savez(tmp_path / "d.npz", x_train=_levels(4, (3, 3, 1)), x_test=_levels(2, (3, 3, 1)))
    with pytest.raises(ValueError, match=r"config\.data\.shape.*\(3, 3, 1\)"):
        get_dataset(_config("npz", (3, 4, 4), path=str(tmp_path / "d.npz")), "train")
    np.savez(tmp_path / "k.npz", images=_levels(4, (3, 3, 1)))
    with pytest.raises(ValueError, match=r"config\.data\.path.*'images'"):
        get_dataset(_config("npz", (1, 3, 3), path=str(tmp_path / "k.npz")), "train")
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"config\.data\.path.*could not be read"):
        get_dataset(_config("npz", (1, 3, 3), path=str(tmp_path / "bad.npz")), "train")
    np.savez(tmp_path / "big.npz", x_train=np.full((2, 1, 3, 3), 300), x_test=np.zeros((2, 1, 3, 3), int))
    with pytest.raises(ValueError, match=r"config\.data\.path.*\[0, 255\]"):
        get_dataset(_config("npz", (1, 3, 3), path=str(tmp_path / "big.npz")), "train")


# ------------------------------------------------------------------------------------------ image folder
def _write_pngs(folder, arrays):
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(folder / f"img_{i:03d}.png")


def test_image_folder_train_test(tmp_path):
    tr, te = _levels(7, (4, 4, 3)), _levels(3, (4, 4, 3), 1)
    _write_pngs(tmp_path / "train" / "class_a", tr[:4])
    _write_pngs(tmp_path / "train" / "class_b", tr[4:])
    _write_pngs(tmp_path / "test", te)
    c = _config("image_folder", (3, 4, 4), path=str(tmp_path))
    xtr, xte = get_dataset(c, "train"), get_dataset(c, "test")
    assert xtr.shape == (7, 3, 4, 4) and xte.shape == (3, 3, 4, 4)
    assert torch.equal(xtr * 256, torch.from_numpy(tr.transpose(0, 3, 1, 2)).float())  # sorted paths, lossless PNG
    assert torch.equal(xte * 256, torch.from_numpy(te.transpose(0, 3, 1, 2)).float())


def test_image_folder_flat_split_and_gray(tmp_path):
    imgs = _levels(20, (5, 5))
    _write_pngs(tmp_path, imgs)
    c = _config("image_folder", (1, 5, 5), path=str(tmp_path), test_fraction=0.25, centered=True)
    tr, te = get_dataset(c, "train"), get_dataset(c, "test")
    assert tr.shape == (15, 1, 5, 5) and te.shape == (5, 1, 5, 5)
    k = ((torch.cat([tr, te]) + 1) / 2 * 256).round().reshape(20, -1)
    assert sorted(map(tuple, k.int().tolist())) == sorted(map(tuple, imgs.reshape(20, -1).tolist()))
    assert data_range(c) == (-1., 1.)


def test_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match=r"config\.data\.path.*does not exist.*train/ and test/"):
        get_dataset(_config("image_folder", (1, 4, 4), path=str(tmp_path / "nope")), "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"config\.data\.path.*no images"):
        get_dataset(_config("image_folder", (1, 4, 4), path=str(tmp_path / "empty")), "train")
    _write_pngs(tmp_path / "only" / "train", _levels(2, (4, 4)))
    with pytest.raises(ValueError, match=r"config\.data\.path.*no test/"):
        get_dataset(_config("image_folder", (1, 4, 4), path=str(tmp_path / "only")), "train")
    _write_pngs(tmp_path / "size", _levels(4, (6, 5)))
    with pytest.raises(ValueError, match=r"config\.data\.shape.*\(6, 5\)"):
        get_dataset(_config("image_folder", (1, 4, 4), path=str(tmp_path / "size")), "train")


# ------------------------------------------------------------------------------------------ config errors
def test_config_errors():
    with pytest.raises(ValueError, match=r"config\.data\.dataset"):
        get_dataset(_config("cifar"), "train")
    with pytest.raises(ValueError, match="split"):
        get_dataset(_config(), "valid")
    with pytest.raises(ValueError, match=r"config\.data\.toy"):
        get_dataset(_config(toy="spirals"), "train")
    with pytest.raises(ValueError, match=r"config\.data\.shape.*\(2,\)"):
        get_dataset(_config(shape=(3,)), "train")
    with pytest.raises(ValueError, match=r"config\.data\.shape.*\(1, 8, 8\)"):
        get_dataset(_config("digits", (1, 28, 28)), "train")
    with pytest.raises(ValueError, match=r"config\.data\.shape"):
        get_dataset(_config("npz", (784,), path="x.npz"), "train")
    assert set(DATASETS) == {"toy2d", "digits", "npz", "image_folder"}


# ------------------------------------------------------------------------------------------ bad files (issue 10)
def test_npz_values_dtypes_and_empty_arrays_are_refused(tmp_path):
    """Non-finite floats name the file and key; bool / strings / complex are refused; empty arrays too."""
    good = (_levels(4, (1, 3, 3)) / 255.).astype(np.float32)
    nan = good.copy()
    nan[1, 0, 2, 2] = np.nan
    np.savez(tmp_path / "nan.npz", x_train=nan, x_test=good)
    with pytest.raises(ValueError, match=r"nan\.npz\['x_train'\].*1 non-finite value"):
        get_dataset(_config("npz", (1, 3, 3), path=str(tmp_path / "nan.npz")), "train")
    inf = good.copy()
    inf[0, 0, 0, 0] = np.inf
    np.savez(tmp_path / "inf.npz", x_train=good, x_test=inf)
    with pytest.raises(ValueError, match=r"inf\.npz\['x_test'\].*non-finite"):
        get_dataset(_config("npz", (1, 3, 3), path=str(tmp_path / "inf.npz")), "test")
    for name, arr in (("bool", np.ones((4, 1, 3, 3), bool)), ("str", np.full((4, 1, 3, 3), "a")),
                      ("complex", np.ones((4, 1, 3, 3), np.complex64))):
        np.savez(tmp_path / f"{name}.npz", x_train=arr, x_test=arr)
        with pytest.raises(ValueError, match=rf"{name}\.npz\['x_train'\] has dtype .*expected uint8"):
            get_dataset(_config("npz", (1, 3, 3), path=str(tmp_path / f"{name}.npz")), "train")
    np.savez(tmp_path / "empty.npz", x_train=np.zeros((0, 1, 3, 3), np.uint8), x_test=_levels(2, (1, 3, 3)))
    with pytest.raises(ValueError, match=r"empty\.npz\['x_train'\] is empty"):
        get_dataset(_config("npz", (1, 3, 3), path=str(tmp_path / "empty.npz")), "train")
    np.savez(tmp_path / "empty1.npz", x=np.zeros((0, 1, 3, 3), np.uint8))
    with pytest.raises(ValueError, match=r"empty1\.npz\['x'\] is empty"):
        get_dataset(_config("npz", (1, 3, 3), path=str(tmp_path / "empty1.npz")), "test")


def test_data_path_of_another_kind(tmp_path):
    """A .npy, a folder or a PNG where a .npz is expected, a file where a folder is expected: one line
    naming config.data.path and what it is."""
    np.save(tmp_path / "arr.npy", _levels(4, (1, 3, 3)))
    with pytest.raises(ValueError, match=r"config\.data\.path.*arr\.npy.*single array.*\.npz"):
        get_dataset(_config("npz", (1, 3, 3), path=str(tmp_path / "arr.npy")), "train")
    with pytest.raises(ValueError, match=r"config\.data\.path.*is a folder.*\.npz"):
        get_dataset(_config("npz", (1, 3, 3), path=str(tmp_path)), "train")
    _write_pngs(tmp_path / "imgs", _levels(2, (3, 3)))
    with pytest.raises(ValueError, match=r"config\.data\.path.*could not be read as \.npz"):
        get_dataset(_config("npz", (1, 3, 3), path=str(tmp_path / "imgs" / "img_000.png")), "train")
    with pytest.raises(ValueError, match=r"config\.data\.path.*arr\.npy.* is a file.*folder"):
        get_dataset(_config("image_folder", (1, 3, 3), path=str(tmp_path / "arr.npy")), "train")


def test_corrupt_image_in_a_folder_names_the_file(tmp_path):
    _write_pngs(tmp_path / "train", _levels(3, (4, 4)))
    _write_pngs(tmp_path / "test", _levels(2, (4, 4)))
    (tmp_path / "train" / "img_001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    c = _config("image_folder", (1, 4, 4), path=str(tmp_path))
    with pytest.raises(ValueError, match=r"config\.data\.path: image .*train/img_001\.png.* could not be read"):
        get_dataset(c, "train")
    assert get_dataset(c, "test").shape == (2, 1, 4, 4)
