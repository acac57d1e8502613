import pytest
import torch

from gantut.data import ring_of_gaussians
from gantut.experiments import over_seeds, summarise, toy_gan


def test_toy_gan_is_reproducible_and_the_seed_matters():
    ring = ring_of_gaussians()
    a = toy_gan(ring, steps=5, seed=3, n_data=256, batch_size=32)
    b = toy_gan(ring, steps=5, seed=3, n_data=256, batch_size=32)
    c = toy_gan(ring, steps=5, seed=4, n_data=256, batch_size=32)
    z = torch.randn(10, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.sample(z), b.sample(z))
    assert not torch.equal(a.sample(z), c.sample(z))
    assert a.step == 5 and a.sample(7).shape == (7, 2)


def test_toy_gan_passes_settings_and_watches_the_run():
    seen = []
    tr = toy_gan(ring_of_gaussians(), steps=4, seed=0, n_data=128, batch_size=32, loss="wgan-gp",
                 n_critic=2, spectral_norm=True, callbacks=[(2, lambda t: seen.append(t.step))])
    assert tr.loss == "wgan-gp" and tr.n_critic == 2
    assert any("parametrizations" in name for name, _ in tr.D.named_modules())
    assert seen == [2, 4]


def test_over_seeds_runs_every_config_and_seed_in_order():
    calls = []

    def run(name, seed, **config):
        calls.append((name, seed, config))
        return {"score": seed * config["k"]}

    table = over_seeds(run, {"a": {"k": 1}, "b": {"k": 10}}, seeds=range(3))
    assert calls[0] == ("a", 0, {"k": 1}) and len(calls) == 6
    assert list(table.columns) == ["config", "seed", "score", "seconds"]
    assert table["score"].tolist() == [0, 1, 2, 0, 10, 20]

    summary = summarise(table, ["score"])
    assert list(summary.index) == ["a", "b"]
    assert summary.loc["b", ("score", "mean")] == 10
    assert summary.loc["a", ("score", "std")] == pytest.approx(1.0)
    assert "seed" not in summarise(table).columns.get_level_values(0)


def test_over_seeds_rejects_bad_runs_and_empty_input():
    with pytest.raises(TypeError, match="dict of numbers"):
        over_seeds(lambda name, seed: 1.0, {"a": {}}, [0])
    with pytest.raises(ValueError, match="at least one"):
        over_seeds(lambda name, seed: {}, {}, [0])
    with pytest.raises(ValueError, match="at least one"):
        over_seeds(lambda name, seed: {}, {"a": {}}, [])


def test_instance_noise_blurs_d_s_inputs_only_while_training_and_fades_to_zero():
    from torch import nn

    from gantut.experiments import InstanceNoise

    D = InstanceNoise(nn.Identity(), sigma=0.5)
    x = torch.zeros(4000, 2)
    assert D(x).std().item() == pytest.approx(0.5, rel=0.05)
    D.eval()
    assert torch.equal(D(x), x)
    seen = []
    tr = toy_gan(ring_of_gaussians(), steps=10, seed=0, n_data=128, batch_size=32,
                 instance_noise=0.5, callbacks=[(1, lambda t: seen.append(t.D.sigma))])
    assert isinstance(tr.D, InstanceNoise)
    assert seen[0] == pytest.approx(0.45) and seen[-1] == 0  # linear, from 0.5 to 0
    assert all(a > b for a, b in zip(seen[:-1], seen[1:], strict=True))
