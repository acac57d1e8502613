"""Named training recipes: which models, which loss and which optimiser settings.

One place holds the settings that the notebooks, the benchmarks and the command line
share, so "the DCGAN recipe" means the same thing everywhere::

    trainer = make_trainer("seed-mlp")            # a GANTrainer, ready to fit
    trainer.fit(mnist.train_x, steps=p.gan_steps)

``seed-mlp-source`` is the source article's recipe as literally as it can be run;
``seed-mlp`` trains the same networks right; ``dcgan-classic`` trains a DCGAN as Radford et
al. (2015) did and ``dcgan`` as SNGAN does (spectral normalisation in D, a fast Adam);
``cgan`` is ``dcgan`` with labels; ``vae`` is the VAE of notebook 04.1; ``flow`` trains flow
matching (:mod:`gantut.flow`), what came after GANs. The runs that chose the GAN settings, and
what they measured, are in the book's page "How the recipes were tuned" (``book/tuning.md``).
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


# how ``dcgan`` and ``cgan`` are trained (SNGAN's optimiser; book/tuning.md has the runs)
MODERN_DCGAN = {"loss": "nonsaturating", "batch_size": 64, "lr_g": 2e-3, "lr_d": 2e-3,
                "betas": (0.0, 0.9), "ema": 0.995}

RECIPES: dict[str, Recipe] = {
    # the source's networks and minimax loss: the failure notebook 04.2 starts from
    "seed-mlp-source": Recipe(
        "seed-mlp-source",
        "the source's MLP GAN with the minimax loss of the original paper, batch 64, Adam 2e-4",
        lambda: (MLPGenerator(), MLPDiscriminator()),
        {"loss": "minimax", "batch_size": 64, "lr_g": 2e-4, "lr_d": 2e-4},
    ),
    # EMA 0.995, not 0.999: in a short run a longer average keeps the early, bad generators
    "seed-mlp": Recipe(
        "seed-mlp",
        "the source's MLP GAN trained right: non-saturating loss, dropout 0.3 in D, "
        "batch 128, Adam 1e-3, EMA 0.995 of G's weights",
        lambda: (MLPGenerator(), MLPDiscriminator(dropout=0.3)),
        {"loss": "nonsaturating", "batch_size": 128, "lr_g": 1e-3, "lr_d": 1e-3, "ema": 0.995},
    ),
    # not tuned: the baseline of notebook 05.1 and the peer recipe's networks in gantut.bench
    "dcgan-classic": Recipe(
        "dcgan-classic",
        "a DCGAN for 28x28 trained as Radford et al. (2015) did: batch norm in G and D, "
        "non-saturating loss, batch 64, Adam 2e-4 betas (0.5, 0.999)",
        lambda: (DCGANGenerator(), DCGANDiscriminator()),
        {"loss": "nonsaturating", "batch_size": 64, "lr_g": 2e-4, "lr_d": 2e-4,
         "betas": (0.5, 0.999)},
    ),
    # SNGAN's optimiser, not a wider net: the classic one never reached FID 50 in the budget
    "dcgan": Recipe(
        "dcgan",
        "a DCGAN for 28x28 trained right: spectral norm in D, non-saturating loss, batch 64, "
        "Adam 2e-3 betas (0, 0.9), EMA 0.995 of G's weights",
        lambda: (DCGANGenerator(), DCGANDiscriminator(norm="spectral")),
        MODERN_DCGAN,
    ),
    # dcgan's settings: with dcgan-classic's, far fewer samples showed the digit asked for
    "cgan": Recipe(
        "cgan",
        "the dcgan recipe made class-conditional (one-hot labels into G, projection D)",
        lambda: (DCGANGenerator(n_classes=10), DCGANDiscriminator(norm="spectral", n_classes=10)),
        MODERN_DCGAN,
        conditional=True,
    ),
    # not tuned
    "vae": Recipe(
        "vae",
        "an MLP VAE with a 16-d latent, batch 64, Adam 1e-3",
        lambda: (VAE(z_dim=16),),
        {"batch_size": 64, "lr": 1e-3},
        trainer=VAETrainer,
    ),
    # Adam 4e-3: lower FID per CPU second than 2e-3 and 8e-3; ch 8 was cheaper per step but worse
    "flow": Recipe(
        "flow",
        "flow matching with a small U-Net (ch 16), batch 64, Adam 4e-3, EMA 0.999, "
        "16 Euler steps to sample",
        lambda: (UNet(ch=16),),
        {"batch_size": 64, "lr": 4e-3, "ema": 0.999, "sample_steps": 16},
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
