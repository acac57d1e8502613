import math
import os

import pytest
import torch

import gantut
import gantut.train
from gantut.checkpoint import CheckpointError, atomic_save, safe_load
from gantut.data import ring_of_gaussians
from gantut.models import VAE, MLPDiscriminator, MLPGenerator
from gantut.train import Batches, GANTrainer, TrainingDiverged, VAETrainer


def assert_same_params(a: torch.nn.Module, b: torch.nn.Module):
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def toy_models():
    return (MLPGenerator(z_dim=2, hidden=(32, 32), out_shape=(2,), out_act=None),
            MLPDiscriminator(in_shape=(2,), hidden=(32, 32)))


def gan(x, y=None, *, steps, callbacks=(), **settings):
    """A GANTrainer on the source's MLPs, trained ``steps`` steps on ``x``."""
    G = MLPGenerator(n_classes=10 if y is not None else 0)
    D = MLPDiscriminator(n_classes=10 if y is not None else 0)
    return GANTrainer(G, D, device="cpu", **settings).fit(x, y, steps=steps, callbacks=callbacks,
                                                          progress=False)


def test_history_records_every_step(small_mnist):
    tr = gan(small_mnist[0], steps=12, log_grad_norms=True)
    df = tr.history.df()
    assert list(df.index) == list(range(1, 13))
    for col in ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm", "time"):
        assert df[col].notna().all(), col
    assert ((df.d_real >= 0) & (df.d_real <= 1)).all()  # probabilities for the BCE losses
    assert df.time.is_monotonic_increasing


def test_r1_and_the_wgan_gp_penalty_are_not_combined():
    with pytest.raises(ValueError, match="gp_weight"):
        GANTrainer(MLPGenerator(), MLPDiscriminator(), loss="wgan-gp", r1_gamma=10.0, device="cpu")


def test_grad_norms_are_logged_only_when_asked(small_mnist):
    tr = GANTrainer(MLPGenerator(), MLPDiscriminator(), device="cpu")  # off: a leaner step
    tr.fit(small_mnist[0], steps=2, progress=False)
    assert "g_grad_norm" not in tr.history[-1] and "d_loss" in tr.history[-1]
    tr.log_grad_norms = True
    tr.fit(small_mnist[0], steps=1, progress=False)
    assert tr.history[-1]["g_grad_norm"] > 0 and tr.history[-1]["d_grad_norm"] > 0


def test_translation_and_r1_change_only_what_d_sees_and_its_loss(small_mnist):
    """translate=0 and r1_gamma=0 are the plain step, weight for weight; each option on
    changes the run, R1 shows up as D's penalty, and both train on digits and labels."""
    x, y = small_mnist[0], small_mnist[1]
    gantut.setup(0)
    plain = gan(x, steps=5)
    gantut.setup(0)
    assert_same_params(gan(x, steps=5, translate=0, r1_gamma=0.0).G, plain.G)
    for option in ({"translate": 2}, {"r1_gamma": 10.0}):
        gantut.setup(0)
        tr = gan(x, y, steps=5, **option)
        assert all(math.isfinite(v) for v in tr.history[-1].values())
        gantut.setup(0)
        other = gan(x, steps=5, **option)
        assert any(not torch.equal(p, q) for p, q in zip(other.G.parameters(), plain.G.parameters(), strict=True))
        assert (other.history.df().gp > 0).all() == ("r1_gamma" in option)


def test_gan_moves_toward_the_data():
    """On a 1-mode toy problem G's samples move from the origin to the mode at (2, 0)."""
    data = ring_of_gaussians(n_modes=1, radius=2.0, std=0.1).sample(2048)
    G, D = toy_models()
    before = (G.sample(512) - torch.tensor([2.0, 0.0])).norm(dim=1).mean()
    tr = GANTrainer(G, D, batch_size=128, lr_g=1e-3, lr_d=1e-3, device="cpu")
    tr.fit(data, steps=600, progress=False)
    after = (tr.sample(512) - torch.tensor([2.0, 0.0])).norm(dim=1).mean()
    assert after < 0.5 * before and after < 0.5


