"""Training loops: one for GANs, one for the VAE, sharing batching, logging and checkpoints.

Read :meth:`GANTrainer.train_step` for the algorithm; everything else here is machinery:

- batches are sliced from one tensor already on the device (no DataLoader: for models
  this small that is 2.6-3.7x faster on a CPU, see ``python -m gantut.bench``);
- every step appends losses and diagnostics to :attr:`Trainer.history`
  (``trainer.history.df()`` is a pandas DataFrame);
- a NaN or infinite loss stops the run with :class:`TrainingDiverged`, which names the
  step and what to try;
- checkpoints are written atomically and hold the random state, so a resumed run
  continues exactly as an uninterrupted one would (on the CPU);
- setting :attr:`Trainer.stop_requested` (a Stop button, Ctrl-C in the CLI) ends
  :meth:`Trainer.fit` cleanly after the current step, with a final evaluation and checkpoint.

Multi-process training (``torchrun``, see :mod:`gantut.distributed`) uses three hooks
that a single process leaves alone: ``ddp`` (the DistributedDataParallel wrappers that
the training forward passes go through), ``shard`` (which slice of each batch this
process trains on) and ``data_generator`` (the batch order all processes share).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, atomic_save, safe_load
from .losses import get_loss, gradient_penalty
from .utils import get_device

BCE_LOSSES = ("minimax", "nonsaturating")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names the step and what to try."""


class History(list):
    """One dict per logged step; :meth:`df` turns it into a DataFrame."""

    def df(self):
        import pandas as pd

        return pd.DataFrame(list(self)).set_index("step") if self else pd.DataFrame()

    def last(self, key: str, n: int = 1) -> float:
        """Mean of ``key`` over the last ``n`` rows."""
        vals = [row[key] for row in self[-n:]]
        return sum(vals) / len(vals)


