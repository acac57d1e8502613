"""Widgets to play with a trained generator, and a live training dashboard.

- :class:`LatentExplorer` -- walk from one noise vector to another (a frame slider), push
  the latent along a few directions, and shrink it toward the mean (truncation).
- :class:`ClassPicker` -- choose the digit a class-conditional generator draws, with the
  noise held fixed: the class changes, the handwriting stays.
- :class:`TrainingDashboard` -- samples and loss curves that update every few steps in
  place (no flood of outputs), and a Stop button that ends training cleanly and keeps
  the model: ``await TrainingDashboard(trainer, every=100).fit(x, steps=5000)``.

Each is shown as separate outputs: one line saying what to do after reopening the
notebook, the controls (ipywidgets), and the picture, a plain PNG output that every control
redraws in place (an ``update_display_data`` message: JupyterLab routes it by its display
id to the cell that showed it, also after the cell has finished). A saved notebook keeps that
PNG: reopened with a new kernel, JupyterLab cannot show the controls ("Error displaying
widget: model not found": the widget models lived in the old kernel) but still shows the
picture of the last state, and the line above tells the learner to run the cells again.
(One output carrying both the widget and the PNG would lose the picture too: JupyterLab
prefers the widget view and does not fall back.) Papermill, nbval, GitHub and the book keep
and show the same PNG. ``GANTUT_WIDGETS=static`` leaves the controls out (PNG only), e.g.
for a book that should not show controls that no kernel answers.

Every picture is drawn by :meth:`render` (a matplotlib figure, no pyplot state), and every
control calls one small handler, so tests can drive them without a browser.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
import os

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .plots import WIDTH, plot_history, set_title, show_images
from .utils import evaluating, seeded


def with_widgets() -> bool:
    """Whether to send the live panel: in a Jupyter kernel, unless ``GANTUT_WIDGETS=static``."""
    mode = os.environ.get("GANTUT_WIDGETS", "auto")
    if mode not in ("auto", "static"):
        raise ValueError(f"GANTUT_WIDGETS={mode!r}: use auto or static")
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return mode == "auto" and getattr(get_ipython(), "kernel", None) is not None


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """A figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _generator(model):
    """A generator from a generator or a trainer (its EMA generator when it has one)."""
    G = getattr(model, "generator", model)
    if not hasattr(G, "z_dim"):
        raise TypeError(f"expected a generator or a GANTrainer, got {type(model).__name__}")
    return G


def _noise(seed: int, n: int, z_dim: int, device) -> torch.Tensor:
    """``n`` latent vectors fixed by ``seed`` (from their own generator: the global random
    state is not touched)."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(n, z_dim, generator=g).to(device)


@torch.no_grad()
def _draw(G, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    with evaluating(G):
        if hasattr(G, "decode"):  # a VAE: its decoder is the generator
            return G.decode(z).cpu()
        return (G(z, y) if getattr(G, "n_classes", 0) else G(z)).cpu()


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between latent vectors (rows). Unlike a straight line,
    it keeps the norm that Gaussian noise in many dimensions has (about ``sqrt(z_dim)``),
    so the frames in the middle look like samples too."""
    an, bn = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1, 1))
    so = torch.sin(omega)
    if float(so.abs().min()) < 1e-6:
        return (1 - t) * a + t * b
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


REOPEN_NOTE = ("Live panel: its controls need this kernel. After reopening the notebook they show "
               "\"Error displaying widget: model not found\": run the cells again to get them "
               "back. The picture below is saved with the notebook.")
STATIC_NOTE = "A picture of the panel: run the notebook in JupyterLab to get its controls."

# How a slider shows its value: the same format spec goes to the slider (d3-format in the
# browser) and to the picture's title (Python), so that both read e.g. "+2.25".
PSI_FORMAT = ".2f"
AMOUNT_FORMAT = "+.2f"


def fmt(value: float, spec: str) -> str:
    """``value`` as a slider with ``readout_format=spec`` shows it: d3-format writes the
    minus sign as U+2212, Python as "-"."""
    return format(value, spec).replace("-", "\u2212")


