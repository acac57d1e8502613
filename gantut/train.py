"""Training loops: one for GANs, one for the VAE, sharing batching, logging and checkpoints.

Read :meth:`GANTrainer.train_step` for the algorithm (notebook 02 writes the same loop out
line by line and checks that both give identical weights); everything else is machinery:

- batches are sliced from one tensor already on the device (no DataLoader: 1.9x the
  images/s for the seed MLP GAN on one CPU thread, see ``python -m gantut.bench``);
- every step appends losses and diagnostics to :attr:`Trainer.history`
  (``trainer.history.df()`` is a pandas DataFrame);
- a NaN or infinite loss stops the run with :class:`TrainingDiverged`, which names the
  step and what to try;
- checkpoints are written atomically and hold the random state, so a resumed run
  continues exactly as an uninterrupted one would (on the CPU); they load onto the CPU,
  then the weights and optimiser moments move to the trainer's device;
- on a GPU a step waits for the device once, to read its logged numbers;
- callbacks ``(every, fn)`` watch, evaluate and checkpoint a run (:meth:`Trainer.fit`);
- setting :attr:`Trainer.stop_requested` (a Stop button, Ctrl-C in the CLI) ends
  :meth:`Trainer.fit` cleanly after the current step; every callback then runs once more
  (a final evaluation and checkpoint).

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
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, atomic_save, rng_state, safe_load, set_rng_state
from .data import random_translate
from .losses import get_loss, gradient_penalty, r1_penalty
from .utils import evaluating, get_device

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
    the same for any number of processes. The permutation is drawn on the CPU (the same
    order on every device) and kept on the tensors' device, one copy per epoch.
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
        self.shard, self.generator, self.device = shard, generator, tensors[0].device
        self.perm, self.pos = torch.arange(n, device=self.device), n  # the first batch draws one

    def __next__(self):
        if self.pos + self.batch_size > self.n:
            self.perm = torch.randperm(self.n, generator=self.generator).to(self.device)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + self.batch_size]
        rank, world = self.shard
        if world > 1:
            idx = idx.chunk(world)[rank]
        self.pos += self.batch_size
        return tuple(t[idx] for t in self.tensors)

    def state_dict(self):
        state = {"perm": self.perm, "pos": self.pos}
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state):
        self.perm, self.pos = state["perm"].to(self.device), state["pos"]
        if self.generator is not None and "generator" in state:
            self.generator.set_state(state["generator"])


def _progress_default() -> bool:
    return os.environ.get("GANTUT_PROGRESS", "1") != "0"


Callback = tuple[int, Callable[["Trainer"], object]]


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
        self.snapshots: list[tuple[int, torch.Tensor]] = []
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
            callbacks: Iterable[Callback] = (), progress: bool | None = None):
        """Train for ``steps`` more steps on ``x`` (and labels ``y``); returns ``self``.

        Args:
            callbacks: ``(every, fn)`` pairs. ``fn(trainer)`` runs after every ``every``-th
                step and once more after the last one (``every=0``: only then). Their time
                is not training time. For example ``(500, fid_evaluator(mnist))`` measures,
                ``(1000, lambda tr: tr.save(path))`` checkpoints, ``(250, trainer.snapshot)``
                keeps sample grids.
            progress: a tqdm bar (default: on, unless ``GANTUT_PROGRESS=0``).

        Setting :attr:`stop_requested` (from a callback, a button or a signal handler)
        ends the run after the current step; every callback then runs once more.
        """
        callbacks = _check_callbacks(callbacks)
        self._use_data(x, y)
        for m in self.modules.values():
            m.train()
        bar = tqdm(total=steps, desc=type(self).__name__, leave=False,
                   disable=not (_progress_default() if progress is None else progress))
        end = self.step + steps
        self.stop_requested = False
        while self.step < end and not self.stop_requested:
            t0 = time.perf_counter()
            row = self.train_step(*next(self.batches))
            self.train_time += time.perf_counter() - t0
            self.step += 1
            self._guard(row)
            self.history.append({"step": self.step, **row, "time": self.train_time})
            _show_progress(bar, row, self.step, end)
            self._run_callbacks(callbacks, last=self.step == end)
        bar.close()
        return self

    def log_eval(self, **values) -> None:
        """Append one evaluation row (``step``, ``values``, training ``time``) to :attr:`evals`."""
        self.evals.append({"step": self.step, **values, "time": self.train_time})

    @torch.no_grad()
    def snapshot(self, trainer=None) -> None:
        """A callback: keep 64 samples from fixed noise in :attr:`snapshots` as ``(step, images)``.

        The noise comes from its own generator, so snapshots do not disturb the run.
        """
        z = torch.randn(64, *self.noise_shape, generator=torch.Generator().manual_seed(0))
        self.snapshots.append((self.step, self.sample(z.to(self.device)).cpu()))

    @property
    def noise_shape(self) -> tuple[int, ...]:
        """The shape of one noise vector of :meth:`sample`."""
        return (self.generator.z_dim,)

    def _run_callbacks(self, callbacks: list[Callback], last: bool) -> None:
        ran = [last or self.stop_requested or (every > 0 and self.step % every == 0)
               for every, _ in callbacks]
        for (_, fn), due in zip(callbacks, ran, strict=True):
            if due:
                fn(self)
        if self.stop_requested:  # asked during this step's callbacks: the rest run once more
            for (_, fn), done in zip(callbacks, ran, strict=True):
                if not done:
                    fn(self)

    def _use_data(self, x, y) -> None:
        """Batches of ``x`` (and ``y``) on the device; the same data continues its epoch."""
        tensors = tuple(t.to(self.device) for t in ((x,) if y is None else (x, y)))
        if self.batches is not None and self.batches.tensors[0] is tensors[0]:
            return
        state = self.batches.state_dict() if self.batches else self._resumed_batches
        self.batches = Batches(*tensors, batch_size=self.batch_size, shard=self.shard,
                               generator=self.data_generator)
        if state is not None and len(state["perm"]) == len(x):  # continue the epoch
            self.batches.load_state_dict(state)
        self._resumed_batches = None

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
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` loaded onto the CPU (as :meth:`resume` does): weights
        and optimiser states move to this trainer's device, random states stay CPU tensors."""
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
        set_rng_state(state["rng"])

    def save(self, path: str | Path, keep_previous: bool = False) -> Path:
        """Write a checkpoint atomically (temporary file, then rename).

        ``keep_previous`` keeps the checkpoint it replaces as ``NAME.prev.pt``. With several
        processes, every one must call it (each sends its random state); rank 0 alone
        writes the file.
        """
        state = self.state_dict()
        rank, world = self.shard
        if world > 1:
            from .distributed import gather_rng_states

            state["rank_rng"] = gather_rng_states()
            if rank != 0:
                return Path(path)
        return atomic_save(state, path, keep_previous)

    def resume(self, path: str | Path):
        """Load a checkpoint written by :meth:`save` (``weights_only=True``); returns ``self``."""
        state = safe_load(path)  # onto the CPU: load_state_dict moves what lives on the device
        self.load_state_dict(state)
        if self.shard[1] > 1:
            from .distributed import restore_rng_state

            restore_rng_state(state, self)
        return self


