import math

import pytest
import torch

from gantut import losses

r = torch.tensor([2.0, -1.0])  # D's logits on real data
f = torch.tensor([0.5, -3.0])  # ... on fake data


def sig(t):
    return 1 / (1 + math.exp(-t))


def mean(xs):
    return sum(xs) / len(xs)


def test_bce_d_loss():
    want = mean([-math.log(sig(2.0)), -math.log(sig(-1.0))]) + mean(
        [-math.log(1 - sig(0.5)), -math.log(1 - sig(-3.0))])
    assert losses.bce_d_loss(r, f).item() == pytest.approx(want, rel=1e-6)


def test_minimax_and_nonsaturating_g_loss():
    assert losses.minimax_g_loss(f).item() == pytest.approx(
        mean([math.log(1 - sig(0.5)), math.log(1 - sig(-3.0))]), rel=1e-6)
    assert losses.nonsaturating_g_loss(f).item() == pytest.approx(
        mean([-math.log(sig(0.5)), -math.log(sig(-3.0))]), rel=1e-6)


def test_saturation_of_the_gradients():
    """As D(G(z)) -> 0 the minimax gradient vanishes, the non-saturating one does not."""
    f = torch.tensor([-8.0], requires_grad=True)
    (g_mm,) = torch.autograd.grad(losses.minimax_g_loss(f), f)
    (g_ns,) = torch.autograd.grad(losses.nonsaturating_g_loss(f), f)
    assert abs(g_mm.item()) == pytest.approx(sig(-8.0), rel=1e-5)  # -sigma(f)
    assert g_ns.item() == pytest.approx(sig(-8.0) - 1, rel=1e-5)


def test_lsgan():
    assert losses.lsgan_d_loss(r, f).item() == pytest.approx(
        0.5 * mean([1.0, 4.0]) + 0.5 * mean([0.25, 9.0]))
    assert losses.lsgan_g_loss(f).item() == pytest.approx(0.5 * mean([0.25, 16.0]))


def test_hinge():
    assert losses.hinge_d_loss(r, f).item() == pytest.approx(mean([0.0, 2.0]) + mean([1.5, 0.0]))
    assert losses.hinge_g_loss(f).item() == pytest.approx(1.25)


def test_wgan():
    assert losses.wgan_d_loss(r, f).item() == pytest.approx(-1.25 - 0.5)
    assert losses.wgan_g_loss(f).item() == pytest.approx(1.25)


def test_gradient_penalty_of_a_linear_critic():
    """D(x) = w.x has gradient w everywhere: the penalty is (|w| - 1)^2."""
    w = torch.tensor([3.0, 4.0])

    def D(x):
        return x @ w

    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    assert losses.gradient_penalty(D, real, fake).item() == pytest.approx((5.0 - 1) ** 2)


def test_r1_penalty_of_a_linear_d_is_its_squared_weight_norm():
    D = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 1))
    real = torch.randn(5, 1, 2, 3)
    expected = D[1].weight.pow(2).sum()  # the gradient of w.x + b is w for every image
    assert torch.allclose(losses.r1_penalty(D, real), expected)
    assert not real.requires_grad  # the caller's batch is left alone


def test_unknown_loss():
    with pytest.raises(ValueError, match="minimax, nonsaturating, lsgan, hinge, wgan-gp"):
        losses.get_loss("wasserstein")
