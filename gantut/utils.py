"""Seeding, device choice, torch threads and the figure style: what every notebook starts with."""

from __future__ import annotations

import os
import random
from contextlib import contextmanager

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so that a run is reproducible."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` means CUDA when a GPU is present, else the CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def set_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads: ``threads``, else ``GANTUT_THREADS``, else 1.

    One thread is the default on purpose: the models here are small, and on a 2-core
    machine two threads made training 10-100x slower as soon as another process was busy,
    while one thread was unaffected.
    """
    threads = int(threads or os.environ.get("GANTUT_THREADS", 1))
    torch.set_num_threads(threads)
    return threads


def setup(seed: int = 0, device: str = "auto", threads: int | None = None) -> torch.device:
    """Seed everything, set the torch threads, apply the figure style
    (:func:`gantut.plots.use_style`) and return the chosen device.

    With ``GANTUT_DETERMINISTIC=1`` it also makes GPU runs repeatable (:func:`deterministic`).
    """
    from .plots import use_style  # matplotlib only when a notebook sets up, not on import

    use_style()
    set_threads(threads)
    if os.environ.get("GANTUT_DETERMINISTIC", "0") == "1":
        deterministic()
    seed_everything(seed)
    return get_device(device)


def deterministic() -> None:
    """Make CUDA runs repeatable: the same seed then gives the same numbers on the same GPU.

    Sets ``torch.use_deterministic_algorithms`` (ops with no deterministic GPU kernel warn),
    cuDNN's deterministic convolutions without autotuning, TF32 off for convolutions and
    matrix products, and ``CUBLAS_WORKSPACE_CONFIG`` (needed for deterministic cuBLAS; it
    must be set before the first matrix product on the GPU). The cost is GPU speed only:
    cuDNN can no longer pick its fastest convolution, and float32 products run without
    TF32. A CPU run is deterministic already and unaffected. It does not make a GPU give
    the CPU's numbers: the kernels differ, so results agree to rounding, not bit for bit.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


@contextmanager
def seeded(seed: int):
    """Run a block under ``seed``, then restore every random state it changed.

    Measuring and drawing pictures during training use it, so they see the same noise
    every time and leave the run's random streams as they were -- on the CPU and on every
    GPU (``torch.manual_seed`` reseeds the GPUs too, so forking the CPU alone would not do).
    """
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        torch.manual_seed(seed)
        yield


@contextmanager
def evaluating(*models: torch.nn.Module):
    """Put ``models`` in eval mode for a ``with`` block, then restore each one's mode.

    Sampling and measuring must not leave a network in eval mode halfway through training
    (dropout and batch norm behave differently there)::

        with evaluating(G), torch.no_grad():
            images = G(z)
    """
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        yield models[0] if len(models) == 1 else models
    finally:
        for m, mode in zip(models, modes, strict=True):
            m.train(mode)
