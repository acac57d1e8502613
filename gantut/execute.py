"""Execute the notebooks with papermill: ``python -m gantut.execute --profile quick --out DIR``.

This is the one executor behind ``make book`` (profile ``quick``) and ``make test``
(profile ``smoke``). Each executed copy is written atomically to ``DIR`` beside a
``.key`` file holding a hash of the notebook, the profile and the ``gantut`` sources;
an executed copy whose key still matches is not executed again. Jupyter Book then renders
the executed copies without executing anything (``book/_config.yml``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
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
            cell_timeout: int = 600, force: bool = False) -> tuple[Path, float | None]:
    """Execute one notebook into ``out_dir`` unless its cached copy is current.

    Returns the executed path and the seconds it took (``None`` when cached).
    """
    import papermill

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
                                   progress_bar=False, kernel_name="python3")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    os.replace(tmp, out)
    key_file.write_text(key)
    return out, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=os.environ.get("GANTUT_PROFILE", "quick"))
    ap.add_argument("--out", type=Path, required=True, help="folder for the executed copies")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell before failing")
    ap.add_argument("--force", action="store_true", help="execute even if the cache is current")
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    args = ap.parse_args(argv)
    from .profiles import get_profile

    get_profile(args.profile)  # fail early on a typo
    notebooks = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    total = time.perf_counter()
    for nb in notebooks:
        _, secs = execute(nb, args.out, args.profile, args.seed, args.timeout, args.force)
        print(f"{nb.name:32s} {'cached' if secs is None else f'{secs:6.1f} s'}", flush=True)
    print(f"executed {len(notebooks)} notebooks ({args.profile}) into {args.out} "
          f"in {time.perf_counter() - total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
