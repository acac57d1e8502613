"""The command line: train a recipe for longer than a notebook cell allows, then sample it.

::

    python -m gantut train --model dcgan --profile quick --out runs/dcgan
    python -m gantut train --model dcgan --steps 20000 --out runs/dcgan --resume
    python -m gantut sample runs/dcgan -n 64 -o grid.png
    torchrun --nproc_per_node=2 -m gantut train --model dcgan --out runs/dcgan2

A run folder holds ``checkpoint.pt`` (written atomically every ``--checkpoint-every``
steps and at the end; Ctrl-C stops cleanly and writes it too; the checkpoint it replaces
stays as ``checkpoint.prev.pt``, in case the newest cannot be read), ``metrics.jsonl`` (one
JSON object per line: ``"event": "train"`` rows with the losses and images/s every
``--log-every`` steps, ``"event": "eval"`` rows with FID every ``--eval-every`` steps),
``run.json`` (what was trained, how) and ``samples.png`` (a final 8x8 grid, each pixel
drawn 4x4 so the digits can be seen).

``--steps`` is the *total* number of steps of the run, so the same command with
``--resume`` continues an interrupted run to the same end. Under ``torchrun`` the same
command trains on several processes (:mod:`gantut.distributed`).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from .checkpoint import (
    CheckpointError,
    atomic_write,
    atomic_write_text,
    previous_path,
    safe_load,
)
from .losses import LOSSES
from .profiles import get_profile
from .recipes import RECIPES, get_recipe, make_trainer
from .train import TrainingDiverged

CHECKPOINT, METRICS, RUN_INFO, SAMPLES = "checkpoint.pt", "metrics.jsonl", "run.json", "samples.png"
SCALE = 4  # sample grids are written with each pixel 4 x 4
# which profile field gives a recipe's default number of steps
STEPS_FIELD = {"seed-mlp-source": "gan_steps", "seed-mlp": "gan_steps",
               "dcgan-classic": "dcgan_steps", "dcgan": "dcgan_steps",
               "cgan": "dcgan_steps", "vae": "vae_steps", "flow": "dcgan_steps"}


class CLIError(Exception):
    """A mistake in the command or the run folder; the message says what to do."""


# ------------------------------------------------------------------------------ checkpoints
def read_run(path: Path) -> dict:
    """The checkpoint of a run folder (or a checkpoint file) and its ``run`` metadata."""
    path = Path(path)
    ckpt = path / CHECKPOINT if path.is_dir() else path
    prev = previous_path(ckpt)
    if not ckpt.exists() and not prev.exists():
        raise CLIError(f"no checkpoint at {ckpt}: train one first with "
                       f"`python -m gantut train --model ... --out {path}`")
    try:
        state = safe_load(ckpt)
    except CheckpointError as e:
        if not prev.exists():
            raise  # it names the file and what to do
        raise CLIError(_use_previous(ckpt, prev, e)) from e
    if not isinstance(state, dict) or not isinstance(state.get("meta"), dict) \
            or "model" not in state["meta"]:
        raise CLIError(f"{ckpt} is not a checkpoint of `python -m gantut train` (it has no "
                       "run metadata): point to a run folder written by the CLI")
    if state["meta"]["model"] not in RECIPES:
        raise CLIError(f"{ckpt} is for a model {state['meta']['model']!r} that this gantut "
                       f"does not know (known: {', '.join(RECIPES)})")
    return state


def _use_previous(ckpt: Path, prev: Path, error: Exception) -> str:
    """What to say when ``ckpt`` is unreadable but the previous checkpoint ``prev`` exists."""
    problem = f"{ckpt} is missing" if not ckpt.exists() else f"{ckpt} cannot be read ({error})"
    try:
        step = f"from step {safe_load(prev)['step']}"
    except (CheckpointError, KeyError, TypeError):
        return f"{problem}, and the previous checkpoint {prev} cannot be read either: start again"
    return (f"{problem}. The previous checkpoint {prev} is intact ({step}): to go on from it, "
            f"`mv {prev} {ckpt}` and run the same command again")


def _write_lines(path: Path, rows: list[dict]) -> None:
    """Rewrite a JSONL file atomically."""
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def _trim_log(path: Path, step: int) -> None:
    """Drop log rows after ``step``: a resumed run logs those steps again."""
    if path.exists():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        _write_lines(path, [r for r in rows if r.get("step", 0) <= step])


# ------------------------------------------------------------------------------------ train
def train(args) -> int:
    """``python -m gantut train``: check the command, join the processes, load the data,
    build (or resume) the trainer, train with logging and checkpoints, report."""
    from . import distributed
    from .utils import setup

    _check_args(args)  # a bad number is an error before anything is written
    profile = get_profile(args.profile)  # ValueError names the valid profiles
    out = Path(args.out)
    name, overrides, step = _run_to_continue(args, out) if args.resume else _new_run(args, out)
    steps = args.steps or getattr(profile, STEPS_FIELD[name])
    d = distributed.init(args.device)
    rank0 = d is None or d.rank == 0
    if steps <= step:
        if rank0:
            print(f"{out} is already at step {step} of {steps}: nothing to do "
                  "(raise --steps to train longer)", file=sys.stderr)
        distributed.close(d)
        return 0
    device = setup(args.seed, d.device if d else args.device)
    mnist, evaluate = _data(args, d, device, rank0)
    trainer = _trainer(name, overrides, device, d, args.seed)
    if args.resume:
        trainer.resume(out / CHECKPOINT)
        if rank0:
            _trim_log(out / METRICS, trainer.step)
    if rank0:
        _announce(trainer, args, profile.name, steps, d, device)
    todo = steps - trainer.step
    log = _Logger(out / METRICS, trainer, every=args.log_every, rank0=rank0,
                  check_sync=args.check_sync)
    callbacks = [(1, log), *([(max(args.eval_every, 0), evaluate)] if evaluate else []),
                 (args.checkpoint_every, lambda tr: tr.save(out / CHECKPOINT, keep_previous=True))]
    y = mnist.train_y if get_recipe(name).conditional else None
    progress = None if rank0 and not args.no_progress else False  # None: GANTUT_PROGRESS
    with _ctrl_c_stops(trainer, enabled=d is None):  # torchrun stops its processes itself
        trainer.fit(mnist.train_x, y, steps=todo, callbacks=callbacks, progress=progress)
    log.flush_evals()
    if rank0:
        _report(trainer, log, args, out, steps, done=trainer.step - (steps - todo))
    distributed.close(d)
    return 0


def _check_args(args) -> None:
    """Refuse numbers that make no sense, saying which and what they mean."""
    rules = [("--steps", args.steps, 1, "the total number of steps of the run"),
             ("--checkpoint-every", args.checkpoint_every, 0, "steps; 0: only at the end"),
             ("--eval-every", args.eval_every, -1, "steps; 0: only at the end, -1: never"),
             ("--n-eval", args.n_eval, 0, "samples per FID; 0: no FID"),
             ("--log-every", args.log_every, 1, "steps between log rows")]
    for flag, value, least, meaning in rules:
        if value is not None and value < least:
            raise CLIError(f"{flag} must be at least {least} ({meaning}), got {value}")


def _run_to_continue(args, out: Path) -> tuple[str, dict, int]:
    """The model, its setting overrides and the step of the run in ``out`` (``--resume``)."""
    state = read_run(out)
    meta = state["meta"]
    if args.model and args.model != meta["model"]:
        raise CLIError(f"{out} holds a --model {meta['model']} run; you asked for --model "
                       f"{args.model}. Leave out --model to continue it, or choose a new --out")
    loss = {**get_recipe(meta["model"]).settings, **meta["overrides"]}.get("loss")
    if args.loss and args.loss != loss:
        raise CLIError(f"{out} was trained with --loss {loss}; resume it with the same "
                       "loss, or start a new run with another --out")
    return meta["model"], dict(meta["overrides"]), state["step"]


def _new_run(args, out: Path) -> tuple[str, dict, int]:
    """The model and setting overrides of a new run in ``out`` (which must hold none)."""
    if (out / CHECKPOINT).exists() or previous_path(out / CHECKPOINT).exists():
        raise CLIError(f"{out} already holds a run: add --resume to continue it, or choose "
                       "another --out")
    if not args.model:
        raise CLIError("choose a model with --model (" + ", ".join(RECIPES) + ")")
    overrides = {}
    if args.loss:
        if "loss" not in get_recipe(args.model).settings:
            raise CLIError(f"--loss does not apply to --model {args.model} (it is not a GAN)")
        overrides["loss"] = args.loss
    return args.model, overrides, 0


def _data(args, d, device, rank0: bool):
    """MNIST on ``device`` and (on rank 0, if asked) the FID callback.

    With several processes the first one of each machine fills the caches (download,
    metrics classifier) while the others wait, and all check they got the same data.
    """
    from . import distributed
    from .data import load_mnist

    def load():
        mnist = load_mnist(device=device)
        if not (rank0 and args.eval_every >= 0 and args.n_eval > 0):
            return mnist, None
        from .metrics import fid_evaluator

        return mnist, fid_evaluator(mnist, n=args.n_eval)  # loads (or trains) the classifier

    mnist, evaluate = distributed.first_then_others(d, load)
    distributed.agree(d, (mnist.source, len(mnist.train_x)), "the training data (source, size)")
    return mnist, evaluate


def _trainer(name: str, overrides: dict, device, d, seed: int):
    """The recipe's trainer, wrapped for DistributedDataParallel under torchrun."""
    from . import distributed

    trainer = make_trainer(name, device=device, **overrides)
    trainer.meta = {"model": name, "overrides": overrides}
    if d is not None:
        distributed.prepare(trainer, d, seed)
    return trainer


