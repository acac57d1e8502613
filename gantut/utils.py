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
    (:func:`gantut.plots.use_style`) and return the chosen device."""
    from .plots import use_style  # matplotlib only when a notebook sets up, not on import

    use_style()
    set_threads(threads)
    seed_everything(seed)
    return get_device(device)


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