def test_vae_raises_the_elbo(small_mnist):
    tr = VAETrainer(VAE(z_dim=4, hidden=64), device="cpu").fit(small_mnist[0], steps=150,
                                                               progress=False)
    df = tr.history.df()
    assert df.elbo.iloc[-20:].mean() > df.elbo.iloc[:20].mean() + 50


# ------------------------------------------------------------ each mechanism of the step
def test_an_epoch_visits_every_example_once_in_a_new_order():
    x = torch.arange(12.0)
    batches = Batches(x, batch_size=4)
    epochs = [torch.cat([next(batches)[0] for _ in range(3)]) for _ in range(3)]
    for e in epochs:
        assert sorted(e.tolist()) == x.tolist()  # every example exactly once
    orders = {tuple(e.tolist()) for e in epochs}
    assert len(orders) == 3 and tuple(x.tolist()) not in orders  # shuffled, anew each epoch


def test_consecutive_steps_train_on_different_batches(small_mnist):
    """The source's bug (the same first batch at every step) must not come back."""
    seen = []

    class Spy(GANTrainer):
        def train_step(self, real, y=None):
            seen.append(real.clone())
            return super().train_step(real, y)

    x = small_mnist[0][:256]
    Spy(MLPGenerator(), MLPDiscriminator(), device="cpu").fit(x, steps=4, progress=False)
    assert all(not torch.equal(a, b) for a, b in zip(seen, seen[1:], strict=False))
    assert len({tuple(b.flatten().tolist()) for b in seen}) == 4


def test_ema_equals_its_closed_form():
    """G_ema after N steps is the warm-up-weighted average of G's weights at each step."""
    torch.manual_seed(0)
    G, D = toy_models()
    tr = GANTrainer(G, D, ema=0.9, lr_g=1e-2, lr_d=1e-2, batch_size=32, device="cpu")
    x = ring_of_gaussians().sample(256)
    ema = [p.detach().clone() for p in G.parameters()]  # the copy starts as G
    for _ in range(15):
        tr.fit(x, steps=1, progress=False)
        decay = min(0.9, (1 + tr.step - 1) / (10 + tr.step - 1))  # the step before the update
        ema = [decay * e + (1 - decay) * p.detach() for e, p in zip(ema, G.parameters(),
                                                                    strict=True)]
    for e, p in zip(ema, tr.G_ema.parameters(), strict=True):
        torch.testing.assert_close(p, e, rtol=1e-5, atol=1e-6)
    # and it is an average, not G itself: with decay 0.9 it lags behind G
    assert any(not torch.allclose(p, q) for p, q in zip(G.parameters(), tr.G_ema.parameters(),
                                                         strict=True))


def test_g_step_leaves_d_untouched_and_d_step_leaves_g_untouched(small_mnist):
    """detach() and the frozen D: each optimiser step moves only its own network."""
    x = small_mnist[0]
    torch.manual_seed(0)
    tr = GANTrainer(MLPGenerator(), MLPDiscriminator(), lr_g=0.0, device="cpu")
    G0 = [p.clone() for p in tr.G.parameters()]
    tr.fit(x, steps=3, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(G0, tr.G.parameters(), strict=True))
    torch.manual_seed(0)
    tr = GANTrainer(MLPGenerator(), MLPDiscriminator(), lr_d=0.0, device="cpu")
    D0 = [p.clone() for p in tr.D.parameters()]
    tr.fit(x, steps=3, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(D0, tr.D.parameters(), strict=True))
    assert all(p.requires_grad for p in tr.D.parameters())  # unfrozen after the G step


# ---------------------------------------------------------------------------- callbacks
def test_callbacks_run_every_k_steps_and_after_the_last(small_mnist):
    calls = {"a": [], "b": [], "end": []}
    gan(small_mnist[0], steps=7, callbacks=[
        (3, lambda tr: calls["a"].append(tr.step)),
        (1, lambda tr: calls["b"].append(tr.step)),
        (0, lambda tr: calls["end"].append(tr.step)),
    ])
    assert calls == {"a": [3, 6, 7], "b": list(range(1, 8)), "end": [7]}


