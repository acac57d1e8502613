from types import SimpleNamespace

import pytest
import torch
from torch import nn

from gantut.diagnostics import (
    activation_stats,
    dead_unit_share,
    generator_gradient_norm,
    layer_grad_norms,
    probe_generator_gradients,
    real_score_gap,
    real_scores,
)
from gantut.losses import get_loss
from gantut.models import MLPDiscriminator, MLPGenerator


def _net(act: nn.Module, bias: float) -> nn.Sequential:
    """Two units behind a fixed linear layer: unit 0 gets +5*x0 + bias, unit 1 gets -5*x0 + bias."""
    lin = nn.Linear(1, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[5.0], [-5.0]]))
        lin.bias.fill_(bias)
    return nn.Sequential(lin, act)


def test_dead_relu_is_counted_and_leaky_relu_never_dies():
    x = torch.rand(100, 1) + 0.1  # positive inputs: unit 1 (weight -5) is always negative
    rows = activation_stats(_net(nn.ReLU(), 0.0), x)
    assert rows == [{"layer": "1", "activation": "ReLU", "units": 2, "dead": 0.5, "gain": 0.5}]
    assert activation_stats(_net(nn.LeakyReLU(0.2), 0.0), x)[0]["dead"] == 0.0


@pytest.mark.parametrize("act", [nn.Sigmoid(), nn.Tanh()])
def test_saturated_units_are_dead(act):
    x = torch.rand(100, 1) + 2.0  # pre-activations +-(10..15): both units saturate
    assert activation_stats(_net(act, 0.0), x)[0]["dead"] == 1.0
    near_zero = torch.rand(100, 1) * 0.01  # pre-activations ~0: full derivative
    row = activation_stats(_net(act, 0.0), near_zero)[0]
    assert row["dead"] == 0.0 and row["gain"] > 0.99


def test_stats_skip_the_generator_output_and_restore_the_mode():
    G = MLPGenerator(act="relu")
    G.train()
    rows = activation_stats(G, torch.randn(64, 100))
    assert [r["layer"] for r in rows] == ["net.1", "net.3"]  # out_act (tanh) skipped
    assert G.training
    share = dead_unit_share(G, torch.randn(64, 100))
    assert 0.0 <= share <= 1.0


def test_stats_refuse_a_model_without_activations():
    with pytest.raises(ValueError, match="nothing to measure"):
        activation_stats(nn.Linear(3, 3), torch.randn(2, 3))


def test_layer_grad_norms_fall_through_a_deep_sigmoid_net_and_batch_norm_restores_them():
    z = torch.randn(128, 100)
    D = MLPDiscriminator()

    def loss(G):
        return D(G(z)).mean()

    plain = layer_grad_norms(MLPGenerator(hidden=(128,) * 8, act="sigmoid"), loss)
    normed = layer_grad_norms(MLPGenerator(hidden=(128,) * 8, act="sigmoid", norm="batch"), loss)
    assert len(plain) == 9
    assert plain[0] / plain[-1] < 1e-5  # vanished through depth
    assert normed[0] / normed[-1] > 1e3 * plain[0] / plain[-1]


def test_normalised_mlps_build_and_reject_unknown_norms():
    for norm in ("batch", "layer"):
        G, D = MLPGenerator(norm=norm), MLPDiscriminator(norm=norm, dropout=0.3)
        assert D(G(torch.randn(4, 100))).shape == (4,)
        assert sum(isinstance(m, (nn.BatchNorm1d, nn.LayerNorm)) for m in D.modules()) == 2
    with pytest.raises(ValueError, match="unknown norm 'group'"):
        MLPGenerator(norm="group")


def test_generator_gradient_norm_matches_clip_grad_norm_and_clipping_only_shrinks():
    G, D = MLPGenerator(), MLPDiscriminator()
    z = torch.randn(256, 100, generator=torch.Generator().manual_seed(0))
    for loss in ("minimax", "nonsaturating"):  # the same number clip_grad_norm_ reports
        G.zero_grad(set_to_none=True)
        get_loss(loss)[1](D(G(z))).backward()
        direct = float(torch.nn.utils.clip_grad_norm_(G.parameters(), float("inf")))
        assert generator_gradient_norm(G, D, loss) == pytest.approx(direct, rel=1e-5)
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
    raw = generator_gradient_norm(G, D, "nonsaturating")
    for clip in (raw / 10, raw * 10):
        clipped = generator_gradient_norm(G, D, "nonsaturating", clip=clip)
        assert clipped == pytest.approx(min(raw, clip), rel=1e-4)
    assert all(p.grad is None for p in G.parameters())  # left as they were
    assert all(p.requires_grad for p in D.parameters())


