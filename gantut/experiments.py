"""Comparisons over seeds: train each configuration with several seeds, collect one table.

A single GAN run says little: the same settings can cover 8 modes with one seed and 3 with
the next. The notebooks of section 5 therefore compare configurations the same way::

    def run(name, seed, **config):          # one run -> a dict of numbers
        trainer = toy_gan(ring, seed=seed, steps=p.toy_steps, **config)
        return mode_coverage(trainer.sample(2000), ring)

    table = over_seeds(run, {"minimax": {"loss": "minimax"}, ...}, seeds=range(3))
    summarise(table)                        # mean and std per configuration

:func:`toy_gan` is the tutorial's 2-D GAN: the source's MLPs (two hidden layers of 128,
LeakyReLU) with 2-d noise and 2-d output, trained on points drawn once from a toy mixture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from .data import ToyData
from .models import MLPDiscriminator, MLPGenerator
from .train import GANTrainer
from .utils import seed_everything


class InstanceNoise(nn.Module):
    """D behind instance noise: Gaussian noise of std ``sigma`` added to every input it judges
    while training, real and generated alike, so that the two distributions overlap and D's
    gradient stays informative (Arjovsky & Bottou 2017; Sønderby et al. 2017). In eval mode
    (plots, metrics) D sees its inputs unchanged."""

    def __init__(self, D: nn.Module, sigma: float):
        super().__init__()
        self.D, self.sigma = D, sigma

    def forward(self, x):
        if self.training and self.sigma > 0:
            x = x + self.sigma * torch.randn_like(x)
        return self.D(x)


def toy_gan(toy: ToyData, *, steps: int, seed: int = 0, loss: str = "nonsaturating",
            spectral_norm: bool = False, instance_noise: float = 0.0, z_dim: int = 2,
            n_data: int = 10_000, batch_size: int = 128, lr: float = 1e-3, device="cpu",
            callbacks=(), **settings) -> GANTrainer:
    """Train a 2-D GAN on ``n_data`` points of ``toy`` for ``steps`` steps; returns the trainer.

    ``seed`` fixes the data, the initial weights and the batches, so a run is reproducible.
    ``spectral_norm`` wraps D's layers in spectral normalisation; ``instance_noise`` puts D
    behind :class:`InstanceNoise` of that std, annealed linearly to 0 over the run. Other
    keyword arguments (``n_critic``, ``betas``, ``gp_weight``, ...) go to
    :class:`~gantut.train.GANTrainer`; ``callbacks`` are ``(every, fn)`` pairs for
    :meth:`~gantut.train.Trainer.fit` (to watch the run).
    """
    seed_everything(seed)
    x = toy.sample(n_data)
    G = MLPGenerator(z_dim=z_dim, out_shape=(2,), out_act=None)
    D = MLPDiscriminator(in_shape=(2,), spectral_norm=spectral_norm)
    if instance_noise:
        D = InstanceNoise(D, instance_noise)
        anneal = (1, lambda tr: setattr(D, "sigma", instance_noise * (1 - tr.step / steps)))
        callbacks = [anneal, *callbacks]
    trainer = GANTrainer(G, D, loss=loss, lr_g=lr, lr_d=lr, batch_size=batch_size,
                         device=device, **settings)
    return trainer.fit(x, steps=steps, callbacks=callbacks, progress=False)


def over_seeds(run: Callable[..., dict], configs: dict[str, dict], seeds: Iterable[int]):
    """Call ``run(name, seed, **config)`` for every configuration and seed.

    ``run`` returns a dict of numbers. Returns a pandas DataFrame with one row per run:
    columns ``config``, ``seed``, then the numbers, then ``seconds`` (wall time of the run,
    which includes evaluation and is inflated on a shared machine).
    """
    import time

    import pandas as pd

    seeds = list(seeds)
    if not configs or not seeds:
        raise ValueError("over_seeds needs at least one configuration and one seed")
    rows = []
    for name, config in configs.items():
        for seed in seeds:
            t0 = time.perf_counter()
            numbers = run(name, seed, **config)
            if not isinstance(numbers, dict):
                raise TypeError(f"run({name!r}, {seed}) returned {type(numbers).__name__}: "
                                "it must return a dict of numbers")
            rows.append({"config": name, "seed": seed, **numbers,
                         "seconds": round(time.perf_counter() - t0, 2)})
    return pd.DataFrame(rows)


def summarise(table, columns: Iterable[str] | None = None):
    """Mean and standard deviation of ``columns`` (default: every numeric one but ``seed``)
    per configuration, in the order the configurations were run."""
    numeric = table.drop(columns="seed").select_dtypes("number").columns
    columns = list(numeric if columns is None else columns)
    order = list(dict.fromkeys(table["config"]))
    return table.groupby("config", sort=False)[columns].agg(["mean", "std"]).loc[order]
