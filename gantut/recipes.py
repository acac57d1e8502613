"""Named training recipes: which models, which loss and which optimiser settings.

One place holds the settings that the notebooks, the benchmarks and the command line
share, so "the DCGAN recipe" means the same thing everywhere::

    trainer = make_trainer("seed-mlp")            # a GANTrainer, ready to fit
    trainer.fit(mnist.train_x, steps=p.gan_steps)

``seed-mlp-source`` is the source article's recipe as literally as it can be run
(minimax loss, batch 64, Adam 2e-4); ``seed-mlp`` is the same architecture trained
right.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .models import VAE, DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from .train import GANTrainer, VAETrainer


@dataclass(frozen=True)
class Recipe:
    """Models to build and the trainer settings to train them with."""

    name: str
    description: str
    build: Callable[[], tuple]  # () -> (G, D), or (vae,) for a VAE
    settings: dict = field(default_factory=dict)  # GANTrainer / VAETrainer keyword arguments
    conditional: bool = False


RECIPES: dict[str, Recipe] = {
    "seed-mlp-source": Recipe(
        "seed-mlp-source",
        "the source's MLP GAN and the usual recipe of its time: minimax loss, batch 64, Adam 2e-4",
        lambda: (MLPGenerator(), MLPDiscriminator()),
        {"loss": "minimax", "batch_size": 64, "lr_g": 2e-4, "lr_d": 2e-4},
    ),
    "seed-mlp": Recipe(
        "seed-mlp",
        "the source's MLP GAN trained right: non-saturating loss, dropout in D, "
        "batch 256, Adam 4e-4, EMA of G's weights",
        lambda: (MLPGenerator(), MLPDiscriminator(dropout=0.3)),
        {"loss": "nonsaturating", "batch_size": 256, "lr_g": 4e-4, "lr_d": 4e-4, "ema": 0.999},
    ),
    "dcgan": Recipe(
        "dcgan",
        "a DCGAN for 28x28: non-saturating loss, batch 64, Adam 2e-4, EMA of G's weights",
        lambda: (DCGANGenerator(), DCGANDiscriminator()),
        {"loss": "nonsaturating", "batch_size": 64, "lr_g": 2e-4, "lr_d": 2e-4, "ema": 0.999},
    ),
    "cgan": Recipe(
        "cgan",
        "a class-conditional DCGAN (one-hot labels into G, projection D)",
        lambda: (DCGANGenerator(n_classes=10), DCGANDiscriminator(n_classes=10)),
        {"loss": "nonsaturating", "batch_size": 64, "lr_g": 2e-4, "lr_d": 2e-4, "ema": 0.999},
        conditional=True,
    ),
    "vae": Recipe(
        "vae",
        "an MLP VAE with a 16-d latent, batch 64, Adam 1e-3",
        lambda: (VAE(z_dim=16),),
        {"batch_size": 64, "lr": 1e-3},
    ),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


def make_trainer(name: str, device="auto", **overrides) -> GANTrainer | VAETrainer:
    """Build the models of recipe ``name`` and a trainer with its settings (``overrides``
    replace single settings). Seed first (``gantut.setup``) for a reproducible init."""
    recipe = get_recipe(name)
    models = recipe.build()
    settings = {**recipe.settings, **overrides}
    if len(models) == 1:
        return VAETrainer(models[0], device=device, **settings)
    return GANTrainer(*models, device=device, **settings)