def _adam(params, device: torch.device, **settings) -> torch.optim.Adam:
    """Adam with its fused kernel: one pass over all parameters instead of several small
    operations per tensor (9% more images/s for the seed MLP GAN on one CPU thread; the
    measurement is in the book's tuning page). Its rounding differs from the default loop's in the last
    bit, so notebook 02's loop builds its Adams the same way to match ``GANTrainer``."""
    return torch.optim.Adam(params, fused=True, **settings)


def _check_callbacks(callbacks) -> list[Callback]:
    out = list(callbacks)
    for c in out:
        if not (isinstance(c, tuple) and len(c) == 2 and isinstance(c[0], int) and c[0] >= 0
                and callable(c[1])):
            raise TypeError(f"a callback is a pair (every, fn) with every >= 0 steps and "
                            f"fn(trainer) callable, got {c!r}")
    return out


def _show_progress(bar, row: dict, step: int, end: int) -> None:
    bar.update(1)
    if step % 50 == 0 or step == end:
        bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if "loss" in k})


@torch.no_grad()
def update_ema(average: nn.Module, model: nn.Module, step: int, decay: float) -> None:
    """average <- d * average + (1 - d) * model, with the decay d warming up to ``decay``.

    d grows as (1 + step) / (10 + step), so the average does not start as a mostly
    untrained network (with 0.999 it would for the first ~1,000 steps). Buffers (batch
    norm's statistics) are copied.
    """
    d = min(decay, (1 + step) / (10 + step))
    torch._foreach_lerp_(list(average.parameters()), list(model.parameters()), 1 - d)
    for b_avg, b in zip(average.buffers(), model.buffers(), strict=True):
        b_avg.copy_(b)


