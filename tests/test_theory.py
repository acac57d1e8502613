"""gantut.theory: every identity of notebook 03 against a hand-computed or closed-form value."""

import math

import pytest
import torch
from torch.distributions import Normal

from gantut import theory as T

X = torch.linspace(-16, 16, 8001)


def normal(m, s):
    return Normal(torch.tensor(m, dtype=torch.float64), torch.tensor(s, dtype=torch.float64))


def test_optimal_discriminator_by_hand():
    # N(0,1) vs N(1,1) at x=0: p/(p+q) = 1 / (1 + exp(-1/2)); at x=1/2 the densities are equal
    d = T.optimal_discriminator(normal(0.0, 1.0), normal(1.0, 1.0), torch.tensor([0.0, 0.5]))
    assert d[0].item() == pytest.approx(1 / (1 + math.exp(-0.5)), abs=1e-12)
    assert d[1].item() == pytest.approx(0.5, abs=1e-12)


def test_optimal_discriminator_is_half_when_g_matches_data():
    p = T.mixture_1d([-1.0, 2.0], [0.5, 0.3])
    assert torch.allclose(T.optimal_discriminator(p, p, X), torch.full_like(X, 0.5, dtype=torch.float64))


def test_mixture_density_integrates_to_one_and_has_the_right_mean():
    p = T.mixture_1d([-1.0, 2.0], [0.5, 0.3], weights=[1.0, 3.0])
    dens = p.log_prob(X.double()).exp()
    assert torch.trapezoid(dens, X.double()).item() == pytest.approx(1.0, abs=1e-8)
    assert torch.trapezoid(dens * X.double(), X.double()).item() == pytest.approx(
        0.25 * -1.0 + 0.75 * 2.0, abs=1e-8)


def test_kl_of_two_gaussians_matches_the_closed_form():
    m1, s1, m2, s2 = 0.3, 0.7, -0.5, 1.3
    exact = math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    assert T.kl_divergence(normal(m1, s1), normal(m2, s2), X) == pytest.approx(exact, abs=1e-8)


def test_jsd_bounds_and_symmetry():
    p, q = normal(-1.0, 0.6), T.mixture_1d([0.5, 2.0], [0.4, 0.8])
    assert T.js_divergence(p, p, X) == pytest.approx(0.0, abs=1e-12)
    assert T.js_divergence(p, q, X) == pytest.approx(T.js_divergence(q, p, X), abs=1e-12)
    # far apart, the densities do not overlap and the JSD reaches its maximum, log 2
    far = T.js_divergence(normal(-6.0, 0.3), normal(6.0, 0.3), X)
    assert far == pytest.approx(math.log(2), abs=1e-9)
    assert 0 < T.js_divergence(p, q, X) < math.log(2)


def test_value_function_of_a_coin_flip_discriminator_is_minus_log_4():
    p, q = normal(0.0, 1.0), normal(2.0, 0.5)
    assert T.value_function(torch.zeros_like(X), p, q, X) == pytest.approx(-math.log(4), abs=1e-8)


@pytest.mark.parametrize("q_mean,q_std", [(0.0, 1.0), (1.0, 0.5), (-3.0, 2.0)])
def test_value_at_the_optimal_discriminator_is_minus_log4_plus_2_jsd(q_mean, q_std):
    p, q = T.mixture_1d([-1.5, 1.0], [0.4, 0.6], [0.4, 0.6]), normal(q_mean, q_std)
    v_star = T.value_function(T.optimal_logit(p, q, X), p, q, X)
    assert v_star == pytest.approx(-math.log(4) + 2 * T.js_divergence(p, q, X), abs=1e-8)
    # and D* is the maximiser: any other D scores lower
    for shift in (-0.5, 0.3, 2.0):
        assert T.value_function(T.optimal_logit(p, q, X) + shift, p, q, X) < v_star


def test_grid_errors_say_what_to_do():
    p, q = normal(0.0, 1.0), normal(5.0, 1.0)
    with pytest.raises(ValueError, match="widen the grid"):
        T.js_divergence(p, q, torch.linspace(-2, 2, 101))
    with pytest.raises(ValueError, match="increasing grid"):
        T.kl_divergence(p, q, torch.linspace(5, -5, 101))
    with pytest.raises(ValueError, match="every grid point"):
        T.value_function(torch.zeros(3), p, q, X)


def test_gaussian_generator_has_the_density_it_claims():
    G = T.gaussian_generator(1.5, 0.4)
    x = G.sample(20000).squeeze(1)
    assert x.mean().item() == pytest.approx(1.5, abs=0.02)
    assert x.std().item() == pytest.approx(0.4, abs=0.02)
    pg = T.generator_density(G)
    assert pg.mean.item() == pytest.approx(1.5) and pg.stddev.item() == pytest.approx(0.4)
    with pytest.raises(ValueError, match="positive"):
        T.gaussian_generator(0.0, 0.0)


