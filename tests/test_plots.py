"""Every gantut.plots figure is legible where it is read: no wider than the book's content
column, no text under 9 pt once shown there (and in the narrower column of a 1280 px window),
panels in rows, and one colour scale across compared decision surfaces."""

import warnings

import matplotlib as mpl
import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch

import gantut
from gantut import plots
from gantut.models import VAE, MLPDiscriminator

N_STEPS = 40


@pytest.fixture(autouse=True)
def _style_and_close():
    gantut.setup(0)  # applies the style, as every notebook's first cell does
    yield
    plt.close("all")


def _history():
    """A GAN trainer's history, as ``trainer.history.df()`` gives it (no training needed)."""
    g = torch.Generator().manual_seed(0)
    cols = ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm")
    data = {c: (torch.rand(N_STEPS, generator=g) + 0.1).tolist() for c in cols}
    return pd.DataFrame(data, index=pd.RangeIndex(1, N_STEPS + 1, name="step"))


def _images(n):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(n)) * 2 - 1


def _toy_D():
    torch.manual_seed(0)
    return MLPDiscriminator(in_shape=(2,), hidden=(16,))


def _points(n=200):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(1)) * 1.5


def _surfaces(n=5):
    """What notebook 02 shows: five steps of a toy run, with its long panel titles."""
    return {f"step {36 * i}: {i}/8 modes, D accuracy 0.62": (_points(), _toy_D()) for i in range(n)}