class GANTrainer(Trainer):
    """Alternating GAN training (Goodfellow et al. 2014, Algorithm 1).

    Args:
        G, D: generator and discriminator (see :mod:`gantut.models`).
        loss: a name from :data:`gantut.losses.LOSSES`.
        lr_g, lr_d, betas: Adam settings of each network.
        n_critic: discriminator steps per generator step (5 is usual for WGAN-GP).
        gp_weight: weight of the gradient penalty (used with ``"wgan-gp"``).
        ema: decay of an exponential moving average of G's weights (e.g. 0.995, reached after a
            warm-up), or None. :meth:`sample` then uses the average, which gives steadier samples.
        clip_grad: clip both networks' gradient norms to this value (the source's advice
            against vanishing gradients -- see notebook 06 for why it cannot help).
        translate: D sees real and generated images shifted by up to this many pixels
            (:func:`gantut.data.random_translate`; 0: as they are). Against a D that
            memorises its training digits (notebook 05.2).
        r1_gamma: weight gamma of the R1 penalty on real images (Mescheder et al. 2018):
            D's loss gains ``gamma / 2 *`` :func:`gantut.losses.r1_penalty`.
        batch_size: recorded in the config so a checkpoint resumes with the same batches.
        log_grad_norms: also log both networks' gradient norms every step (they cost a
            little time each step; :attr:`log_grad_norms` can be switched later).
    """

    def __init__(self, G, D, *, loss="nonsaturating", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999),
                 n_critic=1, gp_weight=10.0, ema: float | None = None,
                 clip_grad: float | None = None, translate: int = 0, r1_gamma: float = 0.0,
                 batch_size: int = 64, log_grad_norms: bool = False, device="auto"):
        if r1_gamma and loss == "wgan-gp":
            raise ValueError("r1_gamma works with the BCE, LSGAN and hinge losses; wgan-gp has "
                             "its own penalty (gp_weight): use one of them, not both")
        super().__init__(device, batch_size)
        self.G, self.D = G.to(self.device), D.to(self.device)
        self.d_loss_fn, self.g_loss_fn = get_loss(loss)
        self.loss, self.n_critic, self.gp_weight, self.clip_grad = loss, n_critic, gp_weight, clip_grad
        self.translate, self.r1_gamma = translate, r1_gamma
        self.ema = ema
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if ema else None
        self.modules = {"G": self.G, "D": self.D}
        if self.G_ema is not None:
            self.modules["G_ema"] = self.G_ema
        self.opt_g = _adam(G.parameters(), self.device, lr=lr_g, betas=tuple(betas))
        self.opt_d = _adam(D.parameters(), self.device, lr=lr_d, betas=tuple(betas))
        self.optimizers = {"G": self.opt_g, "D": self.opt_d}
        self.config = {"loss": loss, "lr_g": lr_g, "lr_d": lr_d, "betas": list(betas),
                       "n_critic": n_critic, "gp_weight": gp_weight, "ema": ema,
                       "clip_grad": clip_grad, "translate": translate, "r1_gamma": r1_gamma,
                       "batch_size": batch_size, "G": type(G).__name__, "D": type(D).__name__}
        self.conditional = getattr(G, "n_classes", 0) > 0
        self.log_grad_norms = log_grad_norms
        self._grad_norms: dict[str, torch.Tensor] = {}

    def train_step(self, real, y=None) -> dict[str, float]:
        """One step of the GAN algorithm, as notebook 02 writes it out."""
        # 1. Discriminator: score real images up and generated ones down (n_critic times).
        for i in range(self.n_critic):
            if i > 0:
                real, y = self._next_batch()
            fake = self._G(self.G.noise(len(real)), y)
            r = self._D(self._seen(real), y)
            f = self._D(self._seen(fake.detach()), y)  # detach: no gradients into G from D's loss
            d_loss = self.d_loss_fn(r, f)
            gp = self._penalty(real, fake, y)  # 0 unless the loss is wgan-gp or R1 is on
            self._update("D", d_loss + gp)
        # 2. Generator: make the updated D call the same fakes real. D is frozen, so this
        #    backward pass fills only G's gradients.
        self.D.requires_grad_(False)
        g_loss = self.g_loss_fn(self._D(self._seen(fake), y, sync=False))
        self._update("G", g_loss)
        self.D.requires_grad_(True)
        self._update_ema()
        return self._log(d_loss=d_loss, g_loss=g_loss, r=r, f=f, gp=gp)

    # --------------------------------------------------------- the step's helpers
    def _update(self, name: str, loss: torch.Tensor) -> None:
        """Zero ``name``'s gradients, backpropagate ``loss``, (clip,) take the optimiser step."""
        net, opt = (self.G, self.opt_g) if name == "G" else (self.D, self.opt_d)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip_grad:  # the norms stay tensors on the device; _log reads them in one go
            self._grad_norms[name] = nn.utils.clip_grad_norm_(net.parameters(), self.clip_grad)
        elif self.log_grad_norms:
            self._grad_norms[name] = nn.utils.get_total_norm(
                [p.grad for p in net.parameters() if p.grad is not None])
        opt.step()

    def _seen(self, images: torch.Tensor) -> torch.Tensor:
        """What D is shown: the images, shifted at random when ``translate`` > 0."""
        return random_translate(images, self.translate) if self.translate else images

    def _penalty(self, real, fake, y) -> torch.Tensor:
        if self.loss == "wgan-gp":
            return self.gp_weight * gradient_penalty(self.D, real, fake, y)
        if self.r1_gamma:
            return self.r1_gamma / 2 * r1_penalty(self.D, real, y)
        return torch.zeros((), device=real.device)

    def _next_batch(self):
        real, *rest = next(self.batches)
        return real, (rest[0] if rest else None)

    @torch.no_grad()
    def _log(self, d_loss, g_loss, r, f, gp) -> dict[str, float]:
        """The step's numbers as floats, moved off the device in one transfer."""
        to_p = torch.sigmoid if self.loss in BCE_LOSSES else (lambda t: t)
        values = {"d_loss": d_loss, "g_loss": g_loss, "d_real": to_p(r).mean(),
                  "d_fake": to_p(f).mean(), "gp": gp}
        if self.log_grad_norms or self.clip_grad:
            values["d_grad_norm"] = self._grad_norms["D"]
            values["g_grad_norm"] = self._grad_norms["G"]
        numbers = torch.stack([v.detach().float().reshape(()) for v in values.values()]).tolist()
        return dict(zip(values, numbers, strict=True))

    def _G(self, z, y):
        G = self.ddp.get("G", self.G)
        return G(z, y) if self.conditional else G(z)

    def _D(self, x, y, sync: bool = True):
        D = self.ddp.get("D", self.D) if sync else self.D
        return D(x, y) if self.conditional else D(x)

    def _update_ema(self):
        if self.G_ema is not None:
            update_ema(self.G_ema, self.G, self.step, self.ema)

    # ------------------------------------------------------------------ sampling
    def _use_data(self, x, y) -> None:
        if self.conditional and y is None:
            raise ValueError("a class-conditional GAN needs the labels y to train")
        super()._use_data(x, y if self.conditional else None)

    @torch.no_grad()
    def sample(self, n_or_z: int | torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Samples from the EMA generator when there is one, else from G, in eval mode.

        ``n_or_z`` is a number of samples or a batch of noise vectors; a conditional
        generator without labels ``y`` draws the classes 0, 1, 2, ... in turn.
        """
        G = self.generator
        with evaluating(G):
            z = G.noise(n_or_z) if isinstance(n_or_z, int) else n_or_z.to(self.device)
            if not self.conditional:
                return G(z)
            if y is None:
                y = torch.arange(len(z), device=self.device) % G.n_classes
            return G(z, y.to(self.device))

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
        self.optimizers = {"vae": _adam(vae.parameters(), self.device, lr=lr)}
        self.config = {"lr": lr, "batch_size": batch_size, "model": type(vae).__name__}

    def train_step(self, x) -> dict[str, float]:
        out = self.ddp["vae"](x) if "vae" in self.ddp else self.vae.elbo(x)
        loss = -out["elbo"]
        opt = self.optimizers["vae"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        numbers = torch.stack([loss.detach(), out["elbo"].detach(), out["recon"].detach(),
                               out["kl"].detach()]).tolist()
        return dict(zip(("loss", "elbo", "recon", "kl"), numbers, strict=True))

    def _use_data(self, x, y) -> None:
        super()._use_data(x, None)  # a VAE ignores labels

    @torch.no_grad()
    def sample(self, n_or_z: int | torch.Tensor) -> torch.Tensor:
        """``n`` samples (or the decoded latent vectors ``z``), in eval mode."""
        with evaluating(self.vae):
            if isinstance(n_or_z, int):
                return self.vae.sample(n_or_z)
            return self.vae.decode(n_or_z.to(self.device))

    @property
    def generator(self) -> nn.Module:
        return self.vae
