"""Run profiles: how long every notebook trains and how much it evaluates.

One place decides the size of every experiment, so that the same notebook can be
checked in seconds by CI (``smoke``), run on a laptop CPU in a few minutes with
results that really show the point (``quick``, the default), or trained to GPU
quality (``full``).

The metrics' feature classifier is the one thing not sized here: it is trained the same way
in every profile (``gantut.metrics.CLASSIFIER_RECIPES``), because FID's scale depends on how
it was trained.

Notebooks read their profile from the papermill parameter ``profile``, whose
default is the environment variable ``GANTUT_PROFILE`` or ``"quick"``::

    p = gantut.get_profile(profile)
    make_trainer("seed-mlp").fit(mnist.train_x, steps=p.gan_steps)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Profile:
    """Sizes of the experiments in one profile.

    Attributes:
        name: ``"smoke"``, ``"quick"`` or ``"full"``.
        gan_steps: optimiser steps of a full MNIST GAN run (the recipe that works).
        ladder_images: training images each run of notebook 04.2's ablation ladder sees
            (batch 64 and batch 128 runs alike; four configurations over ``n_seeds`` seeds).
        dcgan_steps: steps of a DCGAN run.
        vae_steps: steps of a VAE run.
        toy_steps: steps of a 2-D toy GAN run.
        n_eval: generated samples used by a metric (FID, precision/recall).
        n_seeds: how many seeds an experiment over seeds uses.
        snapshots: how many sample grids a run keeps to show progress.
        compare_steps: steps of each MNIST run in a comparison of several configurations
            (notebook 05.3 trains seven), so that the comparison fits the profile's time.
        quality_seconds: training seconds (this process's CPU time) each model gets in an
            equal-compute comparison (notebook 05.1, ``gantut.bench.time_to_quality``). On a
            GPU, where a step of these small models is bound by launching kernels, the
            CPU time of training is about its wall time.
        flow_seconds: training seconds (CPU time) of each run in notebook 05.5's race of
            flow matching against the GAN (two models, ``n_seeds`` seeds each).
        overfit_steps: steps of each run in notebook 05.2's watch of a discriminator
            memorising its 4,000 training digits (three configurations, ``n_seeds`` seeds each,
            the MLP GAN at batch 128: ``overfit_steps * 128 / 4000`` passes over the digits).
        cell_timeout: seconds a notebook cell may run before ``gantut.execute`` gives up.

    A profile never asks for more real digits than the offline fallback holds (``n_eval``
    real digits of classes 0-4 from its 4,000 training digits, notebook 05.1), so every
    profile runs without a network too.
    """

    name: str
    gan_steps: int
    ladder_images: int
    dcgan_steps: int
    vae_steps: int
    toy_steps: int
    n_eval: int
    n_seeds: int
    snapshots: int = 4
    compare_steps: int = 1000
    quality_seconds: float = 90.0
    flow_seconds: float = 40.0
    overfit_steps: int = 4500
    cell_timeout: int = 600

    def __str__(self) -> str:
        """One line for ``print(p)`` in a notebook; ``repr(p)`` still lists every field."""
        return (f"{self.name} profile: GAN {self.gan_steps:,} steps, DCGAN {self.dcgan_steps:,}, "
                f"VAE {self.vae_steps:,}, toy {self.toy_steps:,}, "
                f"{self.n_eval:,} samples per metric, {self.n_seeds} seeds")


PROFILES: dict[str, Profile] = {
    # CI: every notebook in under a minute on 2 CPU cores; numbers mean nothing.
    "smoke": Profile("smoke", gan_steps=60, ladder_images=3_840, dcgan_steps=30, vae_steps=60,
                     toy_steps=150, n_eval=500, n_seeds=2,
                     snapshots=2, quality_seconds=1.0,
                     compare_steps=20, flow_seconds=1.0, overfit_steps=150, cell_timeout=300),
    # A laptop CPU: a few minutes per notebook, results that show the point.
    "quick": Profile("quick", gan_steps=6000, ladder_images=320_000, dcgan_steps=1500,
                     vae_steps=3000, toy_steps=2500, n_eval=2000, n_seeds=3,
                     quality_seconds=30.0, compare_steps=1500, flow_seconds=40.0,
                     overfit_steps=4500),
    # One GPU: full quality, each notebook in minutes (estimated from the steps and the
    # kernel launches per step: 1.5-5 ms an MLP GAN step, 1.6x that for the DCGAN).
    "full": Profile("full", gan_steps=50000, ladder_images=1_280_000, dcgan_steps=20000,
                    vae_steps=30000, toy_steps=5000, n_eval=2000,
                    n_seeds=5, snapshots=6, quality_seconds=120.0,
                    compare_steps=10000, flow_seconds=60.0, overfit_steps=20000,
                    cell_timeout=3600),
}


def default_profile_name() -> str:
    """The profile named by ``GANTUT_PROFILE``, else ``"quick"``."""
    return os.environ.get("GANTUT_PROFILE", "quick")


def get_profile(name: str | None = None, **overrides) -> Profile:
    """Return the profile called ``name`` (default: :func:`default_profile_name`).

    Keyword arguments override single fields, e.g. ``get_profile("quick", gan_steps=100)``.

    Raises:
        ValueError: if ``name`` is not a known profile; the message lists the valid ones.
    """
    name = default_profile_name() if name is None else name
    if name not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r}: choose one of {', '.join(PROFILES)} "
            "(set the notebook parameter `profile` or the GANTUT_PROFILE variable)"
        )
    return replace(PROFILES[name], **overrides) if overrides else PROFILES[name]