def test_probe_keeps_g_fixed_and_minimax_gradient_collapses(small_mnist):
    x, _ = small_mnist
    G, D = MLPGenerator(), MLPDiscriminator()
    before = [p.detach().clone() for p in G.parameters()]
    probes = {"minimax": {"loss": "minimax"}, "nonsaturating": {"loss": "nonsaturating"},
              "clipped": {"loss": "minimax", "clip": 0.01}}
    _, df = probe_generator_gradients(G, D, x, steps=150, every=50, probes=probes)
    assert list(df.index) == [0, 50, 100, 150]
    assert all(torch.equal(a, b) for a, b in zip(before, G.parameters(), strict=True))
    assert df["d_fake"].iloc[-1] < 0.05  # D has learned to reject G's samples
    assert df["minimax"].iloc[-1] < df["minimax"].max() / 5
    assert df["nonsaturating"].iloc[-1] > 10 * df["minimax"].iloc[-1]
    assert (df["clipped"] <= df["minimax"] * (1 + 1e-5)).all()


def test_vae_elbo_is_reproducible_and_leaves_the_random_stream_alone(mnist):
    from gantut.diagnostics import vae_elbo
    from gantut.models import VAE

    vae = VAE().train()
    x = mnist.test_x[:300]
    torch.manual_seed(5)
    a = vae_elbo(vae, x, batch=128)
    after = torch.rand(1)
    torch.manual_seed(5)
    b = vae_elbo(vae, x, batch=128)
    assert a == pytest.approx(b) and torch.equal(after, torch.rand(1))
    assert vae.training
    assert a["elbo"] == pytest.approx(a["recon"] - a["kl"]) and a["kl"] >= 0


def test_latent_map_needs_a_2d_latent_and_draws_both_panels(mnist):
    import matplotlib

    matplotlib.use("Agg")
    from gantut.models import VAE
    from gantut.plots import plot_latent_map

    with pytest.raises(ValueError, match="z_dim=2"):
        plot_latent_map(VAE(z_dim=16), mnist.test_x[:10], mnist.test_y[:10])
    fig = plot_latent_map(VAE(z_dim=2), mnist.test_x[:200], mnist.test_y[:200], n=5)
    assert len(fig.axes) == 3  # scatter, the decoded grid, the colour bar
    assert fig.axes[1].images[0].get_array().shape == (5 * 30 + 2, 5 * 30 + 2)


def test_clipping_scales_every_layer_alike_so_the_fall_through_depth_stays():
    G, D, z = MLPGenerator(hidden=(128,) * 4, act="sigmoid"), MLPDiscriminator(), torch.randn(64, 100)

    def loss(m):
        return D(m(z)).mean()

    raw = layer_grad_norms(G, loss)
    small = sum(v**2 for v in raw) ** 0.5 / 100  # well below the total norm: clipping acts
    clipped = layer_grad_norms(G, loss, clip=small)
    assert sum(v**2 for v in clipped) < sum(v**2 for v in raw)
    assert clipped[0] / clipped[-1] == pytest.approx(raw[0] / raw[-1], rel=1e-4)
    assert all(p.grad is None for p in G.parameters())


def test_generator_gradient_norm_compares_losses_on_the_same_state():
    from gantut.models import MLPDiscriminator, MLPGenerator

    G, D = MLPGenerator(), MLPDiscriminator()
    with torch.no_grad():  # a D that confidently rejects everything: D(G(z)) ~ sigmoid(-6)
        D.head.bias.fill_(-6.0)
    mm = generator_gradient_norm(G, D, "minimax")
    ns = generator_gradient_norm(G, D, "nonsaturating")
    assert ns > 50 * mm  # sigma(-6) ~ 0.0025 vs 1 - sigma(-6) ~ 1
    assert all(p.requires_grad for p in D.parameters())  # D left as it was
    assert generator_gradient_norm(G, D, "minimax") == mm  # same noise every call


class _Memoriser(nn.Module):
    """A D that says +10 (real) to the images it memorised and -10 (fake) to every other."""

    def __init__(self, memorised: torch.Tensor):
        super().__init__()
        self.memorised = memorised.flatten(1)
        self.drop = nn.Dropout(0.5)  # must be off while probing

    def forward(self, x):
        assert not self.training, "the probe must run D in eval mode"
        hit = (x.flatten(1)[:, None, :] == self.memorised[None]).all(-1).any(1)
        return self.drop(torch.where(hit, 10.0, -10.0))[:, None]


def test_a_memorising_d_shows_the_full_gap_and_the_probe_restores_train_mode():
    gen = torch.Generator().manual_seed(0)
    train, held = torch.randn(40, 1, 4, 4, generator=gen), torch.randn(30, 1, 4, 4, generator=gen)
    D = _Memoriser(train[:20]).train()
    logged = []
    trainer = SimpleNamespace(D=D, device=torch.device("cpu"), log_eval=lambda **v: logged.append(v))
    real_score_gap(train[:20], held)(trainer)
    assert logged == [pytest.approx({"train_real": 1.0, "held_real": 0.0, "gap": 1.0,
                                     "train_p": torch.sigmoid(torch.tensor(10.0)).item(),
                                     "held_p": torch.sigmoid(torch.tensor(-10.0)).item()})]
    assert D.training
    # half of the probe memorised: half called real, mean p halfway; batches give the same
    half = real_scores(D, train[10:30], batch=7)
    assert half["real"] == pytest.approx(0.5) and half["p"] == pytest.approx(0.5, abs=1e-4)
