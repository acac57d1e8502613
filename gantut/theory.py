r"""The mathematics of GANs and VAEs as numbers: notebook 03 checks each identity with these.

The GAN identities are checked in one dimension, where densities are known exactly and
integrals can be taken on a grid; the VAE's on the VAE itself. Each formula from the
papers becomes a number that a cell prints and a test asserts:

- :func:`optimal_discriminator` -- :math:`D^*(x) = p_{data}(x) / (p_{data}(x) + p_g(x))`
  (Goodfellow et al. 2014, Proposition 1);
- :func:`value_function` -- :math:`V(D, G) = E_{p_{data}}[\log D] + E_{p_g}[\log(1 - D)]`;
- :func:`kl_divergence`, :func:`js_divergence` -- so that
  :math:`V(D^*, G) = -\log 4 + 2\,\mathrm{JSD}(p_{data} \| p_g)` (Theorem 1) can be checked;
- :func:`gaussian_generator`, :func:`train_1d_gan` -- a 1-D GAN whose generator
  density is known, to train a real discriminator and compare it with :math:`D^*`;
- :func:`generator_logit_gradient` -- the gradient each generator loss sends back as
  :math:`D(G(z)) \to 0` (saturating vs non-saturating);
- :func:`gradient_estimates` -- the reparameterisation and score-function (REINFORCE)
  estimators of :math:`\nabla E_{q}[f(z)]`, whose variances notebook 03 compares, and
  :func:`vae_log_likelihood`, the :math:`f` of a VAE;
- :func:`vae_log_weights`, :func:`importance_bound` -- the ELBO as a lower bound on
  :math:`\log p(x)`, and how far below it lies.

Densities are ``torch.distributions`` objects; grids are 1-D tensors, integrated in
float64 with the trapezoid rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.distributions import Categorical, Distribution, MixtureSameFamily, Normal
from torch.nn.functional import softplus

from .losses import get_loss
from .models import MLPDiscriminator, MLPGenerator
from .train import GANTrainer
from .utils import evaluating

LOG4 = math.log(4.0)


# ----------------------------------------------------------------- 1-D densities
def mixture_1d(means, stds, weights=None) -> Distribution:
    """A 1-D mixture of Gaussians (equal weights unless ``weights`` is given)."""
    means = torch.as_tensor(means, dtype=torch.float64)
    stds = torch.as_tensor(stds, dtype=torch.float64).expand_as(means)
    weights = torch.ones_like(means) if weights is None else torch.as_tensor(weights,
                                                                            dtype=torch.float64)
    return MixtureSameFamily(Categorical(probs=weights / weights.sum()), Normal(means, stds))


def _log_density(p: Distribution, x: torch.Tensor) -> torch.Tensor:
    return p.log_prob(x.to(torch.float64))


def _check_grid(x: torch.Tensor, *densities: Distribution, tol: float = 1e-6) -> torch.Tensor:
    """A 1-D increasing grid that holds (almost) all the mass of every density, in float64."""
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.dim() != 1 or len(x) < 3 or not bool((x[1:] > x[:-1]).all()):
        raise ValueError("x must be a 1-D increasing grid of points, e.g. torch.linspace(-8, 8, 4001)")
    for p in densities:
        mass = torch.trapezoid(_log_density(p, x).exp(), x).item()
        if abs(mass - 1) > tol:
            raise ValueError(
                f"a density integrates to {mass:.6f} on the grid [{x[0]:.3g}, {x[-1]:.3g}] "
                f"with {len(x)} points, not 1: widen the grid or add points"
            )
    return x


# ------------------------------------------------------- discriminator and value
def optimal_logit(p_data: Distribution, p_g: Distribution, x: torch.Tensor) -> torch.Tensor:
    r"""The logit of :math:`D^*`: :math:`\log p_{data}(x) - \log p_g(x)` (stable far from the data)."""
    return _log_density(p_data, x) - _log_density(p_g, x)


def optimal_discriminator(p_data: Distribution, p_g: Distribution,
                          x: torch.Tensor) -> torch.Tensor:
    r""":math:`D^*(x) = p_{data}(x) / (p_{data}(x) + p_g(x))`: the best D for a fixed G.

    For a fixed generator, :math:`V(D, G)` is maximised pointwise by this D (Goodfellow et
    al. 2014, Prop. 1). Where :math:`p_g = p_{data}` it is exactly 1/2.
    """
    return torch.sigmoid(optimal_logit(p_data, p_g, x))


def value_function(d_logits: torch.Tensor, p_data: Distribution, p_g: Distribution,
                   x: torch.Tensor) -> float:
    r""":math:`V(D, G) = \int p_{data}\log D + p_g \log(1 - D)\,dx` on the grid ``x``.

    ``d_logits`` are D's raw scores at the grid points (``D = sigmoid(d_logits)``), so
    :math:`\log D = -\mathrm{softplus}(-l)` and :math:`\log(1-D) = -\mathrm{softplus}(l)`
    stay finite where D saturates. D maximises V; G minimises it. :math:`-V` is D's
    binary cross-entropy summed over a real and a fake example: "D's error".
    """
    x = _check_grid(x, p_data, p_g)
    d_logits = torch.as_tensor(d_logits, dtype=torch.float64).reshape(-1)
    if d_logits.shape != x.shape:
        raise ValueError(f"d_logits has {tuple(d_logits.shape)} values, the grid {len(x)}: "
                         "give D's logit at every grid point")
    integrand = (_log_density(p_data, x).exp() * -softplus(-d_logits)
                 + _log_density(p_g, x).exp() * -softplus(d_logits))
    return torch.trapezoid(integrand, x).item()


def kl_divergence(p: Distribution, q: Distribution, x: torch.Tensor) -> float:
    r""":math:`\mathrm{KL}(p \| q) = \int p \log(p/q)\,dx` on the grid ``x`` (nats)."""
    x = _check_grid(x, p, q)
    lp, lq = _log_density(p, x), _log_density(q, x)
    return torch.trapezoid(lp.exp() * (lp - lq), x).item()


def js_divergence(p: Distribution, q: Distribution, x: torch.Tensor) -> float:
    r""":math:`\mathrm{JSD}(p \| q) = \tfrac12 \mathrm{KL}(p \| m) + \tfrac12 \mathrm{KL}(q \| m)`,
    :math:`m = (p+q)/2`, on the grid ``x`` (nats; between 0 and :math:`\log 2`)."""
    x = _check_grid(x, p, q)
    lp, lq = _log_density(p, x), _log_density(q, x)
    lm = torch.logaddexp(lp, lq) - math.log(2)
    return 0.5 * torch.trapezoid(lp.exp() * (lp - lm) + lq.exp() * (lq - lm), x).item()


# ------------------------------------------------------------------- a 1-D GAN
def gaussian_generator(mean: float, std: float) -> MLPGenerator:
    r"""A generator whose density is known: :math:`G(z) = \mathrm{mean} + \mathrm{std}\cdot z`,
    :math:`z \sim N(0, 1)`, so :math:`p_g = N(\mathrm{mean}, \mathrm{std}^2)`.

    It is an :class:`~gantut.models.MLPGenerator` with no hidden layer (one ``Linear(1, 1)``),
    so the ordinary trainer can train it or, with ``lr_g=0``, hold it fixed.
    """
    if std <= 0:
        raise ValueError(f"std must be positive, got {std}")
    G = MLPGenerator(z_dim=1, hidden=(), out_shape=(1,), out_act=None)
    with torch.no_grad():
        G.net[0].weight.fill_(std)
        G.net[0].bias.fill_(mean)
    return G


def generator_density(G: MLPGenerator) -> Normal:
    """The density of a :func:`gaussian_generator` as its weights are now."""
    w, b = G.net[0].weight.detach().item(), G.net[0].bias.detach().item()
    return Normal(torch.tensor(b, dtype=torch.float64), torch.tensor(abs(w), dtype=torch.float64))


def train_1d_gan(p_data: Distribution, G: nn.Module, *, steps: int, lr_g: float = 0.0,
                 lr_d: float = 1e-3, n_data: int = 20000, batch_size: int = 128, hidden=(64, 64),
                 device="cpu", **fit_kw) -> GANTrainer:
    """Train a 1-D GAN on ``n_data`` samples of ``p_data`` and return the trainer.

    With ``lr_g=0`` (the default) G never moves and only the discriminator learns: the
    setting of Goodfellow et al.'s Proposition 1 ("for G fixed, the optimal discriminator
    is D*"). With ``lr_g > 0`` it is an ordinary GAN (non-saturating loss). It is the
    ordinary :class:`~gantut.train.GANTrainer`; ``trainer.D`` is an
    :class:`~gantut.models.MLPDiscriminator` on 1-D inputs. ``fit_kw`` go to ``fit``
    (e.g. ``callbacks``).
    """
    real = p_data.sample((n_data, 1)).float()
    D = MLPDiscriminator(in_shape=(1,), hidden=hidden)
    trainer = GANTrainer(G, D, loss="nonsaturating", lr_g=lr_g, lr_d=lr_d, betas=(0.5, 0.999),
                         batch_size=batch_size, device=device)
    return trainer.fit(real, steps=steps, **fit_kw)


@torch.no_grad()
def logits_on_grid(D: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A 1-D discriminator's logits at the grid points ``x`` (float64, on the CPU)."""
    device = next(D.parameters()).device
    with evaluating(D):
        out = D(torch.as_tensor(x, dtype=torch.float32, device=device).reshape(-1, 1))
    return out.double().cpu()