def test_a_trained_discriminator_approaches_d_star_and_g_stays_fixed():
    p = T.mixture_1d([-1.5, 1.0], [0.4, 0.6], [0.4, 0.6])
    G = T.gaussian_generator(0.5, 1.2)
    q = T.generator_density(G)
    trainer = T.train_1d_gan(p, G, steps=400, progress=False)
    d = torch.sigmoid(T.logits_on_grid(trainer.D, X))
    target = T.optimal_discriminator(p, q, X)
    start = T.discriminator_error(torch.full_like(target, 0.5), target, p, q, X)
    assert T.discriminator_error(d, target, p, q, X) < 0.05 < start
    after = T.generator_density(trainer.G)  # lr_g = 0: G did not move
    assert after.mean.item() == pytest.approx(0.5) and after.stddev.item() == pytest.approx(1.2)


def test_generator_logit_gradients_have_their_closed_forms():
    d = torch.tensor([1e-4, 0.01, 0.3, 0.5, 0.9], dtype=torch.float64)
    assert torch.allclose(T.generator_logit_gradient("minimax", d), -d)
    assert torch.allclose(T.generator_logit_gradient("nonsaturating", d), d - 1)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        T.generator_logit_gradient("minimax", torch.tensor([0.0]))


def test_both_estimators_are_unbiased_and_reparam_variance_is_the_closed_form():
    f = lambda z: (z**2).sum(1)  # noqa: E731  E[f] = sum(mu^2 + sigma^2)
    mu, sigma = torch.tensor([1.0, -0.5]), torch.tensor([0.5, 1.0])
    exact = torch.cat([2 * mu, 2 * sigma**2])  # d/dmu and d/dlog(sigma)
    gen = torch.Generator().manual_seed(0)
    r = T.gradient_estimates(f, mu, sigma.log(), 100_000, "reparam", generator=gen)
    s = T.gradient_estimates(f, mu, sigma.log(), 100_000, "score", generator=gen)
    assert torch.allclose(r.mean(0), exact, atol=0.05)
    assert torch.allclose(s.mean(0), exact, atol=0.15)
    # var of 2z is 4 sigma^2; of 2 sigma eps z it is 4 sigma^2 (mu^2 + 2 sigma^2)
    var = torch.cat([4 * sigma**2, 4 * sigma**2 * (mu**2 + 2 * sigma**2)])
    assert torch.allclose(r.var(0), var, rtol=0.05)
    assert T.estimator_variance(s) > 10 * T.estimator_variance(r)
    # a baseline keeps the score-function estimator unbiased and lowers its variance
    b = T.gradient_estimates(f, mu, sigma.log(), 100_000, "score", baseline=2.25, generator=gen)
    assert torch.allclose(b.mean(0), exact, atol=0.1)
    assert T.estimator_variance(b) < T.estimator_variance(s)
    with pytest.raises(ValueError, match="'reparam' or 'score'"):
        T.gradient_estimates(f, mu, sigma.log(), 10, "reinforce")


def test_vae_log_likelihood_is_the_elbo_reconstruction_term():
    from gantut.models import VAE

    vae, x = VAE(z_dim=4, hidden=32), torch.rand(1, 1, 28, 28) * 2 - 1
    z = torch.randn(3, 4)
    target = ((x.flatten(1) + 1) / 2).expand(3, -1)
    by_hand = (target * torch.log(torch.sigmoid(vae.decoder(z)))
               + (1 - target) * torch.log(1 - torch.sigmoid(vae.decoder(z)))).sum(1)
    assert torch.allclose(T.vae_log_likelihood(vae, x)(z), by_hand, atol=1e-3)


def test_importance_bound_is_exact_when_q_is_the_prior_and_the_decoder_ignores_z():
    from gantut.models import VAE

    vae = VAE(z_dim=3, hidden=16)
    with torch.no_grad():  # q(z|x) = N(0, I) = p(z), and p(x|z) = Bernoulli(sigmoid(b)) for every z
        vae.encoder[-1].weight.zero_()
        vae.encoder[-1].bias.zero_()
        vae.decoder[-1].weight.zero_()
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    t, b = (x.flatten(1) + 1) / 2, vae.decoder[-1].bias
    log_px = (t * torch.nn.functional.logsigmoid(b) + (1 - t) * torch.nn.functional.logsigmoid(-b)).sum(1)
    log_w = T.vae_log_weights(vae, x, k=50)
    assert log_w.shape == (2, 50)
    assert torch.allclose(T.importance_bound(log_w), log_px, atol=1e-3)
    assert torch.allclose(log_w.mean(1), log_px, atol=1e-3)  # the ELBO is tight: q is the posterior


def test_importance_bound_lies_above_the_elbo_and_rises_with_k():
    from gantut.models import VAE

    torch.manual_seed(0)
    vae, x = VAE(z_dim=4, hidden=32), torch.rand(3, 1, 28, 28) * 2 - 1
    log_w = T.vae_log_weights(vae, x, k=400)
    assert (T.importance_bound(log_w) >= log_w.mean(1)).all()
    # averaged over many groups, the bound with 100 draws is above the bound with 1 (the ELBO)
    k1 = T.importance_bound(log_w.reshape(3, 400, 1).flatten(0, 1)).reshape(3, 400).mean(1)
    k100 = T.importance_bound(log_w.reshape(3, 4, 100).flatten(0, 1)).reshape(3, 4).mean(1)
    assert (k100 > k1).all()
