"""Figures: one style, image grids, training curves, samples over time, and 2-D toy plots.

**Where the figures are read, and the style that follows from it.** The book's content
column (Jupyter Book 1, sphinx-book-theme 1.3, measured in Chromium) is 790 px wide in a
window of 1440 px or more, 757 px in a 1366 px window and 688 px in a 1280 px one; an image
wider than the column is shrunk to fit, a narrower one is shown at its own size. JupyterLab
at 100 % shows an inline PNG at its own size (1 image pixel = 1 CSS pixel). So, in
:data:`STYLE` (applied by :func:`use_style`, which :func:`gantut.setup` calls):

- figures are saved at :data:`DPI` = 100 and are at most :data:`WIDTH` = 7.4 in wide, so
  that their PNG (``bbox_inches="tight"`` pads 0.1 in a side) is at most :data:`COLUMN_PX` =
  760 px, shown at their own size in JupyterLab and in the book from a 1366 px window up;
- no text is smaller than 10 pt at 100 dpi = 13.9 px; shrunk into the 688 px column of a
  1280 px window that is still 12.6 px = 9.4 pt (a CSS pt is 4/3 px), so text reads at
  9 pt or more wherever the figure is shown;
- many panels go in rows (:func:`panels`), never in one long strip;
- panels that are compared share one colour scale and one colour bar
  (:func:`plot_decision_surfaces`: D(x) on [0, 1]);
- colours are the Okabe-Ito palette (distinct for the common colour-vision deficiencies);
  the 10 digit classes use matplotlib's ``tableau-colorblind10``;
- axes are labelled, with units where they have them ("nats per image", "training step").
  Figures carry no Chinese text: the default fonts have no CJK glyphs.

:func:`legibility` measures a figure the way it is shown (its PNG width and its smallest
text after shrinking into the column); ``tests/test_plots.py`` holds every function here to it.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from cycler import cycler
from matplotlib import ticker
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from .utils import evaluating

DPI = 100
COLUMN_PX = 760  # the widest a figure may be: the book's column in a 1366 px window
NARROW_COLUMN_PX = 688  # the book's column in a 1280 px window
WIDTH = (COLUMN_PX - 20) / DPI  # 7.4 in: the inline backend's bbox_inches="tight" pads 0.1 in a side
MIN_FONT = 10.0  # points at DPI: 13.9 px

# Okabe & Ito (2008), "Color universal design": blue, orange, bluish green, vermillion,
# reddish purple, sky blue, black (yellow left out: it does not read on white).
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000"]
REAL, FAKE = OKABE_ITO[0], OKABE_ITO[1]  # real data blue, generated samples orange, everywhere
DIGITS = ListedColormap(mpl.style.library["tableau-colorblind10"]["axes.prop_cycle"].by_key()["color"],
                        name="digits")  # one colour per class 0..9
# D(x) on a diverging map centred on 1/2, where D cannot tell: blue where D says "generated"
# (0), white at 1/2, red where it says "real" (1) -- ColorBrewer's RdBu (safe for the common
# colour-vision deficiencies), blended halfway to white so that the points on it stay visible
D_CMAP = ListedColormap(0.5 + 0.5 * plt.get_cmap("RdBu_r")(np.linspace(0, 1, 256)), name="d_of_x")

STYLE = {
    "figure.dpi": DPI,
    "savefig.dpi": "figure",
    "figure.figsize": (6.0, 3.4),
    "font.size": MIN_FONT,
    "axes.titlesize": 11,
    "axes.labelsize": MIN_FONT,
    "xtick.labelsize": MIN_FONT,
    "ytick.labelsize": MIN_FONT,
    "legend.fontsize": MIN_FONT,
    "legend.title_fontsize": MIN_FONT,
    "figure.titlesize": 12,
    "axes.prop_cycle": cycler(color=OKABE_ITO),
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def use_style() -> None:
    """Apply :data:`STYLE` to matplotlib (``gantut.setup`` does it for every notebook)."""
    mpl.rcParams.update(STYLE)


def panels(n: int, ncols: int | None = None, height: float = 2.6, width: float = WIDTH,
           title: str | None = None, **subplot_kw):
    """A figure of ``n`` panels in rows of ``ncols`` (default: up to 3), ``width`` inches wide
    (at most :data:`WIDTH`) and ``height`` inches per row. Returns ``(fig, axes)``, ``axes`` a
    flat list of ``n`` axes (the unused cells of the last row are removed).

    Use it instead of ``plt.subplots(1, k, figsize=(big, h))``; the layout is matplotlib's
    "constrained" one, so do not call ``fig.tight_layout()`` afterwards (matplotlib would
    warn). ``subplot_kw`` go to :func:`matplotlib.pyplot.subplots` (``sharey=True``, ...).
    """
    if n < 1:
        raise ValueError(f"panels needs at least one panel, got n={n}")
    if width > WIDTH + 1e-9:
        raise ValueError(f"width={width} in is wider than the book's column ({WIDTH} in): "
                         "use more rows (ncols) instead")
    ncols = min(n, 3) if ncols is None else ncols
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height * nrows + (0.3 if title else 0)),
                             squeeze=False, layout="constrained", **subplot_kw)
    axes = list(axes.flat)
    for ax in axes[n:]:
        ax.remove()
    if title:
        fig.suptitle(title)
    return fig, axes[:n]


@dataclass
class Legibility:
    """How a figure is shown: its PNG width, the scale the book's column shows it at, and
    its smallest text in CSS points once shown (a CSS pt is 4/3 CSS px)."""
    width_px: int
    scale: float
    smallest_pt: float
    smallest_text: str


class _TextRecorder(RendererAgg):
    """An Agg renderer that notes the size and string of every text it draws."""

    def __init__(self, fig: Figure):
        super().__init__(int(fig.bbox.width), int(fig.bbox.height), fig.dpi)
        self.texts: list[tuple[float, str]] = []

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if s.strip():
            self.texts.append((prop.get_size_in_points(), s))
        super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)


def legibility(fig: Figure, column_px: int = COLUMN_PX) -> Legibility:
    """Measure ``fig`` as JupyterLab and the book show it: saved as the inline backend saves
    it (``bbox_inches="tight"`` at the figure's dpi), shrunk to ``column_px`` if wider, and
    the size of every text the renderer actually draws (hidden tick labels do not count)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    width_px = int.from_bytes(buf.getvalue()[16:20], "big")  # the PNG header's width
    recorder = _TextRecorder(fig)
    fig.draw(recorder)
    if not recorder.texts:
        raise ValueError("the figure draws no text: nothing to measure")
    scale = min(1.0, column_px / width_px)
    size, text = min(recorder.texts)
    # a point at the figure's dpi is dpi/72 image px; a CSS pt is 96/72 CSS px
    return Legibility(width_px, scale, size * fig.dpi / 96 * scale, text)


def set_title(ax, title: str | None, width: float | None = None) -> None:
    """Set ``title``, broken into lines that fit ``width`` inches (default: the width of the
    panel's grid cell)."""
    if not title:
        return
    fig = ax.get_figure(root=True)
    if width is None:
        spec = ax.get_subplotspec()
        share = len(spec.colspan) / spec.get_gridspec().ncols if spec else ax.get_position().width
        width = fig.get_figwidth() * share
    room = (width - 0.3) * fig.dpi
    if "$" not in title:  # mathtext is not broken up
        prop = mpl.font_manager.FontProperties(size=mpl.rcParams["axes.titlesize"])
        measure = RendererAgg(1, 1, fig.dpi).get_text_width_height_descent
        lines = []
        for paragraph in title.split("\n"):
            line = ""
            for word in paragraph.split(" "):
                longer = f"{line} {word}" if line else word
                if line and measure(longer, prop, ismath=False)[0] > room:
                    lines.append(line)
                    line = word
                else:
                    line = longer
            lines.append(line)
        title = "\n".join(lines)
    ax.set_title(title)


# -- images -----------------------------------------------------------------------------------

def image_grid(images: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    """Images in [-1, 1] (``N x 1 x H x W`` or ``N x 784``) -> one ``H' x W'`` grid in [0, 1]."""
    images = images.detach().float().cpu().reshape(-1, 1, 28, 28) if images.dim() == 2 \
        else images.detach().float().cpu()
    grid = make_grid((images.clamp(-1, 1) + 1) / 2, nrow=nrow, padding=2, pad_value=1.0)
    return grid[0]


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None):
    """Show images in [-1, 1] as one grid of ``nrow`` columns; returns the axes.

    Without ``ax``, a figure of its own, about 0.3 in per digit. Several grids side by side:
    :func:`show_grids`.
    """
    if ax is None:
        n_rows = -(-len(images) // nrow)
        _, ax = plt.subplots(figsize=(min(WIDTH, nrow * 0.3 + 0.4), n_rows * 0.3 + 0.6),
                             layout="constrained")
    ax.imshow(image_grid(images, nrow).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    set_title(ax, title)
    return ax


def show_grids(grids: dict, n: int | None = None, nrow: int | None = None, ncols: int | None = None,
               title: str | None = None) -> Figure:
    """Several image grids side by side, in rows: ``{panel title: images in [-1, 1]}``.

    ``n`` images of each (default: all), ``nrow`` per grid row (default: a square grid),
    ``ncols`` grids per figure row (default: up to 3; 4 or 5 for small grids). Titles
    longer than the panel is wide are wrapped. Returns the figure, e.g.::

        show_grids({"real digits": mnist.train_x[:64], "VAE samples": vae_run.sample(64)})
    """
    if not grids:
        raise ValueError("show_grids needs at least one {title: images} entry")
    sizes = [len(v) if n is None else min(n, len(v)) for v in grids.values()]
    nrow = nrow or math.ceil(math.sqrt(max(sizes)))
    if ncols is None:  # up to 3 grids a row (5 when they are small), rows as even as can be
        widest = 5 if nrow <= 4 else 4 if nrow <= 6 else 3
        ncols = math.ceil(len(grids) / math.ceil(len(grids) / widest))
    digit_in = WIDTH / ncols / nrow  # the width of one digit, and its height
    height = digit_in * math.ceil(max(sizes) / nrow) + 0.45  # and a title of up to two lines
    fig, axes = panels(len(grids), ncols=ncols, height=height, title=title)
    for ax, (name, images), k in zip(axes, grids.items(), sizes, strict=True):
        show_images(images[:k], nrow=nrow, ax=ax, title=name)
    return fig


def show_snapshots(snapshots, n: int = 16, nrow: int = 4, title: str = "samples from fixed noise",
                   ncols: int | None = None) -> Figure:
    """One grid of ``n`` images per ``(step, images)`` snapshot (``trainer.snapshots``), in
    rows of ``ncols`` (default: up to 5): how samples evolve during training."""
    return show_grids({f"step {step}": imgs[:n] for step, imgs in snapshots}, nrow=nrow,
                      ncols=ncols, title=title)


# -- training curves --------------------------------------------------------------------------

# what each column of a trainer's history measures: the y-axis label
UNITS = {
    "d_loss": "loss", "g_loss": "loss",
    "d_real": "mean D output", "d_fake": "mean D output",
    "d_grad_norm": "gradient norm (L2)", "g_grad_norm": "gradient norm (L2)",
    "gp": "gradient penalty",
    "loss": "−ELBO (nats per image)", "elbo": "nats per image", "recon": "nats per image",
    "kl": "nats per image",
    "fid": "FID",
}


def plain_log_axis(axis) -> None:
    """Label a log axis with plain numbers (0.2, 1, 5 rather than 2 x 10^-1), and its 2s and 5s
    too when it spans less than two decades (else a short axis would show one label)."""
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))

    def minor(v, _):
        lo, hi = sorted(axis.get_view_interval())
        if lo <= 0 or v <= 0 or hi / lo > 100:
            return ""
        mantissa = v / 10 ** math.floor(math.log10(v) + 1e-9)
        return f"{v:g}" if round(mantissa) in (2, 5) else ""

    axis.set_minor_formatter(ticker.FuncFormatter(minor))


def _smooth(series, window: int):
    return series.rolling(window, min_periods=1).mean() if window > 1 else series


def plot_history(history, keys=("d_loss", "g_loss"), smooth: int = 50, ax=None, label=None,
                 logy: bool = False, title: str | None = None, names=None,
                 ylabel: str | None = None):
    """Plot columns of a trainer's history (a :class:`~gantut.train.History` or DataFrame)
    against the step, smoothed by a moving average of ``smooth`` steps; returns the axes.

    ``names``: legend entries for ``keys`` (default: the keys), prefixed by ``label``
    (``"label: name"``) to tell several runs apart on one axes. ``ylabel``: default from
    :data:`UNITS` when all keys share a unit. Without ``ax``, a 6 x 3.2 in figure.
    """
    df = history.df() if hasattr(history, "df") else history
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 3.2), layout="constrained")
    keys = [keys] if isinstance(keys, str) else list(keys)
    names = keys if names is None else ([names] if isinstance(names, str) else list(names))
    for key, name in zip(keys, names, strict=True):
        ax.plot(df.index, _smooth(df[key], smooth), label=f"{label}: {name}" if label else name)
    ax.set_xlabel("training step")
    units = {UNITS.get(k) for k in keys}
    if ylabel or (len(units) == 1 and None not in units):
        ax.set_ylabel(ylabel or units.pop())
    if logy:
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)
    set_title(ax, title)
    ax.legend()
    return ax