def test_a_stop_from_a_callback_runs_every_callback_once_more(small_mnist, tmp_path):
    seen = []

    def stop_at_4(tr):
        if tr.step == 4:
            tr.stop_requested = True

    tr = gan(small_mnist[0], steps=100, callbacks=[
        (10, lambda tr: seen.append(("before", tr.step))), (1, stop_at_4),
        (10, lambda tr: seen.append(("after", tr.step))), (0, lambda tr: tr.save(tmp_path / "c.pt"))])
    assert tr.step == 4 and seen == [("before", 4), ("after", 4)]
    assert safe_load(tmp_path / "c.pt")["step"] == 4


def test_bad_callbacks_are_refused(small_mnist):
    with pytest.raises(TypeError, match=r"pair \(every, fn\)"):
        gan(small_mnist[0], steps=1, callbacks=[lambda tr: None])
    with pytest.raises(TypeError, match=r"pair \(every, fn\)"):
        gan(small_mnist[0], steps=1, callbacks=[(-1, print)])


def test_evaluation_rows_and_snapshots(small_mnist):
    x, y = small_mnist
    tr = GANTrainer(MLPGenerator(n_classes=10), MLPDiscriminator(n_classes=10), device="cpu")
    tr.fit(x, y, steps=20, progress=False,
           callbacks=[(5, tr.snapshot), (10, lambda t: t.log_eval(score=t.step / 10))])
    assert [s for s, _ in tr.snapshots] == [5, 10, 15, 20]
    assert tr.snapshots[0][1].shape == (64, 1, 28, 28)
    assert [(e["step"], e["score"]) for e in tr.evals] == [(10, 1.0), (20, 2.0)]
    with pytest.raises(ValueError, match="needs the labels"):
        GANTrainer(MLPGenerator(n_classes=10), MLPDiscriminator(n_classes=10)).fit(x, steps=1)


# ---------------------------------------------------------------- resume, seeds, errors
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
    half.fit(x, steps=11, progress=False, callbacks=[(0, lambda tr: tr.save(tmp_path / "run.pt"))])
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
        tr = gan(small_mnist[0], steps=15)
        runs.append([r["d_loss"] for r in tr.history])
    assert runs[0] == runs[1]


def test_nan_guard_names_the_step(small_mnist):
    x = small_mnist[0].clone()
    x[:] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"step 1: d_loss = nan.*learning rate"):
        gan(x, steps=5)


def test_resume_with_other_settings_is_refused(tmp_path, small_mnist):
    tr = gan(small_mnist[0], steps=2, callbacks=[(0, lambda tr: tr.save(tmp_path / "a.pt"))])
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


def test_bad_batch_size(small_mnist):
    with pytest.raises(ValueError, match="larger than the dataset"):
        gan(small_mnist[0][:10], steps=1, batch_size=64)


def test_save_can_keep_the_previous_checkpoint(tmp_path, small_mnist):
    tr = GANTrainer(MLPGenerator(), MLPDiscriminator(), device="cpu")
    path = tmp_path / "c.pt"
    for _ in range(3):
        tr.fit(small_mnist[0], steps=1, progress=False)
        tr.save(path, keep_previous=True)
    assert safe_load(path)["step"] == 3 and safe_load(tmp_path / "c.prev.pt")["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.prev.pt", "c.pt"]
    tr.save(tmp_path / "plain.pt")
    assert not (tmp_path / "plain.prev.pt").exists()  # by default no copy is kept


def test_adam_is_fused_on_every_device():
    """One kernel per step on the CPU too (notebook 02's loop builds its Adams the same way)."""
    tr = GANTrainer(MLPGenerator(), MLPDiscriminator(), device="cpu")
    assert tr.opt_g.defaults["fused"] and tr.opt_d.defaults["fused"]
    assert gantut.train._adam([torch.zeros(1)], torch.device("cuda"), lr=1e-3).defaults["fused"]


def test_gantut_deterministic_sets_the_gpu_flags(monkeypatch):
    flags = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32)
    monkeypatch.setenv("GANTUT_DETERMINISTIC", "1")
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "")  # restored after the test
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    try:
        gantut.setup(0)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(flags[0])
        (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
         torch.backends.cudnn.allow_tf32) = flags[1:]