class _Panel:
    """What the three widgets share: controls over a picture, shown as separate outputs
    (see the module docstring), the picture redrawn in place by every control."""

    def __init__(self):
        self.controls: dict = {}  # name -> ipywidgets control, built by :meth:`widget`
        self.picture: bytes | None = None  # the PNG last shown
        self._box = None
        self._display = None  # the DisplayHandle of the picture output

    def render(self) -> Figure:
        raise NotImplementedError

    def png(self) -> bytes:
        return figure_png(self.render())

    def refresh(self) -> None:
        """Redraw the shown picture in place (nothing to do before it is shown)."""
        if self._display is not None:
            self._display.update(self._picture_bundle(), raw=True)

    def _controls(self) -> list:
        return []

    def widget(self):
        """The ipywidgets panel of controls (the picture is an output of its own)."""
        if self._box is None:
            import ipywidgets as W

            self._box = W.VBox(self._controls())
        return self._box

    def _picture_bundle(self) -> dict:
        """The picture output: a PNG of the current state, and no widget in it."""
        self.picture = self.png()
        return {"image/png": base64.b64encode(self.picture).decode(), "text/plain": repr(self)}

    def show(self) -> None:
        """Display the note line, the controls (in a live kernel) and the picture (outside
        IPython, e.g. in a script, just print what it is)."""
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is None:
            print(repr(self))
            return
        live = with_widgets()
        print(REOPEN_NOTE if live else STATIC_NOTE)
        if live:
            display(self.widget())
        self._display = display(self._picture_bundle(), raw=True, display_id=True)

    def update_picture(self) -> None:
        """Replace the shown picture with the current state (show it if it is not yet)."""
        if self._display is None:
            self.show()
        else:
            self.refresh()

    def _ipython_display_(self):
        self.show()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self, 'state', '')}>"


class LatentExplorer(_Panel):
    """Explore a generator's latent space.

    The latent shown is ``psi * slerp(z_a, z_b, frame / (frames - 1)) + sum_i a_i d_i``:
    ``z_a`` and ``z_b`` are noise vectors fixed by two seeds, ``psi`` the truncation (1:
    the prior itself; toward 0: samples closer to the "average" one, more typical and
    less varied) and ``d_i`` a few fixed orthonormal directions with amounts ``a_i``.

    Args:
        model: a generator or a trainer (its EMA generator is used when it has one).
        n_directions: how many direction sliders.
        frames: frames of the interpolation strip.
        y: the class, for a class-conditional generator.
    """

    def __init__(self, model, n_directions: int = 3, frames: int = 8, seed_a: int = 0,
                 seed_b: int = 1, y: int = 0):
        super().__init__()
        self.G = _generator(model)
        self.device = next(self.G.parameters()).device
        g = torch.Generator().manual_seed(1234)
        q, _ = torch.linalg.qr(torch.randn(self.G.z_dim, n_directions, generator=g))
        self.directions = q.T.to(self.device)  # n_directions x z_dim, orthonormal rows
        self.frames = frames
        self.state = {"seed_a": seed_a, "seed_b": seed_b, "frame": 0, "psi": 1.0,
                      "amounts": [0.0] * n_directions, "y": y}

    def set(self, **changes) -> None:
        """Change the state (``seed_a``, ``seed_b``, ``frame``, ``psi``, ``amounts``, ``y``)
        and redraw: what every control calls."""
        unknown = set(changes) - set(self.state)
        if unknown:
            raise ValueError(f"unknown setting {sorted(unknown)}: use {sorted(self.state)}")
        if not 0 <= changes.get("frame", 0) < self.frames:
            raise ValueError(f"frame must be in 0..{self.frames - 1}")
        self.state.update(changes)
        self.refresh()

    def latents(self) -> torch.Tensor:
        """The latent of every frame (``frames x z_dim``), with truncation and directions."""
        s = self.state
        za = _noise(s["seed_a"], 1, self.G.z_dim, self.device)
        zb = _noise(s["seed_b"], 1, self.G.z_dim, self.device)
        ts = torch.linspace(0, 1, self.frames).tolist()
        z = torch.cat([slerp(za, zb, t) for t in ts])
        shift = torch.tensor(s["amounts"], device=self.device) @ self.directions
        return s["psi"] * z + shift

    def images(self) -> torch.Tensor:
        z = self.latents()
        y = torch.full((len(z),), self.state["y"], device=self.device)
        return _draw(self.G, z, y)

    def render(self) -> Figure:
        s, imgs = self.state, self.images()
        fig = Figure(figsize=(WIDTH, 2.2), layout="constrained")
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, self.frames / 2]})
        show_images(imgs[s["frame"]:s["frame"] + 1], nrow=1, ax=left)
        left.set_title(f"frame {s['frame']}\nψ = {fmt(s['psi'], PSI_FORMAT)}")
        show_images(imgs, nrow=self.frames, ax=right)
        step = 28 + 2  # a cell of image_grid: the image and its padding
        right.add_patch(Rectangle((s["frame"] * step + 0.5, 0.5), step, step, fill=False,
                                  edgecolor="#D55E00", linewidth=2))
        amounts = "  ".join(fmt(a, AMOUNT_FORMAT) for a in s["amounts"])
        right.set_title(f"seed {s['seed_a']} → seed {s['seed_b']} (spherical interpolation)\n"
                        f"directions {amounts}")
        return fig

    def _controls(self) -> list:
        import ipywidgets as W

        c = self.controls
        c["seed_a"] = W.IntText(self.state["seed_a"], description="seed A")
        c["seed_b"] = W.IntText(self.state["seed_b"], description="seed B")
        c["frame"] = W.IntSlider(self.state["frame"], 0, self.frames - 1, description="frame")
        c["psi"] = W.FloatSlider(self.state["psi"], min=0.0, max=1.0, step=0.05,
                                 description="truncation ψ", readout_format=PSI_FORMAT)
        for i, a in enumerate(self.state["amounts"]):
            c[f"a{i}"] = W.FloatSlider(a, min=-3.0, max=3.0, step=0.25, description=f"direction {i}",
                                       readout_format=AMOUNT_FORMAT)
        for ctl in c.values():
            ctl.observe(self.on_change, names="value")
        return [W.HBox([c["seed_a"], c["seed_b"]]), c["frame"], c["psi"],
                *[c[f"a{i}"] for i in range(len(self.state["amounts"]))]]

    def on_change(self, change=None) -> None:
        """Handler of every control: read them all into the state and redraw."""
        c = self.controls
        n = len(self.state["amounts"])
        self.set(seed_a=c["seed_a"].value, seed_b=c["seed_b"].value, frame=c["frame"].value,
                 psi=c["psi"].value, amounts=[c[f"a{i}"].value for i in range(n)])


