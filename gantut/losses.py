r"""GAN losses, one small function each, formula in the docstring.

Notation: ``r = D(x)`` are the discriminator's raw scores (logits) on real data, ``f =
D(G(z))`` on generated data, and :math:`\sigma` is the sigmoid, so :math:`D(x) =
\sigma(r)` is D's probability that ``x`` is real. Every function returns a scalar to
*minimise*; :data:`LOSSES` maps a name to its (discriminator, generator) pair.

The source says the generator "minimises the discriminator's error". It is the other way
round: in the minimax game G *maximises* D's error (it minimises
:math:`\log(1-D(G(z)))`), and in practice it maximises :math:`\log D(G(z))` instead
(the non-saturating loss), because the minimax gradient vanishes exactly when D wins.
"""

from __future__ import annotations

import torch
from torch.nn.functional import binary_cross_entropy_with_logits, relu


def bce_d_loss(r: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    r"""Discriminator of the original GAN: :math:`-\log\sigma(r) - \log(1-\sigma(f))`.

    Binary cross-entropy of a real/fake classifier: real images are labelled 1, fakes 0.
    """
    return (binary_cross_entropy_with_logits(r, torch.ones_like(r))
            + binary_cross_entropy_with_logits(f, torch.zeros_like(f)))


def minimax_g_loss(f: torch.Tensor) -> torch.Tensor:
    r"""Saturating (minimax) generator: minimise :math:`\log(1-\sigma(f))`, i.e. maximise D's error.

    Its gradient w.r.t. ``f`` is :math:`-\sigma(f)`: it vanishes as D(G(z)) -> 0,
    i.e. exactly when D confidently rejects the samples, early in training.
    """
    return -binary_cross_entropy_with_logits(f, torch.zeros_like(f))


def nonsaturating_g_loss(f: torch.Tensor) -> torch.Tensor:
    r"""Non-saturating generator (Goodfellow 2014): minimise :math:`-\log\sigma(f)`.

    D's own loss with the fakes labelled "real". Same fixed point as minimax, but the
    gradient w.r.t. ``f`` is :math:`\sigma(f) - 1`, close to -1 when D(G(z)) -> 0:
    strong exactly when G is bad.
    """
    return binary_cross_entropy_with_logits(f, torch.ones_like(f))


def lsgan_d_loss(r: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    r"""Least-squares GAN discriminator (Mao 2017): :math:`\tfrac12(r-1)^2 + \tfrac12 f^2`."""
    return 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean()


def lsgan_g_loss(f: torch.Tensor) -> torch.Tensor:
    r"""Least-squares GAN generator: :math:`\tfrac12 (f-1)^2`."""
    return 0.5 * ((f - 1) ** 2).mean()


def hinge_d_loss(r: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    r"""Hinge discriminator (Lim & Ye 2017; Miyato 2018): :math:`\max(0, 1-r) + \max(0, 1+f)`."""
    return relu(1 - r).mean() + relu(1 + f).mean()


def hinge_g_loss(f: torch.Tensor) -> torch.Tensor:
    r"""Hinge generator: :math:`-f`."""
    return -f.mean()


def wgan_d_loss(r: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    r"""Wasserstein critic (Arjovsky 2017): :math:`f - r`, an estimate of -W1 when the
    critic is 1-Lipschitz (enforce that with :func:`gradient_penalty`)."""
    return f.mean() - r.mean()


def wgan_g_loss(f: torch.Tensor) -> torch.Tensor:
    r"""Wasserstein generator: :math:`-f`."""
    return -f.mean()


def gradient_penalty(D, real: torch.Tensor, fake: torch.Tensor, y=None) -> torch.Tensor:
    r"""WGAN-GP penalty (Gulrajani 2017): :math:`(\lVert\nabla_{\hat x} D(\hat x)\rVert_2 - 1)^2`
    at random points :math:`\hat x = \epsilon x + (1-\epsilon)\tilde x` between real and fake."""
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    x_hat = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    out = D(x_hat, y) if y is not None else D(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(D, real: torch.Tensor, y=None) -> torch.Tensor:
    r"""R1 penalty (Mescheder 2018): :math:`\lVert\nabla_x D(x)\rVert_2^2` on real images,
    batch mean. It keeps D flat around the data, so D cannot carve a sharp wall around the
    training digits it has memorised; the trainer weights it by :math:`\gamma / 2`."""
    x = real.detach().requires_grad_(True)
    out = D(x, y) if y is not None else D(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


#: name -> (discriminator loss, generator loss)
LOSSES = {
    "minimax": (bce_d_loss, minimax_g_loss),
    "nonsaturating": (bce_d_loss, nonsaturating_g_loss),
    "lsgan": (lsgan_d_loss, lsgan_g_loss),
    "hinge": (hinge_d_loss, hinge_g_loss),
    "wgan-gp": (wgan_d_loss, wgan_g_loss),
}


def get_loss(name: str):
    """The (discriminator, generator) loss pair called ``name``; see :data:`LOSSES`."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}: choose one of {', '.join(LOSSES)}")
    return LOSSES[name]
