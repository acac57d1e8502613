"""Execute the notebooks with papermill: ``python -m gantut.execute --profile quick --out DIR``.

This is the one executor behind ``make book`` (profile ``quick``) and ``make test``
(profile ``smoke``). Each executed copy is written atomically to ``DIR`` beside a
``.key`` file holding a hash of the notebook, the profile and the ``gantut`` sources;
an executed copy whose key still matches is not executed again. Jupyter Book then renders
the executed copies without executing anything (``book/_config.yml``).

On a terminal the command shows, for the notebook being executed, its code cells done out of
all and an estimate of the time left, from the cell times of the executed copy it replaces
(papermill records them); then one line per notebook, as in a log.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def cache_key(notebook: Path, profile: str) -> str:
    """Hash of the notebook, the profile and every source file of the gantut package."""
    h = hashlib.sha256(profile.encode())
    for path in [notebook, *sorted((ROOT / "gantut").glob("*.py"))]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


_prepared = False


def prepare_data() -> None:
    """Fill the caches in ``data/`` (MNIST, the metrics' classifier) before any notebook runs.

    Whichever notebook ran first on a fresh machine would otherwise show the one-off messages
    of filling them (the offline-MNIST warning, "trained the metrics classifier") and pay for
    it in its run time: an executed notebook must not depend on the order notebooks ran in.
    """
    global _prepared
    if _prepared:
        return
    import warnings

    from .data import load_mnist
    from .utils import setup

    setup(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mnist = load_mnist()
        try:
            from .metrics import load_classifier
        except ImportError:  # the metrics module is optional to the executor
            load_classifier = None
        if load_classifier is not None:
            load_classifier(mnist)
    for w in caught:
        print(f"note: {w.message}", flush=True)
    _prepared = True


def execute(notebook: Path, out_dir: Path, profile: str, seed: int = 0,
            cell_timeout: int | None = None, force: bool = False,
            on_cell=None) -> tuple[Path, float | None]:
    """Execute one notebook into ``out_dir`` unless its cached copy is current.

    ``cell_timeout`` (seconds per cell) defaults to the profile's. ``on_cell(index, cells)``
    is called before the first cell (index -1) and after each cell with the executed
    notebook's cells. Returns the executed path and the seconds it took (``None`` when
    cached).
    """
    import papermill

    from .profiles import get_profile

    if cell_timeout is None:
        cell_timeout = get_profile(profile).cell_timeout

    out = out_dir / notebook.name
    key_file = out_dir / f".{notebook.stem}.key"
    key = cache_key(notebook, profile)
    if not force and out.exists() and key_file.exists() and key_file.read_text() == key:
        return out, None
    prepare_data()
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{notebook.stem}.running.ipynb"
    # The executed copies are read, not run: widgets leave their picture, not dead controls.
    env = {"GANTUT_PROFILE": profile, "GANTUT_PROGRESS": "0", "GANTUT_WIDGETS": "static",
           "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(str(notebook), str(tmp), parameters={"profile": profile, "seed": seed},
                                   cwd=str(notebook.parent), execution_timeout=cell_timeout,
                                   progress_bar=False, kernel_name="python3",
                                   engine_name=_engine(), on_cell=on_cell, **_kernel_options())
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    os.replace(tmp, out)
    key_file.write_text(key)
    return out, time.perf_counter() - t0


@functools.cache
def _kernel_options() -> dict:
    """How kernels start and stop here, without two lines of noise per notebook.

    - "Kernel is running over TCP without encryption" (ipykernel >= 7): jupyter_client
      provisions CurveZMQ keys when asked to, for kernels that support them.
    - "KeyboardInterrupt caught in kernel": jupyter_client interrupts a kernel before shutting
      it down, and ipykernel logs this when the signal lands while it handles a message (2 of
      35 runs of a one-cell notebook on a busy 2-core machine). After the last cell the kernel
      is idle and the shutdown request alone stops it (a kernel that does not stop is killed
      after ``shutdown_wait_time``); a cell that times out is still interrupted.
    """
    import zmq
    from jupyter_client import AsyncKernelManager
    from traitlets.config import Config

    class NoInterruptAtShutdown(AsyncKernelManager):
        async def _async_interrupt_kernel(self):
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    config = Config()
    if "transport_encryption" in AsyncKernelManager.class_trait_names() and zmq.has("curve"):
        config.KernelManager.transport_encryption = "auto"
    return {"config": config, "kernel_manager_class": NoInterruptAtShutdown}


@functools.cache
def _engine() -> str:
    """papermill's nbclient engine, also telling ``on_cell`` (if given) about each cell."""
    from papermill.engines import NBClientEngine, papermill_engines

    class Engine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, on_cell=None, **kwargs):
            if on_cell is not None:
                complete = nb_man.cell_complete

                def cell_complete(cell, cell_index=None, **kw):
                    complete(cell, cell_index=cell_index, **kw)
                    on_cell(cell_index, nb_man.nb.cells)

                nb_man.cell_complete = cell_complete
                on_cell(-1, nb_man.nb.cells)
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register("gantut", Engine)
    return "gantut"