class ClassPicker(_Panel):
    """Pick the class a class-conditional generator draws; the noise stays fixed.

    Shows ``n`` samples of the chosen digit from ``n`` noise vectors fixed by ``seed``:
    change the class and the same noise gives the same style of another digit.
    """

    def __init__(self, model, n: int = 8, seed: int = 0, y: int = 0):
        super().__init__()
        self.G = _generator(model)
        if getattr(self.G, "n_classes", 0) <= 0:
            raise ValueError("ClassPicker needs a class-conditional generator (n_classes > 0), "
                             "e.g. the 'cgan' recipe; use LatentExplorer for the others")
        self.device = next(self.G.parameters()).device
        self.n = n
        self.state = {"y": y, "seed": seed}

    def set(self, **changes) -> None:
        """Change ``y`` and/or ``seed`` and redraw: what the controls call."""
        y = changes.get("y", self.state["y"])
        if not 0 <= y < self.G.n_classes:
            raise ValueError(f"class must be in 0..{self.G.n_classes - 1}, got {y}")
        self.state.update(changes)
        self.refresh()

    def images(self) -> torch.Tensor:
        z = _noise(self.state["seed"], self.n, self.G.z_dim, self.device)
        y = torch.full((self.n,), self.state["y"], device=self.device)
        return _draw(self.G, z, y)

    def render(self) -> Figure:
        fig = Figure(figsize=(min(WIDTH, 0.6 * self.n + 0.4), 1.3), layout="constrained")
        ax = fig.subplots()
        show_images(self.images(), nrow=self.n, ax=ax,
                    title=f"class {self.state['y']}, noise seed {self.state['seed']}")
        return fig

    def _controls(self) -> list:
        import ipywidgets as W

        c = self.controls
        c["y"] = W.ToggleButtons(options=list(range(self.G.n_classes)), value=self.state["y"],
                                 description="class", style={"button_width": "2.2em"})
        c["seed"] = W.IntText(self.state["seed"], description="noise seed")
        for ctl in c.values():
            ctl.observe(self.on_change, names="value")
        return [c["y"], c["seed"]]

    def on_change(self, change=None) -> None:
        self.set(y=self.controls["y"].value, seed=self.controls["seed"].value)