FIGURES = {
    "show_images": lambda: plots.show_images(_images(64), title="64 real training digits").figure,
    "show_grids": lambda: plots.show_grids({"held-out real digits": _images(36),
                                            "independent pixels: samples": _images(36),
                                            "Gaussian (PPCA, k=32): samples": _images(36)}),
    "show_grids, six sets": lambda: plots.show_grids(
        {f"set {i} with a long title (mode dropping)": _images(16) for i in range(6)}),
    "show_snapshots": lambda: plots.show_snapshots([(s, _images(64)) for s in range(0, 800, 100)],
                                                   title="samples from fixed noise"),
    "plot_history": lambda: plots.plot_history(_history(), smooth=5, title="losses").figure,
    "plot_history, log": lambda: plots.plot_history(_history(), ("d_grad_norm", "g_grad_norm"),
                                                    smooth=5, logy=True).figure,
    "plot_gan_diagnostics": lambda: plots.plot_gan_diagnostics(_history(), smooth=5,
                                                               title="the source's recipe"),
    "plot_toy": lambda: plots.plot_toy(_points(), _points(), D=_toy_D(), title="one run").figure,
    "plot_decision_surfaces": lambda: plots.plot_decision_surfaces(_surfaces(), real=_points(),
                                                                   title="D during training"),
    "plot_latent_map": lambda: plots.plot_latent_map(VAE(z_dim=2, hidden=32), _images(200),
                                                     torch.arange(200) % 10, n=15,
                                                     title="a VAE with a 2-D latent"),
    "panels": lambda: plots.panels(5, title="five panels")[0],
}


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_fits_the_column_with_text_of_9pt_or_more(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph (e.g. Chinese text) or a layout warning
        fig = FIGURES[name]()
        shown = plots.legibility(fig)
        narrow = plots.legibility(fig, column_px=plots.NARROW_COLUMN_PX)
    assert shown.width_px <= plots.COLUMN_PX, \
        f"{name}: {shown.width_px} px wide, the book's column is {plots.COLUMN_PX} px"
    assert shown.smallest_pt >= 9, \
        f"{name}: {shown.smallest_text!r} is {shown.smallest_pt:.1f} pt in the column"
    assert narrow.smallest_pt >= 9, \
        f"{name}: {narrow.smallest_text!r} is {narrow.smallest_pt:.1f} pt in a 1280 px window"


def test_legibility_measures_what_is_shown():
    """A 20 x 4 in strip (notebook 02 before this style) is shrunk into the column, and its
    titles with it; the measure sees that."""
    fig, axes = plt.subplots(1, 5, figsize=(20, 4))
    for ax in axes:
        ax.set_title("step 36: 1/8 modes", fontsize=10)
    shown = plots.legibility(fig)
    assert shown.width_px > 1500  # bbox_inches="tight" trims the margins, as the notebook does
    assert shown.scale == pytest.approx(plots.COLUMN_PX / shown.width_px)
    # 10 pt text at 100 dpi is 10 * 100 / 96 CSS pt at full size, shrunk with the figure
    assert shown.smallest_pt == pytest.approx(10 * 100 / 96 * shown.scale)
    assert shown.smallest_pt < 5


def test_decision_surfaces_share_one_colour_scale_in_rows():
    fig = plots.plot_decision_surfaces(_surfaces(5), real=_points(), ncols=3)
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert len(panels) == 5
    images = [im for ax in panels for im in ax.get_images()]
    assert {(im.norm.vmin, im.norm.vmax) for im in images} == {(0.0, 1.0)}
    assert len({im.get_cmap().name for im in images}) == 1
    colorbars = {id(im.colorbar) for im in images if im.colorbar is not None}
    assert len(colorbars) == 1, "compared panels need one colour bar, not one each"
    assert len(fig.axes) == 5 + 1  # the panels and the one colour bar
    rows = {ax.get_subplotspec().rowspan.start for ax in panels}
    assert rows == {0, 1}, "five panels go in two rows of three, not one strip"


def test_decision_surface_is_D_as_a_probability():
    D = _toy_D()
    prob = plots.decision_surface(D, lim=2.0, resolution=5)
    x = torch.tensor([[-2.0, -2.0], [2.0, -2.0], [-2.0, 2.0]])  # row 0 is x2 = -lim
    with torch.no_grad():
        expected = torch.sigmoid(D(x)).flatten()
    assert torch.allclose(torch.stack([prob[0, 0], prob[0, -1], prob[-1, 0]]), expected, atol=1e-6)


def test_snapshots_and_grids_go_in_rows():
    fig = plots.show_snapshots([(s, _images(16)) for s in range(8)])
    rows = [ax.get_subplotspec().rowspan.start for ax in fig.axes]
    assert sorted(set(rows)) == [0, 1] and rows.count(0) == 4  # 4 + 4, not 8 in a strip
    fig = plots.show_grids({str(i): _images(16) for i in range(6)})
    assert [ax.get_subplotspec().rowspan.start for ax in fig.axes] == [0, 0, 0, 1, 1, 1]


def test_panels_in_rows_and_not_wider_than_the_column():
    fig, axes = plots.panels(5, ncols=2)
    assert len(axes) == 5 and len(fig.axes) == 5  # the sixth cell is removed
    assert fig.get_figwidth() <= plots.WIDTH
    with pytest.raises(ValueError, match="wider than the book's column"):
        plots.panels(3, width=13)
    with pytest.raises(ValueError, match="at least one panel"):
        plots.panels(0)


def test_long_titles_are_wrapped_to_their_panel():
    fig = plots.show_grids({"a title much longer than one third of the figure is wide": _images(16),
                            "b": _images(16), "c": _images(16)}, ncols=3)
    title = fig.axes[0].get_title()
    assert "\n" in title
    fig.canvas.draw()
    text = fig.axes[0].title.get_window_extent()
    assert text.width <= fig.get_figwidth() * fig.dpi / 3


def test_setup_applies_the_style():
    plt.rcdefaults()
    assert mpl.rcParams["xtick.labelsize"] != plots.MIN_FONT
    gantut.setup(0)
    assert mpl.rcParams["figure.dpi"] == plots.DPI
    assert mpl.rcParams["xtick.labelsize"] == plots.MIN_FONT
    assert mpl.rcParams["axes.prop_cycle"].by_key()["color"] == plots.OKABE_ITO


def test_axes_are_labelled():
    ax = plots.plot_history(_history(), ("d_real", "d_fake"), smooth=1)
    assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "mean D output"
    ax = plots.plot_toy(_points(), _points())
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("$x_1$", "$x_2$")


def test_animation_html_needs_no_network():
    """The player's buttons are plain characters: no Font Awesome from a CDN, for an offline
    reader and for the book (tests/test_book.py checks the site for remote links)."""
    from matplotlib.animation import FuncAnimation

    def animation():
        fig, ax = plt.subplots()
        line, = ax.plot([0, 1], [0, 1])
        return FuncAnimation(fig, lambda i: line.set_ydata([0, i]), frames=3)

    assert "font-awesome" in animation().to_jshtml(fps=5)  # what matplotlib does by itself
    page = plots.animation_html(animation(), fps=5)
    assert "font-awesome" not in page and "https://" not in page and 'class="fa' not in page
    assert "\u25b6" in page and 'title="Play"' in page  # the play button is still there
    assert page.count("data:image/jpeg") == 3  # one JPEG per frame