def discriminator_error(d_prob: torch.Tensor, target_prob: torch.Tensor, p_data: Distribution,
                        p_g: Distribution, x: torch.Tensor) -> float:
    r"""Mean :math:`|D(x) - D^*(x)|` under :math:`(p_{data} + p_g)/2`: how far a trained D is
    from the optimum where it matters (far from both densities D is never trained)."""
    x = _check_grid(x, p_data, p_g)
    w = 0.5 * (_log_density(p_data, x).exp() + _log_density(p_g, x).exp())
    diff = (torch.as_tensor(d_prob, dtype=torch.float64) - target_prob.to(torch.float64)).abs()
    return torch.trapezoid(w * diff, x).item()


# ------------------------------------------------------- generator gradients
def generator_logit_gradient(loss: str, d_fake: torch.Tensor) -> torch.Tensor:
    r"""Per sample, the derivative of generator loss ``loss`` (a name in
    :data:`gantut.losses.LOSSES`) with respect to D's logit on a generated sample, at the
    probabilities ``d_fake`` = D(G(z)).

    Every gradient G receives is this factor times :math:`\partial\,\mathrm{logit}/\partial\theta_G`.
    For the minimax loss it is :math:`-D(G(z))`, which vanishes as D(G(z)) -> 0; for the
    non-saturating loss it is :math:`D(G(z)) - 1`, close to -1 there.
    """
    d_fake = torch.as_tensor(d_fake, dtype=torch.float64)
    if bool(((d_fake <= 0) | (d_fake >= 1)).any()):
        raise ValueError("d_fake are probabilities D(G(z)) and must lie strictly between 0 and 1")
    f = torch.logit(d_fake).requires_grad_(True)
    _, g_loss = get_loss(loss)
    (grad,) = torch.autograd.grad(g_loss(f) * f.numel(), f)  # losses average: undo the mean
    return grad