class Batches:
    """Random mini-batches sliced from tensors on the device, an epoch at a time.

    With ``shard=(rank, world)`` (multi-process training) every process draws the same
    permutation from the shared ``generator`` and keeps its own ``1/world`` slice of each
    batch. The sequence of whole batches -- and so the state a checkpoint saves -- is then
    the same for any number of processes.
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int, shard: tuple[int, int] = (0, 1),
                 generator: torch.Generator | None = None):
        n = len(tensors[0])
        if batch_size > n:
            raise ValueError(f"batch_size={batch_size} is larger than the dataset ({n} items)")
        if batch_size % shard[1]:
            raise ValueError(f"batch_size={batch_size} cannot be split evenly over {shard[1]} "
                             f"processes: use a number of processes that divides it")
        self.tensors, self.batch_size, self.n = tensors, batch_size, n
        self.shard, self.generator = shard, generator
        self.perm, self.pos = torch.arange(n), n  # the first batch draws a permutation

    def __next__(self):
        if self.pos + self.batch_size > self.n:
            self.perm, self.pos = torch.randperm(self.n, generator=self.generator), 0
        idx = self.perm[self.pos:self.pos + self.batch_size]
        rank, world = self.shard
        if world > 1:
            idx = idx.chunk(world)[rank]
        idx = idx.to(self.tensors[0].device)
        self.pos += self.batch_size
        return tuple(t[idx] for t in self.tensors)

    def state_dict(self):
        state = {"perm": self.perm, "pos": self.pos}
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state):
        self.perm, self.pos = state["perm"], state["pos"]
        if self.generator is not None and "generator" in state:
            self.generator.set_state(state["generator"])


def _progress_default() -> bool:
    return os.environ.get("GANTUT_PROGRESS", "1") != "0"


class Trainer:
    """What every trainer shares: the loop, history, evaluation, checkpoints, NaN guard.

    Subclasses set ``self.modules`` and ``self.optimizers`` (name -> object) and
    implement :meth:`train_step`, which returns a dict of floats for the history.
    """

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]

    def __init__(self, device="auto", batch_size: int = 64):
        self.device = get_device(device)
        self.batch_size = batch_size  # fixed per trainer, so a checkpoint resumes the same batches
        self.step = 0
        self.train_time = 0.0
        self.history = History()
        self.evals = History()
        self.batches: Batches | None = None
        self._resumed_batches: dict | None = None
        self.config: dict = {}
        self.meta: dict = {}  # saved with checkpoints, not checked (the CLI keeps its run here)
        self.stop_requested = False  # set it to end fit() cleanly after the current step
        # multi-process training (gantut.distributed sets these; one process leaves them)
        self.ddp: dict[str, nn.Module] = {}  # DistributedDataParallel wrappers, by module name
        self.shard = (0, 1)  # (rank, number of processes)
        self.data_generator: torch.Generator | None = None  # batch order shared by all ranks

    # ------------------------------------------------------------------ the loop
    def train_step(self, *batch) -> dict[str, float]:
        raise NotImplementedError

    def fit(self, x: torch.Tensor, y: torch.Tensor | None = None, *, steps: int,
            callback: Callable | None = None, every: int = 0,
            evaluate: Callable | None = None, eval_every: int = 0,
            checkpoint: str | Path | None = None, checkpoint_every: int = 0,
            progress: bool | None = None):
        """Train for ``steps`` more steps on ``x`` (and labels ``y``); returns ``self``.

        Args:
            callback: called as ``callback(trainer)`` every ``every`` steps (live plots).
            evaluate: called as ``evaluate(trainer) -> dict`` every ``eval_every`` steps
                and at the end; rows go to :attr:`evals`. Its time is not training time.
            checkpoint: path written every ``checkpoint_every`` steps and at the end.
            progress: a tqdm bar (default: on, unless ``GANTUT_PROGRESS=0``).

        Setting :attr:`stop_requested` (from ``callback``, a button or a signal handler)
        ends the run after the current step, which is then evaluated and checkpointed.
        """
        tensors = (x,) if y is None else (x, y)
        tensors = tuple(t.to(self.device) for t in tensors)
        if self.batches is None or self.batches.tensors[0] is not tensors[0]:
            state = self.batches.state_dict() if self.batches else self._resumed_batches
            self.batches = Batches(*tensors, batch_size=self.batch_size, shard=self.shard,
                                   generator=self.data_generator)
            if state is not None and len(state["perm"]) == len(x):  # continue the epoch
                self.batches.load_state_dict(state)
            self._resumed_batches = None
        for m in self.modules.values():
            m.train()
        progress = _progress_default() if progress is None else progress
        bar = tqdm(total=steps, desc=type(self).__name__, disable=not progress, leave=False)
        end = self.step + steps
        self.stop_requested = False
        while self.step < end:
            t0 = time.perf_counter()
            row = self.train_step(*next(self.batches))
            self.train_time += time.perf_counter() - t0
            self.step += 1
            self._guard(row)
            self.history.append({"step": self.step, **row, "time": self.train_time})
            bar.update(1)
            if self.step % 50 == 0 or self.step == end:
                bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if "loss" in k})
            if callback and every and self.step % every == 0:
                callback(self)
            last = self.step == end or self.stop_requested
            if evaluate and ((eval_every and self.step % eval_every == 0) or last):
                self.evals.append({"step": self.step, **evaluate(self), "time": self.train_time})
            if checkpoint and ((checkpoint_every and self.step % checkpoint_every == 0) or last):
                self.save(checkpoint)
            if self.stop_requested:
                break
        bar.close()
        return self

    def _guard(self, row: dict[str, float]) -> None:
        bad = [k for k, v in row.items() if "loss" in k and not math.isfinite(v)]
        if bad:
            lrs = ", ".join(f"{k} lr={o.param_groups[0]['lr']:g}" for k, o in self.optimizers.items())
            raise TrainingDiverged(
                f"training diverged at step {self.step}: {bad[0]} = {row[bad[0]]}. "
                f"Try a smaller learning rate ({lrs}), a stabler loss ('nonsaturating', "
                "'wgan-gp'), spectral normalisation, or resume from an earlier checkpoint."
            )

    # ------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        return {
            "kind": type(self).__name__,
            "config": self.config,
            "meta": self.meta,
            "step": self.step,
            "train_time": self.train_time,
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "history": list(self.history),
            "evals": list(self.evals),
            "batches": self.batches.state_dict() if self.batches else None,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != type(self).__name__ or state.get("config") != self.config:
            raise CheckpointError(
                f"checkpoint is for a {state.get('kind')} with {state.get('config')}, but this is "
                f"a {type(self).__name__} with {self.config}: build the same models and settings"
            )
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.step, self.train_time = state["step"], state["train_time"]
        self.meta = state.get("meta", {})
        self.history, self.evals = History(state["history"]), History(state["evals"])
        self.batches, self._resumed_batches = None, state["batches"]
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically (temporary file, then rename).

        With several processes, every one must call it (each sends its random state);
        rank 0 alone writes the file.
        """
        state = self.state_dict()
        rank, world = self.shard
        if world > 1:
            from .distributed import gather_rng_states

            state["rank_rng"] = gather_rng_states()
            if rank != 0:
                return Path(path)
        return atomic_save(state, path)

    def resume(self, path: str | Path):
        """Load a checkpoint written by :meth:`save` (``weights_only=True``); returns ``self``."""
        state = safe_load(path, map_location=self.device)
        self.load_state_dict(state)
        if self.shard[1] > 1:
            from .distributed import restore_rng_state

            restore_rng_state(state, self)
        return self


