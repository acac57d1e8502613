"""Figures: image grids, training curves, samples over time, and 2-D toy plots."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid


def image_grid(images: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    """Images in [-1, 1] (``N x 1 x H x W`` or ``N x 784``) -> one ``H' x W'`` grid in [0, 1]."""
    images = images.detach().float().cpu().reshape(-1, 1, 28, 28) if images.dim() == 2 \
        else images.detach().float().cpu()
    grid = make_grid((images.clamp(-1, 1) + 1) / 2, nrow=nrow, padding=2, pad_value=1.0)
    return grid[0]


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None):
    """Show a grid of images in [-1, 1]; returns the axes."""
    if ax is None:
        n_rows = -(-len(images) // nrow)
        _, ax = plt.subplots(figsize=(nrow * 0.45 + 0.4, n_rows * 0.45 + 0.6))
    ax.imshow(image_grid(images, nrow).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def show_snapshots(snapshots, n: int = 16, nrow: int = 4, title: str = "samples from fixed noise"):
    """One grid per ``(step, images)`` snapshot, side by side: how samples evolve."""
    fig, axes = plt.subplots(1, len(snapshots), figsize=(2.2 * len(snapshots), 2.6), squeeze=False)
    for ax, (step, imgs) in zip(axes[0], snapshots, strict=True):
        show_images(imgs[:n], nrow=nrow, title=f"step {step}", ax=ax)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def _smooth(series, window: int):
    return series.rolling(window, min_periods=1).mean() if window > 1 else series


def plot_history(history, keys=("d_loss", "g_loss"), smooth: int = 50, ax=None, label=None,
                 logy: bool = False, title: str | None = None):
    """Plot columns of a trainer's history (a :class:`~gantut.train.History` or DataFrame)
    against the step, smoothed by a moving average of ``smooth`` steps."""
    df = history.df() if hasattr(history, "df") else history
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    for key in [keys] if isinstance(keys, str) else keys:
        name = f"{label}: {key}" if label else key
        ax.plot(df.index, _smooth(df[key], smooth), label=name)
    ax.set_xlabel("step")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def plot_gan_diagnostics(history, smooth: int = 50, title: str | None = None):
    """The three panels to read a GAN run by: losses, D's outputs, gradient norms."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    plot_history(history, ("d_loss", "g_loss"), smooth, ax=axes[0], title="losses")
    plot_history(history, ("d_real", "d_fake"), smooth, ax=axes[1], title="D(x) and D(G(z))")
    plot_history(history, ("d_grad_norm", "g_grad_norm"), smooth, ax=axes[2], logy=True,
                 title="gradient norms")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


@torch.no_grad()
def plot_toy(samples: torch.Tensor, real: torch.Tensor | None = None, D=None, ax=None,
             title: str | None = None, lim: float = 3.0, resolution: int = 120):
    """2-D samples (orange) against real points (blue), over D's decision surface
    ``sigmoid(D(x))`` when ``D`` is given (dark: "fake", light: "real")."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    if D is not None:
        ticks = torch.linspace(-lim, lim, resolution)
        xx, yy = torch.meshgrid(ticks, ticks, indexing="xy")
        device = next(D.parameters()).device
        grid = torch.stack([xx.flatten(), yy.flatten()], 1).to(device)
        was = D.training
        D.eval()
        prob = torch.sigmoid(D(grid)).reshape(resolution, resolution).cpu()
        D.train(was)
        cs = ax.contourf(xx, yy, prob, levels=20, cmap="RdBu_r", vmin=0, vmax=1, alpha=0.6)
        ax.figure.colorbar(cs, ax=ax, fraction=0.046, pad=0.04, label="D(x)")
    if real is not None:
        real = real.cpu()
        ax.scatter(real[:, 0], real[:, 1], s=3, c="tab:blue", alpha=0.5, label="real")
    samples = samples.detach().cpu()
    ax.scatter(samples[:, 0], samples[:, 1], s=3, c="tab:orange", alpha=0.6, label="generated")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="upper right", markerscale=3)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


@torch.no_grad()
def plot_latent_map(vae, x: torch.Tensor, y: torch.Tensor, n: int = 15, title: str | None = None):
    """The latent space of a VAE with a 2-D latent, in two panels.

    Left: the posterior means ``mu(x)`` of the images ``x``, coloured by their labels ``y``,
    and the square the right panel decodes (dashed).
    Right: the decoder's image at each point of an ``n x n`` grid of ``z``, placed at the
    prior's quantiles 5%..95% in each coordinate (Kingma & Welling 2013, figure 4), so
    that every cell covers the same prior mass. Returns the figure.
    """
    if vae.z_dim != 2:
        raise ValueError(f"plot_latent_map needs a VAE with z_dim=2, got z_dim={vae.z_dim}")
    device = next(vae.parameters()).device
    was = vae.training
    vae.eval()
    mu = torch.cat([vae.encode(x[i:i + 1000].to(device))[0] for i in range(0, len(x), 1000)]).cpu()
    ticks = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, n))
    zy, zx = torch.meshgrid(ticks.flip(0), ticks, indexing="ij")  # top row: largest z2
    images = vae.decode(torch.stack([zx.flatten(), zy.flatten()], 1).to(device)).cpu()
    vae.train(was)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    sc = axes[0].scatter(mu[:, 0].numpy(), mu[:, 1].numpy(), c=y.cpu().numpy(), cmap="tab10", s=4,
                         vmin=-0.5, vmax=9.5)
    fig.colorbar(sc, ax=axes[0], ticks=range(10), label="digit")
    q = float(ticks.abs().max())
    axes[0].add_patch(plt.Rectangle((-q, -q), 2 * q, 2 * q, fill=False, ls="--", color="gray",
                                    label="the decoded grid"))
    axes[0].legend(fontsize=8, loc="upper right")
    lim = max(1.15 * q, 1.05 * float(mu.abs().max()))
    axes[0].set_xlim(-lim, lim)
    axes[0].set_ylim(-lim, lim)
    axes[0].set_aspect("equal")
    axes[0].set_xlabel("$z_1$")
    axes[0].set_ylabel("$z_2$")
    axes[0].set_title("posterior means of held-out digits", fontsize=10)
    show_images(images, nrow=n, ax=axes[1], title="decoder over the prior's 5%..95% quantiles")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