# ------------------------------------------------------- gradient estimators
def gradient_estimates(f: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor,
                       log_sigma: torch.Tensor, n: int, method: str, baseline: float = 0.0,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    r"""``n`` independent one-sample estimates of :math:`\nabla_{\mu, \log\sigma}
    E_{z \sim N(\mu, \sigma^2)}[f(z)]`, as an ``n x 2d`` tensor (the gradient w.r.t. ``mu``
    then w.r.t. ``log_sigma``; ``mu`` and ``log_sigma`` have ``d`` entries).

    ``method="reparam"``: write :math:`z = \mu + \sigma\epsilon`, :math:`\epsilon \sim N(0, I)`,
    and differentiate :math:`f(z)` through z (the VAE's reparameterisation trick; needs a
    differentiable f). ``method="score"``: :math:`f(z)\,\nabla \log q(z)` with z held fixed
    (the score-function / REINFORCE estimator; f can be any function). Both are unbiased;
    their variances differ, which is what notebook 03 measures. ``baseline`` is subtracted
    from f in the score-function estimator, :math:`(f(z) - b)\,\nabla \log q(z)`: still
    unbiased, since :math:`E_q[\nabla \log q] = 0`, and a good b (about E[f]) cuts its variance.

    ``f`` maps an ``n x d`` batch of z to ``n`` values.
    """
    if method not in ("reparam", "score"):
        raise ValueError(f"unknown method {method!r}: choose 'reparam' or 'score'")
    mu = torch.as_tensor(mu).detach().reshape(1, -1)
    log_sigma = torch.as_tensor(log_sigma).detach().reshape(1, -1)
    if mu.shape != log_sigma.shape:
        raise ValueError(f"mu {tuple(mu.shape)} and log_sigma {tuple(log_sigma.shape)} differ")
    m = mu.expand(n, -1).clone().requires_grad_(True)  # one copy per estimate: per-row grads
    s = log_sigma.expand(n, -1).clone().requires_grad_(True)
    eps = torch.randn(m.shape, generator=generator, dtype=m.dtype).to(m.device)
    if method == "reparam":
        objective = f(m + s.exp() * eps)
    else:
        z = (m + s.exp() * eps).detach()
        log_q = Normal(m, s.exp()).log_prob(z).sum(1)
        objective = (f(z).detach() - baseline) * log_q
    g_mu, g_s = torch.autograd.grad(objective.sum(), (m, s))
    return torch.cat([g_mu, g_s], dim=1)


def estimator_variance(estimates: torch.Tensor) -> float:
    """Total variance (trace of the covariance) of a batch of one-sample gradient estimates."""
    return estimates.var(dim=0).sum().item()


def vae_log_likelihood(vae, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""For one image ``x`` (``1 x 1 x 28 x 28`` in [-1, 1]), the function
    :math:`z \mapsto \log p(x|z)` of the VAE's Bernoulli decoder: the reconstruction term of
    the ELBO, whose gradient w.r.t. :math:`q(z|x)` the estimators above estimate."""
    target = ((x.reshape(1, -1) + 1) / 2).clamp(0, 1)

    def log_px_given_z(z: torch.Tensor) -> torch.Tensor:
        logits = vae.decoder(z.to(target.dtype))
        return -nn.functional.binary_cross_entropy_with_logits(
            logits, target.expand_as(logits), reduction="none").sum(1)

    return log_px_given_z


@torch.no_grad()
def vae_log_weights(vae, x: torch.Tensor, k: int = 100) -> torch.Tensor:
    r"""Log importance weights :math:`\log w = \log p(x|z) + \log p(z) - \log q(z|x)` for
    ``k`` draws :math:`z \sim q(z|x)` per image: an ``N x k`` tensor for images ``x`` in [-1, 1].

    Their mean over the draws estimates the ELBO; :math:`\log \frac1k \sum_j w_j` (Burda et
    al. 2016, the importance-weighted bound) is a tighter lower bound on :math:`\log p(x)`
    that rises towards it as ``k`` grows. The gap at ``k = 1`` is
    :math:`\mathrm{KL}(q(z|x)\,\|\,p(z|x))`.
    """
    mu, logvar = vae.encode(x)
    std = torch.exp(0.5 * logvar)
    prior = Normal(torch.zeros_like(mu[0]), torch.ones_like(mu[0]))
    rows = []
    for i in range(len(x)):
        q = Normal(mu[i], std[i])
        z = q.sample((k,))
        log_px_z = vae_log_likelihood(vae, x[i:i + 1])(z)
        rows.append(log_px_z + prior.log_prob(z).sum(1) - q.log_prob(z).sum(1))
    return torch.stack(rows)


def importance_bound(log_w: torch.Tensor) -> torch.Tensor:
    r""":math:`\log \frac1k \sum_j w_j` per row of ``log_w`` (``N x k``): a lower bound on
    :math:`\log p(x)` at least as high as the ELBO estimate ``log_w.mean(1)`` (Jensen)."""
    return torch.logsumexp(log_w, dim=1) - math.log(log_w.shape[1])