class TrainingDashboard(_Panel):
    """Watch a run: samples from fixed noise and the loss curves, redrawn in place every
    ``every`` steps, and a Stop button.

    ``await dashboard.fit(x, steps=...)`` trains in a worker thread while the notebook
    waits, so the kernel still hears the Stop button; Stop ends training after the
    current step (evaluated and checkpointed as at a normal end) and keeps the model.
    Headless, it trains in place and shows one PNG of the final state.

    Args:
        trainer: a :class:`~gantut.train.GANTrainer` or :class:`~gantut.train.VAETrainer`.
        every: steps between redraws (a redraw costs ~0.1 s).
        n: samples shown.
        keys: history columns to plot.
    """

    def __init__(self, trainer, every: int = 100, n: int = 16, keys=None):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.trainer, self.every, self.n = trainer, every, n
        self.keys = keys or (("d_loss", "g_loss") if "g_loss" in _columns(trainer) else ("loss",))
        self.z = _noise(0, n, _generator(trainer).z_dim, trainer.device)
        self.target = trainer.step
        self.status = "not started"
        self._t0 = (trainer.step, trainer.train_time)

    def images(self) -> torch.Tensor:
        if not _is_vae(self.trainer):
            return self.trainer.sample(self.z).cpu()
        with seeded(0):  # the VAE draws its own noise: fix it too
            return self.trainer.sample(self.n).cpu()

    def render(self) -> Figure:
        fig = Figure(figsize=(WIDTH, 3.0), layout="constrained")
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2.2]})
        show_images(self.images(), nrow=int(math.sqrt(self.n)) or 1, ax=left,
                    title=f"step {self.trainer.step}")
        if len(self.trainer.history):
            smooth = max(1, len(self.trainer.history) // 50)
            plot_history(self.trainer.history, self.keys, smooth=smooth, ax=right)
        set_title(right, self.status, width=WIDTH * 2.2 / 3.2)
        return fig

    def __repr__(self) -> str:
        return f"<TrainingDashboard: {self.status}>"

    def _controls(self) -> list:
        import ipywidgets as W

        c = self.controls
        c["stop"] = W.Button(description="Stop", button_style="danger", icon="stop",
                             tooltip="end training after this step and keep the model")
        c["stop"].on_click(self.on_stop)
        c["status"] = W.HTML(self.status)
        return [W.HBox([c["stop"], c["status"]])]

    def _set_status(self, text: str) -> None:
        self.status = text
        if "status" in self.controls:
            self.controls["status"].value = text

    def on_stop(self, button=None) -> None:
        """Handler of the Stop button: ask the trainer to end after the current step."""
        self.trainer.stop_requested = True
        self._set_status(f"stopping after step {self.trainer.step} …")
        if "stop" in self.controls:
            self.controls["stop"].disabled = True

    def on_step(self, trainer) -> None:
        """The training callback: a new status line and picture in the live panel."""
        row = trainer.history[-1] if trainer.history else {}
        losses = ", ".join(f"{k} {row[k]:.3g}" for k in self.keys if k in row)
        step0, t0 = self._t0
        dt = trainer.train_time - t0
        rate = (trainer.step - step0) * trainer.batch_size / dt if dt > 0 else 0.0
        if not trainer.stop_requested:
            self._set_status(f"step {trainer.step} of {self.target}: {losses}, "
                             f"{rate:.0f} images/s")
        self.refresh()

    async def fit(self, x, y=None, *, steps: int, callbacks=(), **fit_kw):
        """Train ``steps`` more steps with the panel's redraw as one more callback (``callbacks``
        and ``fit_kw`` go to ``trainer.fit``); returns the trainer.

        Use it with ``await`` in a notebook cell.
        """
        tr = self.trainer
        self.target, self._t0 = tr.step + steps, (tr.step, tr.train_time)
        callbacks = [(self.every, self.on_step), *callbacks]
        kw = {"steps": steps, "callbacks": callbacks, "progress": False, **fit_kw}
        self._set_status(f"training to step {self.target} …")
        if "stop" in self.controls:
            self.controls["stop"].disabled = False
        self.show()
        try:
            await asyncio.to_thread(tr.fit, x, y, **kw)
        except BaseException:  # an interrupted cell must not leave training running
            tr.stop_requested = True
            raise
        done = "stopped" if tr.step < self.target else "done"
        self._set_status(f"{done} at step {tr.step}")
        if "stop" in self.controls:
            self.controls["stop"].disabled = True
        self.update_picture()
        return tr


def _columns(trainer) -> set:
    return set(trainer.history[-1]) if trainer.history else (
        {"loss"} if _is_vae(trainer) else {"d_loss", "g_loss"})


def _is_vae(trainer) -> bool:
    return hasattr(trainer, "vae")
