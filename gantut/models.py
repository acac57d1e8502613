"""The networks: the source's MLP GAN (corrected), a DCGAN for 28x28, and a VAE.

Every generator maps noise ``z`` (``N x z_dim``) to images ``N x 1 x 28 x 28`` in [-1, 1]
(or to points ``N x 2`` for the toy problems); every discriminator maps a batch to ``N``
raw scores (logits) -- no sigmoid, no softmax: the losses in :mod:`gantut.losses` apply
what they need. Class-conditional versions take labels ``y`` as a second argument.

A comment ``# N x C x H x W`` after a layer gives the shape of its output for a batch of
``N`` (after ``nn.Sequential(``: the shape that goes in), with the constructor's default
sizes (``ch`` = 32, so ``2ch`` is 64 channels); ``tests/test_shape_comments.py`` checks
every such comment against a forward pass.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

from .utils import evaluating

ACTIVATIONS = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leakyrelu": lambda: nn.LeakyReLU(0.2),  # TF's tf.nn.leaky_relu default slope
}


def activation(name: str) -> nn.Module:
    """An activation module by name: one of ``ACTIVATIONS``."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def _check(x: torch.Tensor, shape: tuple[int, ...], what: str) -> torch.Tensor:
    """Accept ``N x *shape`` or ``N x prod(shape)``; anything else is a clear error."""
    flat = math.prod(shape)
    if x.dim() >= 2 and (tuple(x.shape[1:]) == tuple(shape) or tuple(x.shape[1:]) == (flat,)):
        return x
    raise ValueError(
        f"{what} expects a batch of shape (N, {', '.join(map(str, shape))}) or (N, {flat}), "
        f"got {tuple(x.shape)}; add a batch dimension with x.unsqueeze(0) for a single item"
    )


