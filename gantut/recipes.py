"""Named training recipes: which models, which loss and which optimiser settings.

One place holds the settings that the notebooks, the benchmarks and the command line
share, so "the DCGAN recipe" means the same thing everywhere::

    trainer = make_trainer("seed-mlp")            # a GANTrainer, ready to fit
    trainer.fit(mnist.train_x, steps=p.gan_steps)

``seed-mlp-source`` is the source article's recipe as literally as it can be run
(minimax loss, batch 64, Adam 2e-4); ``seed-mlp`` is the same architecture trained
right.

How ``seed-mlp`` and ``dcgan`` were tuned (FID of 1,000 samples against the 1,000
held-out digits, :mod:`gantut.metrics`; CPU seconds of one torch thread on a busy
2-core machine, ``gantut.bench.time_to_quality``; seed 0):

- seed MLP, batch 256, Adam 4e-4, EMA 0.999 (the first recipe): FID 1,045 after 2,000
  steps, 298 after 6,000. The EMA with decay 0.999 averages over ~1,000 steps, so in a
  short run it mostly averages the early, bad generators.
- seed MLP, batch 64, Adam 2e-4, EMA 0.99: 320 after 60 CPU s (7,800 steps), not improving;
  batch 64, Adam 5e-4, EMA 0.995: 116 after 60 CPU s.
- seed MLP, **batch 128, Adam 1e-3 (both nets), EMA 0.995**, dropout 0.3 in D: FID 143
  after 31 CPU s, 76 after 43 s, 54 after 61 s (6,250 steps), all ten digits (class-histogram
  entropy 2.23 of 2.30). That is ``seed-mlp``. The source's architecture is unchanged.
- DCGAN (``ch`` 32, batch norm in both nets, batch 64; FID of 2,000 samples, CPU seconds of
  one thread with another run beside it): Adam 2e-4, EMA 0.999: FID 2,012 after 500 steps,
  129 after 2,500 (EMA lag again); Adam 5e-4, EMA 0.995: <= 100 after 91 s, best 76 after
  181 s (the previous ``dcgan``). Narrower nets (``ch`` 16) with the same optimiser: 98
  after 119 s -- width was not the limit.
- What worked is the optimiser of SNGAN/BigGAN: **spectral normalisation in D** (Miyato et
  al. 2018) instead of batch norm, **Adam 2e-3 for both nets with betas (0, 0.9)**, EMA
  0.995 of G. With ``ch`` 32 and the non-saturating loss, training seeds 0/1/2: FID <= 50
  first after 71/60/74 CPU s, 33/40/41 after 120 s -- that is ``dcgan``. Variants, FID after
  120 s: ``ch`` 16 (half the CPU per step) 44/43/36, not better per CPU second; ``ch`` 16
  with the hinge loss 42/42/46 and, keeping batch norm in D, 47 (seed 0); lower learning
  rates were slower (hinge, ``ch`` 16, Adam 1e-3: 45; 5e-4: 52; 5e-4 at batch 128: 65).
- ``dcgan-classic`` is the DCGAN as Radford et al. (2015) trained it (batch norm in both
  nets, Adam 2e-4 with betas (0.5, 0.999), no EMA): the baseline of notebook 05.1 and the
  architecture of the peer recipe in :mod:`gantut.bench`.
- ``cgan`` is ``dcgan`` with labels. 1,500 steps, seed 0, 2,000 samples (200 per digit):
  the share of samples that the metrics' classifier reads as the digit asked for was 98.0%
  (worst digit 89%), FID 14; with ``dcgan-classic``'s batch norm and Adam 2e-4 (EMA 0.999) it
  was 72.5% (worst 48%), FID 83.

Notebook 05.1 races ``seed-mlp``, ``dcgan-classic`` and ``dcgan`` for the same CPU time;
``python -m gantut.bench`` prints the time-to-quality table against the peer recipe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .flow import FlowTrainer, UNet
from .models import VAE, DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from .train import GANTrainer, Trainer, VAETrainer


@dataclass(frozen=True)
class Recipe:
    """Models to build and the trainer settings to train them with."""

    name: str
    description: str
    build: Callable[[], tuple]  # () -> the networks the trainer takes: (G, D), (vae,), (net,)
    settings: dict = field(default_factory=dict)  # the trainer's keyword arguments
    conditional: bool = False
    trainer: type[Trainer] = GANTrainer


# how ``dcgan`` and ``cgan`` are trained (see the tuning runs above)
MODERN_DCGAN = {"loss": "nonsaturating", "batch_size": 64, "lr_g": 2e-3, "lr_d": 2e-3,
                "betas": (0.0, 0.9), "ema": 0.995}

RECIPES: dict[str, Recipe] = {
    "seed-mlp-source": Recipe(
        "seed-mlp-source",
        "the source's MLP GAN and the usual recipe of its time: minimax loss, batch 64, Adam 2e-4",
        lambda: (MLPGenerator(), MLPDiscriminator()),
        {"loss": "minimax", "batch_size": 64, "lr_g": 2e-4, "lr_d": 2e-4},
    ),
    "seed-mlp": Recipe(
        "seed-mlp",
        "the source's MLP GAN trained right: non-saturating loss, dropout 0.3 in D, "
        "batch 128, Adam 1e-3, EMA 0.995 of G's weights",
        lambda: (MLPGenerator(), MLPDiscriminator(dropout=0.3)),
        {"loss": "nonsaturating", "batch_size": 128, "lr_g": 1e-3, "lr_d": 1e-3, "ema": 0.995},
    ),
    "dcgan-classic": Recipe(
        "dcgan-classic",
        "a DCGAN for 28x28 trained as Radford et al. (2015) did: batch norm in G and D, "
        "non-saturating loss, batch 64, Adam 2e-4 betas (0.5, 0.999)",
        lambda: (DCGANGenerator(), DCGANDiscriminator()),
        {"loss": "nonsaturating", "batch_size": 64, "lr_g": 2e-4, "lr_d": 2e-4,
         "betas": (0.5, 0.999)},
    ),
    "dcgan": Recipe(
        "dcgan",
        "a DCGAN for 28x28 trained right: spectral norm in D, non-saturating loss, batch 64, "
        "Adam 2e-3 betas (0, 0.9), EMA 0.995 of G's weights",
        lambda: (DCGANGenerator(), DCGANDiscriminator(norm="spectral")),
        MODERN_DCGAN,
    ),
    "cgan": Recipe(
        "cgan",
        "the dcgan recipe made class-conditional (one-hot labels into G, projection D)",
        lambda: (DCGANGenerator(n_classes=10), DCGANDiscriminator(norm="spectral", n_classes=10)),
        MODERN_DCGAN,
        conditional=True,
    ),
    "vae": Recipe(
        "vae",
        "an MLP VAE with a 16-d latent, batch 64, Adam 1e-3",
        lambda: (VAE(z_dim=16),),
        {"batch_size": 64, "lr": 1e-3},
        trainer=VAETrainer,
    ),
    "flow": Recipe(
        "flow",
        "flow matching with a small U-Net (ch 16), batch 64, Adam 2e-3, EMA 0.999, "
        "16 Euler steps to sample",
        lambda: (UNet(ch=16),),
        {"batch_size": 64, "lr": 2e-3, "ema": 0.999, "sample_steps": 16},
        trainer=FlowTrainer,
    ),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


def make_trainer(name: str, device="auto", **overrides) -> Trainer:
    """Build the models of recipe ``name`` and a trainer with its settings (``overrides``
    replace single settings). Seed first (``gantut.setup``) for a reproducible init."""
    recipe = get_recipe(name)
    return recipe.trainer(*recipe.build(), device=device, **{**recipe.settings, **overrides})