def plot_gan_diagnostics(history, smooth: int = 50, title: str | None = None) -> Figure:
    """The three panels to read a GAN run by, one above the other with one step axis:
    the losses, D's mean output on real and generated batches, the gradient norms."""
    fig, axes = panels(3, ncols=1, height=1.9, title=title, sharex=True)
    plot_history(history, ("d_loss", "g_loss"), smooth, ax=axes[0], names=("D", "G"))
    plot_history(history, ("d_real", "d_fake"), smooth, ax=axes[1], names=("real", "generated"))
    plot_history(history, ("d_grad_norm", "g_grad_norm"), smooth, ax=axes[2], logy=True,
                 names=("D", "G"), ylabel="gradient norm")
    for ax in axes:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    for ax in axes[:2]:
        ax.set_xlabel("")
    return fig


# -- 2-D toy data -----------------------------------------------------------------------------

@torch.no_grad()
def decision_surface(D, lim: float = 3.0, resolution: int = 120) -> torch.Tensor:
    """``sigmoid(D(x))`` on a ``resolution x resolution`` grid over ``[-lim, lim]^2``
    (row 0 at ``x2 = -lim``), with ``D`` in eval mode."""
    ticks = torch.linspace(-lim, lim, resolution)
    xx, yy = torch.meshgrid(ticks, ticks, indexing="xy")
    device = next(D.parameters()).device
    with evaluating(D):
        prob = torch.sigmoid(D(torch.stack([xx.flatten(), yy.flatten()], 1).to(device)))
    return prob.reshape(resolution, resolution).cpu()