class Generator(nn.Module):
    """Base class: a generator knows its noise size and can sample itself."""

    z_dim: int
    n_classes: int = 0

    def noise(self, n: int) -> torch.Tensor:
        """``n`` standard-normal latent vectors on the model's device."""
        return torch.randn(n, self.z_dim, device=next(self.parameters()).device)

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` samples in eval mode (labels ``y`` for a conditional generator)."""
        with evaluating(self):
            return self(self.noise(n), y)

    def _with_labels(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        _check(z, (self.z_dim,), type(self).__name__)
        if self.n_classes == 0:
            return z
        if y is None:
            raise ValueError(f"{type(self).__name__} is class-conditional: pass labels y")
        return torch.cat([z, nn.functional.one_hot(y, self.n_classes).to(z.dtype)], dim=1)


NORMS = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}


def _check_norm(norm: str | None) -> str | None:
    if norm is not None and norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}: choose None, {' or '.join(NORMS)}")
    return norm


def _mlp(sizes, act: str, sn: bool = False, dropout: float = 0.0,
         norm: str | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(_sn(nn.Linear(a, b)) if sn else nn.Linear(a, b))
        if i < len(sizes) - 2:
            if norm:
                layers.append(NORMS[norm](b))
            layers.append(activation(act))
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MLPGenerator(Generator):
    """The source's generator (section 4): ``z=100 -> 128 -> 128 -> 784``, LeakyReLU.

    Corrections to the source's TF1 code: the output goes through ``tanh`` (the source
    has no output activation, so samples are unbounded while the data lies in a fixed
    range; we scale MNIST to [-1, 1] to match tanh), and it is reshaped to ``N x 1 x 28 x 28``.

    Args:
        z_dim: noise size (100 in the source).
        hidden: hidden widths ((128, 128) in the source).
        act: hidden activation, one of ``ACTIVATIONS``.
        out_shape: shape of one sample; ``(2,)`` makes the 2-D toy generator.
        out_act: output activation name, or ``None`` for none (the toy problems).
        n_classes: > 0 makes it class-conditional (one-hot labels joined to ``z``).
        norm: ``None`` (the source), ``"batch"`` or ``"layer"``: a normalisation layer
            between each hidden linear layer and its activation (notebook 06, Q3).
    """

    def __init__(self, z_dim=100, hidden=(128, 128), act="leakyrelu", out_shape=(1, 28, 28),
                 out_act: str | None = "tanh", n_classes: int = 0, norm: str | None = None):
        super().__init__()
        self.z_dim, self.n_classes, self.out_shape = z_dim, n_classes, tuple(out_shape)
        self.net = _mlp([z_dim + n_classes, *hidden, math.prod(out_shape)], act,
                        norm=_check_norm(norm))
        self.out_act = activation(out_act) if out_act else nn.Identity()

    def forward(self, z, y=None):
        h = self.net(self._with_labels(z, y))  # N x z_dim -> N x 128 -> N x 128 -> N x 784
        return self.out_act(h).view(-1, *self.out_shape)  # N x 1 x 28 x 28


class MLPDiscriminator(nn.Module):
    """The source's discriminator: ``784 -> 128 -> 128 -> 1``, LeakyReLU, one logit out.

    Corrections to the source: the image is flattened first (the source feeds a
    ``28 x 28`` tensor to a dense layer, which then acts on the last axis alone), and the
    single output is a logit -- no softmax: a softmax over one number is always 1.

    Args:
        in_shape: shape of one input; ``(2,)`` makes the toy discriminator.
        hidden: hidden widths.
        act: hidden activation.
        dropout: dropout after the first hidden activation (meant to slow D's memorising of
            small data; notebook 04.2 measures what it does).
        spectral_norm: wrap every linear layer in spectral normalisation (Miyato 2018).
        n_classes: > 0 makes it class-conditional with a projection head (Miyato 2018b).
        norm: ``None`` (the source), ``"batch"`` or ``"layer"``: a normalisation layer
            between each hidden linear layer and its activation. Batch norm in D mixes
            the samples of a batch, and the trainer shows D all-real and all-fake
            batches separately; layer norm normalises each sample on its own.
    """

    def __init__(self, in_shape=(1, 28, 28), hidden=(128, 128), act="leakyrelu",
                 dropout=0.0, spectral_norm=False, n_classes: int = 0, norm: str | None = None):
        super().__init__()
        self.in_shape, self.n_classes = tuple(in_shape), n_classes
        self.body = _mlp([math.prod(in_shape), *hidden], act, spectral_norm, dropout,
                         _check_norm(norm))
        if norm:
            self.body.append(NORMS[norm](hidden[-1]))
        self.body.append(activation(act))
        self.head = _sn(nn.Linear(hidden[-1], 1)) if spectral_norm else nn.Linear(hidden[-1], 1)
        self.embed = nn.Embedding(n_classes, hidden[-1]) if n_classes else None

    def forward(self, x, y=None):
        x = _check(x, self.in_shape, type(self).__name__).flatten(1)  # N x 1 x 28 x 28 -> N x 784
        h = self.body(x)  # N x 128 -> N x 128
        return _project(self.head(h).squeeze(1), self.embed, h, y)  # N x 1 -> N: one logit each


def _project(out, embed, h, y):
    """Projection discriminator: add ``<embed(y), h>`` for a conditional model."""
    if embed is None:
        return out
    if y is None:
        raise ValueError("this discriminator is class-conditional: pass labels y")
    return out + (embed(y) * h).sum(1)


def _dcgan_init(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class DCGANGenerator(Generator):
    """DCGAN-style generator for 28x28 (Radford et al. 2015), sized for a CPU.

    ``z -> 2ch x 7 x 7 -> ch x 14 x 14 -> 1 x 28 x 28``: transposed convolutions,
    batch norm and ReLU inside, tanh out. A transposed convolution with kernel 4, stride 2
    and padding 1 doubles the height and width: ``out = (in - 1) * 2 - 2 * 1 + 4 = 2 * in``.
    """

    def __init__(self, z_dim=100, ch=32, n_classes: int = 0):
        super().__init__()
        self.z_dim, self.n_classes = z_dim, n_classes
        self.fc = nn.Sequential(                                       # N x z_dim (+ labels)
            nn.Linear(z_dim + n_classes, 2 * ch * 7 * 7, bias=False),  # N x (2ch*7*7)
            nn.BatchNorm1d(2 * ch * 7 * 7), nn.ReLU(),
        )
        self.net = nn.Sequential(
            nn.Unflatten(1, (2 * ch, 7, 7)),                           # N x 2ch x 7 x 7
            nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1, bias=False),       # N x ch x 14 x 14
            nn.BatchNorm2d(ch), nn.ReLU(),
            nn.ConvTranspose2d(ch, 1, 4, 2, 1),                        # N x 1 x 28 x 28
            nn.Tanh(),
        )
        self.apply(_dcgan_init)

    def forward(self, z, y=None):
        return self.net(self.fc(self._with_labels(z, y)))


class DCGANDiscriminator(nn.Module):
    """DCGAN-style discriminator for 28x28: strided convolutions, LeakyReLU, one logit.

    A convolution with kernel 4, stride 2 and padding 1 halves the height and width:
    ``out = (in + 2 * 1 - 4) // 2 + 1 = in / 2``.

    Args:
        ch: channels of the first convolution.
        norm: ``"batch"`` (DCGAN), ``"none"`` (needed for WGAN-GP, whose penalty is per
            sample) or ``"spectral"`` (spectral normalisation on every layer).
        n_classes: > 0 makes it class-conditional with a projection head.
    """

    def __init__(self, ch=32, norm="batch", n_classes: int = 0):
        super().__init__()
        if norm not in ("batch", "none", "spectral"):
            raise ValueError(f"unknown norm {norm!r}: choose batch, none or spectral")
        wrap = _sn if norm == "spectral" else (lambda m: m)
        self.n_classes = n_classes
        self.body = nn.Sequential(                                    # N x 1 x 28 x 28
            wrap(nn.Conv2d(1, ch, 4, 2, 1)),                          # N x ch x 14 x 14
            nn.LeakyReLU(0.2),
            wrap(nn.Conv2d(ch, 2 * ch, 4, 2, 1, bias=norm != "batch")),  # N x 2ch x 7 x 7
            nn.BatchNorm2d(2 * ch) if norm == "batch" else nn.Identity(),
            nn.LeakyReLU(0.2),
            nn.Flatten(),                                             # N x (2ch*7*7)
        )
        self.head = wrap(nn.Linear(2 * ch * 7 * 7, 1))                # N x 1
        self.embed = nn.Embedding(n_classes, 2 * ch * 7 * 7) if n_classes else None
        self.apply(_dcgan_init)

    def forward(self, x, y=None):
        h = self.body(_check(x, (1, 28, 28), type(self).__name__).view(-1, 1, 28, 28))
        return _project(self.head(h).squeeze(1), self.embed, h, y)  # N: one logit each


def elbo(encoder: nn.Module, decoder: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The evidence lower bound of images ``x`` in [-1, 1], in nats per image (batch means).

    ``elbo = recon - kl``: ``recon`` is the Bernoulli log-likelihood log p(x|z) of the pixels
    (scaled to [0, 1]) at one sample ``z = mu + sigma * eps`` (the reparameterisation trick,
    so gradients flow through ``z``); ``kl`` is KL(q(z|x) || N(0, I)) in closed form.
    ``encoder`` maps x to ``[mu, logvar]``, ``decoder`` maps z to one logit per pixel.
    Notebook 04.1 writes this function out.
    """
    mu, logvar = encoder(x).chunk(2, dim=1)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    logits = decoder(z)
    target = ((x.flatten(1) + 1) / 2).clamp(0, 1)
    recon = -nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
    return {"elbo": (recon - kl).mean(), "recon": recon.mean(), "kl": kl.mean()}


class VAE(nn.Module):
    """A variational autoencoder (Kingma & Welling 2013) with MLP encoder and decoder.

    The encoder gives ``q(z|x) = N(mu, diag(exp(logvar)))``; the decoder gives Bernoulli
    logits for each pixel of ``p(x|z)``, on images scaled to [0, 1]. Training maximises
    the ELBO ``E_q[log p(x|z)] - KL(q(z|x) || N(0, I))`` (see :func:`elbo`).
    """

    def __init__(self, z_dim=16, hidden=400):
        super().__init__()
        self.z_dim = z_dim
        self.encoder = nn.Sequential(             # N x 1 x 28 x 28
            nn.Flatten(),                         # N x 784
            nn.Linear(784, hidden), nn.ReLU(),    # N x hidden
            nn.Linear(hidden, 2 * z_dim),         # N x 2z_dim: mu and logvar side by side
        )
        self.decoder = nn.Sequential(             # N x z_dim
            nn.Linear(z_dim, hidden), nn.ReLU(),  # N x hidden
            nn.Linear(hidden, 784),               # N x 784: a Bernoulli logit per pixel
        )

    def encode(self, x):
        """``mu, logvar`` of ``q(z|x)`` for images ``x`` in [-1, 1]."""
        mu, logvar = self.encoder(_check(x, (1, 28, 28), "VAE")).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z):
        """Images in [-1, 1]: the mean of the Bernoulli ``p(x|z)``, rescaled."""
        return torch.sigmoid(self.decoder(z)).view(-1, 1, 28, 28) * 2 - 1

    def elbo(self, x) -> dict[str, torch.Tensor]:
        """The ELBO of a batch: the module-level :func:`elbo` of this encoder and decoder."""
        return elbo(self.encoder, self.decoder, _check(x, (1, 28, 28), "VAE"))

    def forward(self, x) -> dict[str, torch.Tensor]:
        """The same as :meth:`elbo`: DistributedDataParallel wraps ``forward`` only."""
        return self.elbo(x)

    @torch.no_grad()
    def sample(self, n: int, y=None) -> torch.Tensor:
        z = torch.randn(n, self.z_dim, device=next(self.parameters()).device)
        return self.decode(z)

    @torch.no_grad()
    def reconstruct(self, x):
        return self.decode(self.encode(x)[0])


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
