import math

import pytest
import torch

import gantut
from gantut.checkpoint import CheckpointError, atomic_save, safe_load
from gantut.data import ring_of_gaussians
from gantut.models import VAE, MLPDiscriminator, MLPGenerator
from gantut.train import GANTrainer, TrainingDiverged, VAETrainer, train_gan


def assert_same_params(a: torch.nn.Module, b: torch.nn.Module):
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def toy_models():
    return (MLPGenerator(z_dim=2, hidden=(32, 32), out_shape=(2,), out_act=None),
            MLPDiscriminator(in_shape=(2,), hidden=(32, 32)))


def test_history_records_every_step(small_mnist):
    tr = train_gan(MLPGenerator(), MLPDiscriminator(), small_mnist[0], steps=12, progress=False)
    df = tr.history.df()
    assert list(df.index) == list(range(1, 13))
    for col in ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm", "time"):
        assert df[col].notna().all(), col
    assert ((df.d_real >= 0) & (df.d_real <= 1)).all()  # probabilities for the BCE losses
    assert df.time.is_monotonic_increasing


def test_gan_moves_toward_the_data():
    """On a 1-mode toy problem G's samples move from the origin to the mode at (2, 0)."""
    data = ring_of_gaussians(n_modes=1, radius=2.0, std=0.1).sample(2048)
    G, D = toy_models()
    before = (G.sample(512) - torch.tensor([2.0, 0.0])).norm(dim=1).mean()
    tr = train_gan(G, D, data, steps=600, batch_size=128, lr_g=1e-3, lr_d=1e-3, progress=False)
    after = (tr.sample(512) - torch.tensor([2.0, 0.0])).norm(dim=1).mean()
    assert after < 0.5 * before and after < 0.5


def test_vae_raises_the_elbo(small_mnist):
    tr = gantut.train_vae(VAE(z_dim=4, hidden=64), small_mnist[0], steps=150, progress=False)
    df = tr.history.df()
    assert df.elbo.iloc[-20:].mean() > df.elbo.iloc[:20].mean() + 50


@pytest.mark.parametrize("loss", ["nonsaturating", "wgan-gp"])
def test_resume_equals_uninterrupted(tmp_path, small_mnist, loss):
    x, _ = small_mnist
    settings = dict(loss=loss, ema=0.9, n_critic=2 if loss == "wgan-gp" else 1, device="cpu")

    def build():
        return MLPGenerator(hidden=(32,)), MLPDiscriminator(hidden=(32,), dropout=0.2)

    torch.manual_seed(1)
    full = GANTrainer(*build(), **settings).fit(x, steps=20, progress=False)

    torch.manual_seed(1)
    half = GANTrainer(*build(), **settings)
    half.fit(x, steps=11, progress=False, checkpoint=tmp_path / "run.pt")
    torch.manual_seed(999)  # whatever happens in between must not matter
    resumed = GANTrainer(*build(), **settings).resume(tmp_path / "run.pt")
    resumed.fit(x, steps=9, progress=False)

    for k in full.modules:
        assert_same_params(full.modules[k], resumed.modules[k])
    def losses(tr):
        return [{k: v for k, v in r.items() if k != "time"} for r in tr.history]

    assert losses(full) == losses(resumed)


def test_same_seed_same_numbers(small_mnist):
    runs = []
    for _ in range(2):
        gantut.setup(seed=3)
        tr = train_gan(MLPGenerator(), MLPDiscriminator(), small_mnist[0], steps=15, progress=False)
        runs.append([r["d_loss"] for r in tr.history])
    assert runs[0] == runs[1]


def test_nan_guard_names_the_step(small_mnist):
    x = small_mnist[0].clone()
    x[:] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"step 1: d_loss = nan.*learning rate"):
        train_gan(MLPGenerator(), MLPDiscriminator(), x, steps=5, progress=False)


def test_resume_with_other_settings_is_refused(tmp_path, small_mnist):
    tr = train_gan(MLPGenerator(), MLPDiscriminator(), small_mnist[0], steps=2, progress=False,
                   checkpoint=tmp_path / "a.pt")
    assert tr.step == 2
    with pytest.raises(CheckpointError, match="build the same models and settings"):
        GANTrainer(MLPGenerator(), MLPDiscriminator(), loss="hinge").resume(tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match="build the same models"):
        VAETrainer(VAE()).resume(tmp_path / "a.pt")


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        safe_load(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"bad\.pt is corrupt.*Delete it"):
        safe_load(bad)


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "c.pt"
    atomic_save({"a": torch.ones(2)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_save({"a": Unpicklable()}, path)
    assert torch.equal(safe_load(path)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left


def test_weights_only_refuses_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"f": math.sqrt}, path)
    with pytest.raises(CheckpointError):
        safe_load(path)


def test_snapshots_and_conditional(small_mnist):
    x, y = small_mnist
    G, D = MLPGenerator(n_classes=10), MLPDiscriminator(n_classes=10)
    tr = train_gan(G, D, x, y, steps=20, snapshots=4, progress=False)
    assert [s for s, _ in tr.snapshots] == [5, 10, 15, 20]
    assert tr.snapshots[0][1].shape == (64, 1, 28, 28)
    with pytest.raises(ValueError, match="needs the labels"):
        train_gan(MLPGenerator(n_classes=10), MLPDiscriminator(n_classes=10), x, steps=1)


def test_bad_batch_size(small_mnist):
    with pytest.raises(ValueError, match="larger than the dataset"):
        train_gan(MLPGenerator(), MLPDiscriminator(), small_mnist[0][:10], steps=1, batch_size=64)
