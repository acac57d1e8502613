"""Checkpoints that survive a crash: written atomically, read with ``weights_only=True``.

A checkpoint is always loaded onto the CPU (:func:`safe_load`); the caller then moves what
belongs on a GPU (weights, optimiser moments) into its models. Random states stay CPU
tensors: ``torch.set_rng_state`` and ``torch.cuda.set_rng_state`` take nothing else.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


class CheckpointError(RuntimeError):
    """A checkpoint or cache file is missing, corrupt or not what was expected."""


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, rename it into place.

    A crash (or a full disk) mid-write leaves the previous file intact, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_save(obj, path: str | os.PathLike, keep_previous: bool = False) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically (see :func:`atomic_write`).

    With ``keep_previous`` the file it replaces is kept as :func:`previous_path` (e.g.
    ``checkpoint.prev.pt``), so a checkpoint that turns out to be unreadable does not lose
    the run. Both steps are renames: a crash leaves complete files only.
    """
    if not keep_previous or not Path(path).exists():
        return atomic_write(path, lambda f: torch.save(obj, f))
    tmp = atomic_write(Path(path).with_name(f".{Path(path).name}.new"), lambda f: torch.save(obj, f))
    os.replace(path, previous_path(path))
    os.replace(tmp, path)
    return Path(path)


def previous_path(path: str | os.PathLike) -> Path:
    """Where :func:`atomic_save` keeps the previous version of ``path``: ``NAME.prev.SUFFIX``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode()))


def safe_load(path: str | os.PathLike, map_location="cpu"):
    """Load a file written by :func:`atomic_save` with ``weights_only=True`` (onto the CPU).

    Raises:
        CheckpointError: if the file is missing or cannot be read; the message names the
            file and what to do about it.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist: check the path, or train first")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several kinds for a truncated or foreign file
        reason = (str(e).splitlines() or [""])[0][:100]
        raise CheckpointError(
            f"{path} is corrupt or not a gantut checkpoint ({type(e).__name__}: {reason}). "
            f"Delete it and run again to recreate it."
        ) from e


def rng_state() -> dict:
    """This process's random state: ``{"cpu": ..., "cuda": [one per visible GPU]}``.

    Every state is a CPU ByteTensor. The GPUs' states are saved once CUDA is in use (a
    CPU-only run saves none, and does not start CUDA to ask).
    """
    cuda = ([torch.cuda.get_rng_state(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_initialized() else [])
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict) -> None:
    """Restore a :func:`rng_state`, loaded onto the CPU (``map_location="cpu"``).

    A state saved where more GPUs were visible (a ``torchrun`` run, read on a one-GPU
    machine) restores the GPUs this process sees; GPUs it did not save keep their state.
    """
    torch.set_rng_state(state["cpu"])
    if state["cuda"]:
        for i, s in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s, i)