def cell_times(executed: Path) -> dict[str, float]:
    """Seconds each cell took (by cell id) in an executed copy; {} when there is none."""
    try:
        cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return {}
    return {c["id"]: c["metadata"]["papermill"]["duration"] for c in cells
            if c.get("id") and (c.get("metadata", {}).get("papermill") or {}).get("duration")}


def time_left(cells, done: int, in_cell: float, last: dict[str, float]) -> float | None:
    """Seconds left by the last run's cell times: the cells after the running one in full, the
    running one (``cells[done + 1]``, ``in_cell`` seconds in) less what it has run so far."""
    if not last:
        return None
    later = sum(last.get(c.get("id"), 0.0) for c in cells[done + 2:])
    running = cells[done + 1:done + 2]
    return later + (max(0.0, last.get(running[0].get("id"), 0.0) - in_cell) if running else 0.0)


class Progress:
    """One status line for the notebook being executed, redrawn in place every second:
    code cells done / all, seconds so far and, if ``previous`` (the executed copy this run
    replaces) has cell times, an estimate of the time left."""

    def __init__(self, name: str, previous: Path, stream=sys.stdout):
        # resolved now: papermill runs the notebook from the notebook's folder
        self.name, self.previous, self.stream = name, Path(previous).resolve(), stream
        self.cells, self.done, self.last = [], -1, {}
        self.t0 = self.t_cell = time.perf_counter()
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)

    def __call__(self, index: int, cells) -> None:  # ``on_cell`` for :func:`execute`
        if index < 0:  # the notebook is being executed (not cached): start the clock
            self.last, self.t0 = cell_times(self.previous), time.perf_counter()
        self.cells, self.done, self.t_cell = cells, index, time.perf_counter()
        self.draw()

    def line(self) -> str:
        now = time.perf_counter()
        code = [c.get("cell_type") == "code" for c in self.cells]
        text = f"{self.name:32s} cell {sum(code[:self.done + 1])}/{sum(code)}, {now - self.t0:.0f} s"
        left = time_left(self.cells, self.done, now - self.t_cell, self.last)
        return text if left is None else f"{text}, about {left:.0f} s left"

    def draw(self) -> None:
        with self._lock:
            self.stream.write(f"\r{self.line()}\x1b[K")
            self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            if self.cells:
                self.draw()

    def __enter__(self) -> Progress:
        self._ticker.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._ticker.join()
        with self._lock:
            self.stream.write("\r\x1b[K")  # the caller prints the notebook's line here
            self.stream.flush()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=os.environ.get("GANTUT_PROFILE", "quick"))
    ap.add_argument("--out", type=Path, required=True, help="folder for the executed copies")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=int,
                    help="seconds per cell before failing (default: the profile's cell_timeout)")
    ap.add_argument("--force", action="store_true", help="execute even if the cache is current")
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    args = ap.parse_args(argv)
    from .profiles import get_profile

    get_profile(args.profile)  # fail early on a typo
    notebooks = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    total = time.perf_counter()
    show = sys.stdout.isatty() and os.environ.get("GANTUT_PROGRESS", "1") != "0"
    for nb in notebooks:
        progress = Progress(nb.name, args.out / nb.name) if show else None
        with progress or contextlib.nullcontext():
            _, secs = execute(nb, args.out, args.profile, args.seed, args.timeout, args.force,
                              on_cell=progress)
        print(f"{nb.name:32s} {'cached' if secs is None else f'{secs:6.1f} s'}", flush=True)
    print(f"executed {len(notebooks)} notebooks ({args.profile}) into {args.out} "
          f"in {time.perf_counter() - total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
