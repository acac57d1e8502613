"""Flow matching: the loss, the Euler sampler, the networks and the trainer."""

import pytest
import torch

from gantut.data import ring_of_gaussians
from gantut.flow import FlowTrainer, UNet, VelocityMLP, euler_sample, flow_matching_loss
from gantut.metrics import mode_coverage
from gantut.recipes import make_trainer


class Const(torch.nn.Module):
    """v(x, t) = c for every x and t."""

    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x, t):
        return self.c.expand_as(x)


def test_loss_is_the_squared_error_against_the_straight_path_velocity():
    x1 = torch.randn(512, 2) + 3.0
    torch.manual_seed(0)
    loss = flow_matching_loss(Const(torch.zeros(2)), x1)
    torch.manual_seed(0)
    x0 = torch.randn_like(x1)  # the same noise the loss drew first
    assert loss == pytest.approx(((x1 - x0) ** 2).mean().item(), rel=1e-6)


def test_euler_follows_a_constant_field_and_the_exact_field_of_a_point_mass():
    x0 = torch.randn(100, 2)
    torch.testing.assert_close(euler_sample(Const(torch.tensor([1.0, -2.0])), x0, 7),
                               x0 + torch.tensor([1.0, -2.0]))

    class ToPoint(torch.nn.Module):  # the flow-matching optimum for data = one point mu
        def forward(self, x, t):
            return (torch.tensor([2.0, 1.0]) - x) / (1 - t)[:, None]

    for steps in (1, 3, 10):  # straight paths: Euler is exact, whatever the number of steps
        torch.testing.assert_close(euler_sample(ToPoint(), x0, steps),
                                   torch.tensor([[2.0, 1.0]]).expand(100, 2))
    with pytest.raises(ValueError, match="at least 1"):
        euler_sample(ToPoint(), x0, 0)


def test_networks_keep_the_data_shape():
    t = torch.rand(5)
    assert VelocityMLP()(torch.randn(5, 2), t).shape == (5, 2)
    assert UNet(ch=8)(torch.randn(5, 1, 28, 28), t).shape == (5, 1, 28, 28)


def test_flow_learns_the_ring():
    ring = ring_of_gaussians(n_modes=8, radius=2.0, std=0.1)
    torch.manual_seed(0)
    tr = FlowTrainer(VelocityMLP(), lr=2e-3, batch_size=128, device="cpu")
    tr.fit(ring.sample(4096), steps=800, progress=False)
    df = tr.history.df()
    assert df.loss.iloc[-100:].mean() < df.loss.iloc[:100].mean()
    assert mode_coverage(tr.sample(2000, steps=32), ring)["modes"] >= 7


def test_resume_equals_uninterrupted_and_snapshots(tmp_path, small_mnist):
    x = small_mnist[0]

    def build():
        return FlowTrainer(UNet(ch=8), lr=1e-3, batch_size=16, ema=0.9, sample_steps=2,
                           device="cpu")

    torch.manual_seed(1)
    full = build().fit(x, steps=6, progress=False)
    torch.manual_seed(1)
    half = build()
    half.fit(x, steps=4, progress=False, callbacks=[(0, lambda tr: tr.save(tmp_path / "f.pt"))])
    torch.manual_seed(5)
    resumed = build().resume(tmp_path / "f.pt")
    resumed.fit(x, steps=2, progress=False, callbacks=[(1, resumed.snapshot)])
    for k in full.modules:
        for p, q in zip(full.modules[k].parameters(), resumed.modules[k].parameters(),
                        strict=True):
            assert torch.equal(p, q), k
    assert [s for s, _ in resumed.snapshots] == [5, 6]
    assert resumed.snapshots[0][1].shape == (64, 1, 28, 28)


def test_sampling_in_chunks_gives_the_samples_of_one_batch():
    tr = FlowTrainer(UNet(ch=8), ema=0.9, device="cpu")
    z = torch.randn(300, 1, 28, 28)  # more than one chunk of 256
    torch.testing.assert_close(tr.sample(z, steps=2), euler_sample(tr.net_ema, z, 2))
    assert tr.sample(5).shape == (5, 1, 28, 28)


def test_the_flow_recipe():
    tr = make_trainer("flow", "cpu")
    assert isinstance(tr, FlowTrainer) and tr.sample(3, steps=1).shape == (3, 1, 28, 28)