def _grad_norm(module: nn.Module, clip: float | None) -> float:
    """Total gradient norm of ``module`` (before clipping to ``clip``, when given)."""
    params = [p for p in module.parameters() if p.grad is not None]
    return float(nn.utils.clip_grad_norm_(params, clip if clip else math.inf))


class GANTrainer(Trainer):
    """Alternating GAN training (Goodfellow et al. 2014, Algorithm 1).

    Args:
        G, D: generator and discriminator (see :mod:`gantut.models`).
        loss: a name from :data:`gantut.losses.LOSSES`.
        lr_g, lr_d, betas: Adam settings of each network.
        n_critic: discriminator steps per generator step (5 is usual for WGAN-GP).
        gp_weight: weight of the gradient penalty (used with ``"wgan-gp"``).
        ema: decay of an exponential moving average of G's weights (e.g. 0.999, reached after a
            warm-up of a few hundred steps), or None.
            :meth:`sample` then uses the average, which gives steadier samples.
        clip_grad: clip both networks' gradient norms to this value (the source's advice
            against vanishing gradients -- see notebook 06 for why it cannot help).
        batch_size: recorded in the config so a checkpoint resumes with the same batches.
    """

    def __init__(self, G, D, *, loss="nonsaturating", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999),
                 n_critic=1, gp_weight=10.0, ema: float | None = None,
                 clip_grad: float | None = None, batch_size: int = 64, device="auto"):
        super().__init__(device, batch_size)
        self.G, self.D = G.to(self.device), D.to(self.device)
        self.d_loss_fn, self.g_loss_fn = get_loss(loss)
        self.loss, self.n_critic, self.gp_weight, self.clip_grad = loss, n_critic, gp_weight, clip_grad
        self.G_ema = copy.deepcopy(G).eval().requires_grad_(False) if ema else None
        self.ema = ema
        self.modules = {"G": self.G, "D": self.D}
        if self.G_ema is not None:
            self.modules["G_ema"] = self.G_ema
        self.optimizers = {"G": torch.optim.Adam(G.parameters(), lr=lr_g, betas=tuple(betas)),
                           "D": torch.optim.Adam(D.parameters(), lr=lr_d, betas=tuple(betas))}
        self.config = {"loss": loss, "lr_g": lr_g, "lr_d": lr_d, "betas": list(betas),
                       "n_critic": n_critic, "gp_weight": gp_weight, "ema": ema,
                       "clip_grad": clip_grad, "batch_size": batch_size,
                       "G": type(G).__name__, "D": type(D).__name__}
        self.snapshots: list[tuple[int, torch.Tensor]] = []
        self.conditional = getattr(G, "n_classes", 0) > 0

    def fit(self, x, y=None, *, steps, snapshots: int = 0, **kw):
        """As :meth:`Trainer.fit`; ``snapshots`` keeps that many sample grids from fixed
        noise during the run, in :attr:`snapshots` as ``(step, images)``."""
        if self.conditional and y is None:
            raise ValueError("a class-conditional GAN needs the labels y to train")
        y = y if self.conditional else None
        if snapshots:
            # fixed noise from its own generator: snapshots do not disturb the run's RNG
            fixed_z = torch.randn(64, self.G.z_dim, generator=torch.Generator().manual_seed(0))
            fixed_y = torch.arange(64, device=self.device) % 10 if self.conditional else None
            every = max(1, steps // snapshots)
            user_cb, user_every = kw.pop("callback", None), kw.pop("every", 0)

            def callback(tr):
                if tr.step % every == 0:
                    tr.snapshots.append((tr.step, tr.sample(fixed_z, fixed_y).cpu()))
                if user_cb and user_every and tr.step % user_every == 0:
                    user_cb(tr)

            kw["callback"], kw["every"] = callback, 1  # it checks both periods itself
        return super().fit(x, y, steps=steps, **kw)

    def train_step(self, real, y=None) -> dict[str, float]:
        G, D = self.G, self.D
        opt_g, opt_d = self.optimizers["G"], self.optimizers["D"]
        # 1. Discriminator: push D(x) up on real data and D(G(z)) down on generated data.
        for i in range(self.n_critic):
            if i > 0:
                real, *rest = next(self.batches)
                y = rest[0] if rest else None
            last = i == self.n_critic - 1
            with torch.set_grad_enabled(last):  # keep G's graph only for the G step below
                fake = self._G(G.noise(len(real)), y)
            r, f = self._D(real, y), self._D(fake.detach(), y)
            d_loss = self.d_loss_fn(r, f)
            gp = torch.zeros(())
            if self.loss == "wgan-gp":
                gp = gradient_penalty(D, real, fake, y)
                d_loss = d_loss + self.gp_weight * gp
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            d_norm = _grad_norm(D, self.clip_grad)
            opt_d.step()
        # 2. Generator: make the (updated) D score the same fakes as real.
        D.requires_grad_(False)
        f_g = self._D(fake, y, sync=False)  # D is frozen here: no gradients of D to share
        g_loss = self.g_loss_fn(f_g)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        g_norm = _grad_norm(G, self.clip_grad)
        opt_g.step()
        D.requires_grad_(True)
        if self.G_ema is not None:
            self._update_ema()
        with torch.no_grad():
            to_p = torch.sigmoid if self.loss in BCE_LOSSES else (lambda t: t)
            d_real, d_fake = to_p(r).mean(), to_p(f).mean()
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "d_real": d_real.item(),
                "d_fake": d_fake.item(), "d_grad_norm": d_norm, "g_grad_norm": g_norm,
                "gp": gp.item()}

    def _G(self, z, y):
        G = self.ddp.get("G", self.G)
        return G(z, y) if self.conditional else G(z)

    def _D(self, x, y, sync: bool = True):
        D = self.ddp.get("D", self.D) if sync else self.D
        return D(x, y) if self.conditional else D(x)

    @torch.no_grad()
    def _update_ema(self):
        # Warm-up: the decay grows as (1 + t) / (10 + t) up to `ema`, so the average does not
        # start as a mostly untrained G (with 0.999 it would for the first ~1,000 steps).
        decay = min(self.ema, (1 + self.step) / (10 + self.step))
        ema_p, p = list(self.G_ema.parameters()), list(self.G.parameters())
        torch._foreach_lerp_(ema_p, p, 1 - decay)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            b_ema.copy_(b)

    @torch.no_grad()
    def sample(self, n_or_z: int | torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Samples from the EMA generator when there is one, else from G, in eval mode.

        ``n_or_z`` is a number of samples or a batch of noise vectors.
        """
        G = self.G_ema if self.G_ema is not None else self.G
        was = G.training
        G.eval()
        z = G.noise(n_or_z) if isinstance(n_or_z, int) else n_or_z.to(self.device)
        if self.conditional and y is None:
            y = torch.arange(len(z), device=self.device) % G.n_classes
        out = G(z, y) if self.conditional else G(z)
        G.train(was)
        return out

    @property
    def generator(self) -> nn.Module:
        """The generator to evaluate: the EMA copy when there is one."""
        return self.G_ema if self.G_ema is not None else self.G


class VAETrainer(Trainer):
    """Maximise the VAE's ELBO with Adam (the loss is ``-elbo``)."""

    def __init__(self, vae, *, lr=1e-3, batch_size: int = 64, device="auto"):
        super().__init__(device, batch_size)
        self.vae = vae.to(self.device)
        self.modules = {"vae": self.vae}
        self.optimizers = {"vae": torch.optim.Adam(vae.parameters(), lr=lr)}
        self.config = {"lr": lr, "batch_size": batch_size, "model": type(vae).__name__}

    def fit(self, x, y=None, *, steps, **kw):
        return super().fit(x, None, steps=steps, **kw)  # a VAE ignores labels

    def train_step(self, x) -> dict[str, float]:
        out = self.ddp["vae"](x) if "vae" in self.ddp else self.vae.elbo(x)
        loss = -out["elbo"]
        opt = self.optimizers["vae"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "elbo": out["elbo"].item(), "recon": out["recon"].item(),
                "kl": out["kl"].item()}

    def sample(self, n: int) -> torch.Tensor:
        self.vae.eval()
        out = self.vae.sample(n)
        self.vae.train()
        return out

    @property
    def generator(self) -> nn.Module:
        return self.vae


def train_gan(G, D, x, y=None, *, steps: int, batch_size: int = 64, snapshots: int = 0,
              callback=None, every: int = 0, evaluate=None, eval_every: int = 0,
              checkpoint=None, checkpoint_every: int = 0, progress=None, **settings) -> GANTrainer:
    """Build a :class:`GANTrainer` with ``settings`` and train it; returns the trainer."""
    trainer = GANTrainer(G, D, batch_size=batch_size, **settings)
    return trainer.fit(x, y, steps=steps, snapshots=snapshots, callback=callback, every=every,
                       evaluate=evaluate, eval_every=eval_every, checkpoint=checkpoint,
                       checkpoint_every=checkpoint_every, progress=progress)


def train_vae(vae, x, *, steps: int, batch_size: int = 64, lr: float = 1e-3, **fit_kw) -> VAETrainer:
    """Build a :class:`VAETrainer` and train it; returns the trainer."""
    return VAETrainer(vae, lr=lr, batch_size=batch_size, device=fit_kw.pop("device", "auto")).fit(
        x, steps=steps, **fit_kw)
