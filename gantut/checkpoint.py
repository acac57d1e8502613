"""Checkpoints that survive a crash: written atomically, read with ``weights_only=True``."""

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


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode()))


def safe_load(path: str | os.PathLike, map_location="cpu"):
    """Load a file written by :func:`atomic_save` with ``weights_only=True``.

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
