import pytest
import torch

from gantut.models import (
    VAE,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    activation,
    count_parameters,
)


def test_seed_architecture_is_the_sources():
    G, D = MLPGenerator(), MLPDiscriminator()
    assert [m.out_features for m in G.net if isinstance(m, torch.nn.Linear)] == [128, 128, 784]
    assert G.net[0].in_features == 100
    assert count_parameters(D) == 784 * 128 + 128 + 128 * 128 + 128 + 128 + 1


@pytest.mark.parametrize("G,D", [(MLPGenerator, MLPDiscriminator), (DCGANGenerator, DCGANDiscriminator)])
def test_shapes_dtypes_and_range(G, D):
    G, D = G(), D()
    x = G(torch.randn(5, 100))
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1  # tanh output, like the data
    out = D(x)
    assert out.shape == (5,) and out.dtype == torch.float32
    assert D(x.flatten(1)).shape == (5,)  # flat images are accepted too


def test_toy_models():
    G = MLPGenerator(z_dim=2, out_shape=(2,), out_act=None)
    D = MLPDiscriminator(in_shape=(2,))
    assert G(torch.randn(7, 2)).shape == (7, 2)
    assert D(torch.randn(7, 2)).shape == (7,)


@pytest.mark.parametrize("bad", [(28, 28), (3, 1, 28, 28 + 1), (3, 3, 28, 28), (3, 100)])
def test_discriminator_rejects_wrong_shapes(bad):
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\) or \(N, 784\)"):
        MLPDiscriminator()(torch.randn(*bad))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        DCGANDiscriminator()(torch.randn(*bad))


def test_generator_rejects_wrong_noise():
    with pytest.raises(ValueError, match=r"\(N, 100\)"):
        MLPGenerator()(torch.randn(4, 64))


def test_conditional_models_need_labels():
    G, D = MLPGenerator(n_classes=10), MLPDiscriminator(n_classes=10)
    y = torch.arange(4)
    x = G(torch.randn(4, 100), y)
    assert D(x, y).shape == (4,)
    with pytest.raises(ValueError, match="pass labels y"):
        G(torch.randn(4, 100))
    with pytest.raises(ValueError, match="pass labels y"):
        D(x)
    Gc, Dc = DCGANGenerator(n_classes=10), DCGANDiscriminator(n_classes=10)
    assert Dc(Gc(torch.randn(4, 100), y), y).shape == (4,)


def test_spectral_norm_bounds_the_layers():
    D = MLPDiscriminator(spectral_norm=True)
    D(torch.randn(8, 784))  # one power iteration per call
    for _ in range(20):
        D(torch.randn(8, 784))
    w = D.head.weight
    assert torch.linalg.matrix_norm(w.detach(), ord=2).item() == pytest.approx(1.0, rel=0.05)


def test_softmax_over_one_output_is_constant():
    """The source puts a softmax on D's single output: it is 1 whatever the input."""
    out = MLPDiscriminator()(torch.randn(6, 784)).unsqueeze(1)
    assert torch.equal(torch.softmax(out, dim=1), torch.ones(6, 1))


def test_vae():
    vae = VAE(z_dim=8)
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    out = vae.elbo(x)
    assert set(out) == {"elbo", "recon", "kl"}
    assert out["kl"] >= 0 and out["elbo"] <= out["recon"]
    assert vae.sample(3).shape == (3, 1, 28, 28)
    assert vae.reconstruct(x).shape == x.shape


def test_unknown_activation():
    with pytest.raises(ValueError, match="sigmoid, tanh, relu, leakyrelu"):
        activation("gelu")