def plot_toy(samples: torch.Tensor, real: torch.Tensor | None = None, D=None, ax=None,
             title: str | None = None, lim: float = 3.0, resolution: int = 120,
             colorbar: bool = True, legend: bool = True):
    """2-D samples (orange) against real points (blue), over D's decision surface
    ``D(x) = sigmoid(D's logit)`` when ``D`` is given: blue where D says "generated" (0),
    white where it cannot tell (1/2), red where it says "real" (1), on the fixed scale
    [0, 1], with D's boundary ``D(x) = 1/2`` dashed. Returns the axes. Several runs or steps side by side, with one
    shared colour bar: :func:`plot_decision_surfaces`.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.6), layout="constrained")
    if D is not None:
        prob = decision_surface(D, lim, resolution).numpy()
        im = ax.imshow(prob, extent=(-lim, lim, -lim, lim), origin="lower", cmap=D_CMAP,
                       vmin=0, vmax=1, interpolation="bilinear")
        if float(prob.min()) < 0.5 < float(prob.max()):
            ticks = np.linspace(-lim, lim, resolution)
            ax.contour(ticks, ticks, prob, levels=[0.5], colors="k", linewidths=0.8,
                       linestyles="--")
        if colorbar:
            ax.get_figure(root=True).colorbar(im, ax=ax, label="D(x)", ticks=[0, 0.5, 1])
    if real is not None:
        real = real.detach().cpu().numpy()
        ax.scatter(real[:, 0], real[:, 1], s=3, c=REAL, alpha=0.6, label="real", lw=0)
    samples = samples.detach().cpu().numpy()
    ax.scatter(samples[:, 0], samples[:, 1], s=3, c=FAKE, alpha=0.7, label="generated", lw=0)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.grid(False)
    if legend:
        ax.legend(loc="upper right", markerscale=3)
    set_title(ax, title)
    return ax


def plot_decision_surfaces(surfaces: dict, real: torch.Tensor | None = None, ncols: int = 3,
                           lim: float = 3.0, title: str | None = None) -> Figure:
    """D's decision surface in several panels, in rows of ``ncols``, on ONE colour scale:
    ``{panel title: (samples, D)}`` -> a figure with one colour bar for D(x) in [0, 1] and
    one legend, so that the panels can be compared. ``real``: the real points, drawn in
    every panel. E.g. (notebook 02)::

        plot_decision_surfaces({f"step {s['step']}: {s['modes']}/8 modes":
                                (s["samples"], s["D"]) for s in shown}, real=held_out)
    """
    if not surfaces:
        raise ValueError("plot_decision_surfaces needs at least one {title: (samples, D)}")
    n = len(surfaces)
    ncols = min(n, ncols)
    panel_w = (WIDTH - 0.9) / ncols  # the colour bar takes ~0.9 in
    fig, axes = panels(n, ncols=ncols, height=panel_w + 0.5, title=title)
    for ax, (name, (samples, D)) in zip(axes, surfaces.items(), strict=True):
        plot_toy(samples, real, D, ax=ax, lim=lim, colorbar=False, legend=False)
        set_title(ax, name, width=panel_w)
    for ax in axes:
        if ax.get_subplotspec().colspan.start != 0:
            ax.set_ylabel("")
    images = [im for ax in axes for im in ax.get_images()]
    if images:
        fig.colorbar(images[0], ax=axes, label="D(x): D's probability that x is real",
                     ticks=[0, 0.25, 0.5, 0.75, 1],
                     shrink=min(1.0, 0.9 if len(axes) > ncols else 0.8))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), markerscale=4)
    return fig


# -- VAE latents ------------------------------------------------------------------------------

@torch.no_grad()
def plot_latent_map(vae, x: torch.Tensor, y: torch.Tensor, n: int = 15, title: str | None = None):
    """The latent space of a VAE with a 2-D latent, in two panels.

    Left: the posterior means ``mu(x)`` of the images ``x``, coloured by their labels ``y``,
    and the square the right panel decodes (dashed).
    Right: the decoder's image at each point of an ``n x n`` grid of ``z``, placed at the
    prior's quantiles 5%..95% in each coordinate (Kingma & Welling 2013, figure 4), so
    that every cell covers the same prior mass. Returns the figure.
    """
    if vae.z_dim != 2:
        raise ValueError(f"plot_latent_map needs a VAE with z_dim=2, got z_dim={vae.z_dim}")
    device = next(vae.parameters()).device
    ticks = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, n))
    zy, zx = torch.meshgrid(ticks.flip(0), ticks, indexing="ij")  # top row: largest z2
    with evaluating(vae):
        mu = torch.cat([vae.encode(x[i:i + 1000].to(device))[0]
                        for i in range(0, len(x), 1000)]).cpu()
        images = vae.decode(torch.stack([zx.flatten(), zy.flatten()], 1).to(device)).cpu()
    fig, axes = panels(2, ncols=2, height=3.6, title=title)
    sc = axes[0].scatter(mu[:, 0].numpy(), mu[:, 1].numpy(), c=y.cpu().numpy(), cmap=DIGITS,
                         s=3, vmin=-0.5, vmax=9.5, lw=0)
    fig.colorbar(sc, ax=axes[0], ticks=range(10), label="digit")
    q = float(ticks.abs().max())
    axes[0].add_patch(plt.Rectangle((-q, -q), 2 * q, 2 * q, fill=False, ls="--", color="k",
                                    label="decoded grid"))
    axes[0].legend(loc="upper right")
    lim = max(1.15 * q, 1.05 * float(mu.abs().max()))
    axes[0].set_xlim(-lim, lim)
    axes[0].set_ylim(-lim, lim)
    axes[0].set_aspect("equal")
    axes[0].set_xlabel("$z_1$")
    axes[0].set_ylabel("$z_2$")
    axes[0].grid(False)
    set_title(axes[0], "posterior means of held-out digits")
    show_images(images, nrow=n, ax=axes[1], title="decoded z on the prior's\n5%..95% quantiles")
    return fig


# matplotlib's JavaScript player draws its buttons with Font Awesome from a CDN, which an
# offline reader (and the book, which serves everything itself) cannot reach: plain
# characters instead, each button keeping its title ("Play", "Pause", ...) as a tooltip.
_PLAYER_ICONS = {"fa fa-minus": "\u2212", "fa fa-plus": "+", "fa fa-fast-backward": "\u21e4",
                 "fa fa-step-backward": "\u2039", "fa fa-play fa-flip-horizontal": "\u25c0",
                 "fa fa-pause": "\u275a\u275a", "fa fa-play": "\u25b6",
                 "fa fa-step-forward": "\u203a", "fa fa-fast-forward": "\u21e5"}


def animation_html(animation, fps: float = 5, default_mode: str = "once") -> str:
    """``animation`` (a matplotlib ``FuncAnimation``) as HTML for ``IPython.display.HTML``:
    matplotlib's JavaScript player with JPEG frames (a quarter of the size of PNG ones),
    that needs no network (no Font Awesome stylesheet from a CDN)."""
    with plt.rc_context({"animation.frame_format": "jpeg"}):
        page = animation.to_jshtml(fps=fps, default_mode=default_mode)
    page = re.sub(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">', "", page)
    for cls, text in _PLAYER_ICONS.items():
        page = page.replace(f'<i class="{cls}"></i>', text)
    if "http://" in page or "https://" in page or "<i class=\"fa" in page:
        raise RuntimeError("matplotlib's animation player changed: it loads something from the "
                           "network or has an icon this function does not replace; update "
                           "gantut.plots._PLAYER_ICONS")
    return page