def _announce(trainer, args, profile: str, steps: int, d, device) -> None:
    """Say what is trained, and write ``run.json``."""
    name, out = trainer.meta["model"], Path(args.out)
    recipe, world = get_recipe(name), d.world if d else 1
    print(f"{name}: {recipe.description}", file=sys.stderr)
    print(f"step {trainer.step} -> {steps} on {world} x {device}"
          f"{f' ({d.backend})' if d else ''}, batch {trainer.batch_size}, out {out}",
          file=sys.stderr)
    info = {"model": name, "description": recipe.description,
            "overrides": trainer.meta["overrides"], "config": trainer.config,
            "profile": profile, "steps": steps, "seed": args.seed, "processes": world,
            "device": str(device), "command": sys.argv}
    atomic_write_text(out / RUN_INFO, json.dumps(info, indent=2) + "\n")


@contextmanager
def _ctrl_c_stops(trainer, enabled: bool):
    """Within the block, Ctrl-C asks ``trainer`` to stop after the current step (its
    callbacks then write the checkpoint) instead of killing the process."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, lambda *_: setattr(trainer, "stop_requested", True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _report(trainer, log, args, out: Path, steps: int, done: int) -> None:
    """The final sample grid and a one-line summary."""
    _save_grid(trainer, out / SAMPLES, seed=args.seed)
    stopped = " (stopped early)" if trainer.step < steps else ""
    fid = f", FID {trainer.evals[-1]['fid']:.1f}" if log.evaluated else ""
    print(f"trained {done} steps to step {trainer.step}{stopped}: {log.images_per_s():.0f} "
          f"images/s{fid}. Checkpoint {out / CHECKPOINT}, samples {out / SAMPLES}",
          file=sys.stderr)


class _Logger:
    """The ``callback`` of a CLI run: appends training rows (and new FID rows) to the
    metrics log on rank 0, and with ``check_sync`` compares every process's weights
    after every step."""

    def __init__(self, path: Path, trainer, every: int, rank0: bool, check_sync: bool):
        self.path, self.trainer, self.every = path, trainer, max(1, every)
        self.rank0, self.check_sync = rank0, check_sync
        self.n_evals = self.n_evals_before = len(trainer.evals)
        self.t0, self.step0 = trainer.train_time, trainer.step
        self.images_per_step = trainer.batch_size * getattr(trainer, "n_critic", 1)

    @property
    def evaluated(self) -> bool:
        """Whether this run (since it started or resumed) has measured FID."""
        return len(self.trainer.evals) > self.n_evals_before

    def images_per_s(self) -> float:
        dt = self.trainer.train_time - self.t0
        return (self.trainer.step - self.step0) * self.images_per_step / dt if dt > 0 else 0.0

    def _append(self, rows: list[dict]) -> None:
        if self.rank0 and rows:
            with open(self.path, "a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in rows))

    def flush_evals(self) -> None:
        new = self.trainer.evals[self.n_evals:]
        self.n_evals = len(self.trainer.evals)
        self._append([{"event": "eval", **r} for r in new])

    def __call__(self, trainer) -> None:
        rows = []
        if self.check_sync:
            from .distributed import digests

            hashes = digests(trainer)
            if len(set(hashes)) != 1:
                raise RuntimeError(f"processes diverged at step {trainer.step}: {hashes}")
            rows.append({"event": "sync", "step": trainer.step, "digests": hashes})
        if trainer.step % self.every == 0:
            rows.append({"event": "train", **trainer.history[-1],
                         "images_per_s": round(self.images_per_s(), 1)})
        self.flush_evals()
        self._append(rows)


def _save_grid(trainer, path: Path, n: int = 64, seed: int = 0, nrow: int = 8,
               scale: int = SCALE) -> None:
    """A PNG grid of ``n`` samples drawn under ``seed``, each pixel ``scale`` x ``scale``
    (28-pixel digits are too small to look at otherwise), written atomically."""
    from torchvision.utils import save_image

    from .plots import image_grid
    from .utils import seeded

    with seeded(seed):
        images = trainer.sample(n)
    grid = image_grid(images, nrow=nrow).repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    atomic_write(path, lambda f: save_image(grid, f, format="png"))


# ----------------------------------------------------------------------------------- sample
def load_run(run: str | Path, device="auto"):
    """The trainer of a CLI run folder, as its checkpoint left it (e.g. for a notebook
    that loads a long CLI-trained model when there is one, and trains a short one if not).
    Like ``resume``, it sets the random state to the checkpoint's, so training goes on
    exactly where the run stopped.
    """
    state = read_run(run)
    meta = state["meta"]
    trainer = make_trainer(meta["model"], device=device, **meta["overrides"])
    trainer.load_state_dict(state)
    return trainer


def sample(args) -> int:
    """Rebuild the run's trainer from its checkpoint and save a grid of samples."""
    from .utils import setup

    for flag, value in (("-n", args.n), ("--scale", args.scale), ("--nrow", args.nrow)):
        if value is not None and value < 1:
            raise CLIError(f"{flag} must be at least 1, got {value}")
    device = setup(args.seed, args.device)
    trainer = load_run(args.run, device)
    meta, state = trainer.meta, {"step": trainer.step}
    out = Path(args.output) if args.output else Path(args.run) / f"samples-{state['step']}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    nrow = args.nrow or max(1, round(args.n ** 0.5))
    _save_grid(trainer, out, args.n, args.seed, nrow, args.scale)
    print(f"{args.n} samples of {meta['model']} at step {state['step']} -> {out}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------- main
def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m gantut",
                                 description="Train gantut recipes and sample them.")
    sub = ap.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a recipe into a run folder (resumable)",
                       description="Train a recipe into a run folder. Runs under torchrun too.")
    t.add_argument("--model", choices=list(RECIPES), help="the recipe (gantut.recipes); "
                   "on --resume it is read from the checkpoint")
    t.add_argument("--loss", choices=list(LOSSES), help="replace the recipe's GAN loss")
    t.add_argument("--profile", default=os.environ.get("GANTUT_PROFILE", "quick"),
                   help="smoke, quick or full: the default number of steps (default: quick)")
    t.add_argument("--steps", type=int,
                   help="total steps of the run, at least 1 (default: the profile's)")
    t.add_argument("--out", required=True, help="the run folder, e.g. runs/dcgan")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--checkpoint-every", type=int, default=1000,
                   help="steps (default 1000; 0: only at the end). The checkpoint it replaces "
                   "is kept as checkpoint.prev.pt")
    t.add_argument("--eval-every", type=int, default=1000,
                   help="steps between FID measurements (0: only at the end, -1: never)")
    t.add_argument("--n-eval", type=int, default=1000, help="samples per FID (default 1000)")
    t.add_argument("--log-every", type=int, default=50, help="steps between log rows")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto, cpu or cuda")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--check-sync", action="store_true",
                   help="compare the weights of all processes after every step (slow; a test)")
    t.set_defaults(func=train)

    s = sub.add_parser("sample", help="save a grid of samples from a run")
    s.add_argument("run", help="a run folder (or its checkpoint.pt)")
    s.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument("-o", "--output", help="image file (default: RUN/samples-STEP.png)")
    s.add_argument("--nrow", type=int, help="images per row (default: a square grid)")
    s.add_argument("--scale", type=int, default=SCALE,
                   help=f"enlarge each pixel to SCALE x SCALE (default {SCALE})")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto")
    s.set_defaults(func=sample)
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = e.filename or "into " + str(getattr(args, "out", None) or args.run)
        print(f"gantut: error: the disk is full ({e.strerror}) while writing {where}. "
              "Free some space or write to another disk (--out); the last checkpoint is "
              "intact, so the run can go on with --resume.", file=sys.stderr)
        return 1
    except (CLIError, CheckpointError, TrainingDiverged, ValueError) as e:
        print(f"gantut: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
