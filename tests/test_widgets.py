"""The widgets: their handlers (called directly), their headless picture, and the Stop
button in a real kernel while training runs."""

import asyncio
import base64
import queue
import time

import ipywidgets
import pytest
import torch

from gantut import plots
from gantut.models import VAE, DCGANGenerator, MLPDiscriminator, MLPGenerator
from gantut.train import GANTrainer, VAETrainer
from gantut.widgets import (
    AMOUNT_FORMAT,
    PSI_FORMAT,
    REOPEN_NOTE,
    ClassPicker,
    LatentExplorer,
    TrainingDashboard,
    fmt,
    slerp,
)

PNG = b"\x89PNG"


@pytest.fixture
def gan():
    return GANTrainer(MLPGenerator(hidden=(32,)), MLPDiscriminator(hidden=(32,)), ema=0.9,
                      device="cpu")


def test_slerp_keeps_the_ends_and_the_norm():
    a, b = torch.randn(1, 100), torch.randn(1, 100)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-5)
    assert torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid, line = slerp(a, b, 0.5), (a + b) / 2
    # the straight line's midpoint falls inside the shell where Gaussian noise lives
    assert abs(mid.norm() - (a.norm() + b.norm()) / 2) < 0.05 * a.norm()
    assert line.norm() < 0.85 * mid.norm()


def test_latent_explorer_handlers(gan):
    ex = LatentExplorer(gan, n_directions=2, frames=5)
    panel = ex.widget()
    assert isinstance(panel, ipywidgets.VBox)
    first = ex.png()
    assert first.startswith(PNG)
    z0 = ex.latents()
    assert z0.shape == (5, 100)
    assert torch.allclose(z0[0], torch.randn(100, generator=torch.Generator().manual_seed(0)))

    ex.controls["frame"].value = 4  # what the slider does: its observer sets the state
    assert ex.state["frame"] == 4 and ex.png() != first
    ex.controls["psi"].value = 0.5
    assert torch.allclose(ex.latents(), 0.5 * z0, atol=1e-6)  # truncation shrinks toward 0
    ex.controls["a1"].value = 2.0
    shift = ex.latents() - 0.5 * z0
    assert torch.allclose(shift, 2.0 * ex.directions[1].expand_as(shift), atol=1e-5)
    ex.controls["seed_b"].value = 7
    ex.on_change()  # the handler itself, called directly
    assert ex.state["seed_b"] == 7 and ex.images().shape == (5, 1, 28, 28)
    with pytest.raises(ValueError, match="frame must be in 0..4"):
        ex.set(frame=5)
    with pytest.raises(ValueError, match="unknown setting"):
        ex.set(speed=1)


def test_the_title_reads_as_the_sliders_do(gan):
    """The direction slider at 2.25 must not be titled "+2.2": slider and title share one
    format (and d3's minus sign, U+2212)."""
    ex = LatentExplorer(gan, n_directions=3, frames=4)
    ex.widget()
    for i, a in enumerate((2.25, -1.25, 0.0)):
        ex.controls[f"a{i}"].value = a
    ex.controls["psi"].value = 0.35
    assert {ex.controls[f"a{i}"].readout_format for i in range(3)} == {AMOUNT_FORMAT}
    assert ex.controls["psi"].readout_format == PSI_FORMAT
    left, right = ex.render().axes
    assert "directions +2.25  \u22121.25  +0.00" in right.get_title()
    assert left.get_title().endswith("ψ = 0.35")
    assert fmt(-1.25, AMOUNT_FORMAT) == "\u22121.25" and fmt(2.25, AMOUNT_FORMAT) == "+2.25"


def test_latent_explorer_on_a_vae():
    ex = LatentExplorer(VAETrainer(VAE(z_dim=4, hidden=32), device="cpu"), frames=3)
    assert ex.images().shape == (3, 1, 28, 28)  # the decoder draws the frames


def test_class_picker_keeps_the_noise_and_changes_the_class():
    G = DCGANGenerator(ch=8, n_classes=10)
    picker = ClassPicker(G, n=4)
    picker.widget()
    three = picker.images()
    picker.controls["y"].value = 3
    assert picker.state["y"] == 3
    assert not torch.equal(picker.images(), three)
    picker.set(y=0)
    assert torch.equal(picker.images(), three)  # same class, same noise: same digits
    with pytest.raises(ValueError, match="class must be in 0..9"):
        picker.set(y=10)
    with pytest.raises(ValueError, match="class-conditional"):
        ClassPicker(MLPGenerator())


def test_dashboard_stop_ends_training_cleanly_and_keeps_the_model(gan, small_mnist, tmp_path):
    dash = TrainingDashboard(gan, every=5)
    dash.widget()

    def press_stop_at_step_12(tr):
        if tr.step == 12:
            dash.on_stop()  # the Stop button's handler

    tr = asyncio.run(dash.fit(small_mnist[0], steps=1000, callbacks=[
        (1, press_stop_at_step_12), (0, lambda tr: tr.save(tmp_path / "run.pt"))]))
    assert tr.step == 12 and len(tr.history) == 12
    assert dash.status == "stopped at step 12" and dash.controls["stop"].disabled
    saved = torch.load(tmp_path / "run.pt", weights_only=True)
    assert saved["step"] == 12  # the stop was checkpointed like a normal end
    asyncio.run(dash.fit(small_mnist[0], steps=3))  # and training can go on
    assert tr.step == 15 and dash.status == "done at step 15"


def test_dashboard_on_step_updates_status_and_picture(gan, small_mnist, monkeypatch):
    dash = TrainingDashboard(gan, every=2)
    dash.widget()
    shown = []
    dash._display = type("Handle", (), {"update": lambda self, b, raw: shown.append(b)})()
    before = dash.png()
    gan.fit(small_mnist[0], steps=2, progress=False)
    dash.on_step(gan)
    assert dash.status.startswith("step 2 of ") and "d_loss" in dash.controls["status"].value
    assert len(shown) == 1  # the picture output was redrawn in place
    assert base64.b64decode(shown[0]["image/png"]) == dash.picture != before


@pytest.mark.parametrize("make", [
    lambda gan: LatentExplorer(gan, frames=8),
    lambda gan: ClassPicker(DCGANGenerator(ch=8, n_classes=10), n=8),
    lambda gan: TrainingDashboard(gan),
], ids=["LatentExplorer", "ClassPicker", "TrainingDashboard"])
def test_widget_pictures_are_legible(gan, make):
    panel = make(gan)
    if isinstance(panel, TrainingDashboard):
        panel.status = "step 120 of 5000: d_loss 1.23, g_loss 0.771, 1234 images/s"
    shown = plots.legibility(panel.render())
    assert shown.width_px <= plots.COLUMN_PX and shown.smallest_pt >= 9, shown


def test_the_picture_is_an_output_of_its_own(gan, monkeypatch):
    """What a saved notebook keeps: a PNG output with no widget in it (JupyterLab shows a
    widget view, when there is one, instead of the PNG of the same output)."""
    ex = LatentExplorer(gan)
    for mode in ("auto", "static"):
        monkeypatch.setenv("GANTUT_WIDGETS", mode)
        bundle = ex._picture_bundle()
        assert base64.b64decode(bundle["image/png"]).startswith(PNG)
        assert set(bundle) == {"image/png", "text/plain"}
    monkeypatch.setenv("GANTUT_WIDGETS", "on")
    from gantut.widgets import with_widgets
    with pytest.raises(ValueError, match="use auto or static"):
        with_widgets()


def test_a_reopened_notebook_keeps_the_picture():
    """A real kernel, driven as JupyterLab drives it: the cell's outputs are the note, the
    controls and a separate picture; moving a slider redraws that picture in place (an
    update of its display id, which JupyterLab routes to the cell and saves)."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        outputs, comms = [], {}

        def hook(msg):
            c = msg["content"]
            if msg["msg_type"] in ("stream", "display_data", "update_display_data"):
                outputs.append((msg["msg_type"], c))
            if msg["msg_type"] == "comm_open":
                comms[c["data"]["state"].get("description")] = c["comm_id"]

        reply = kc.execute_interactive(
            "import gantut, torch\nfrom gantut.models import MLPGenerator\n"
            "from gantut.widgets import LatentExplorer\ngantut.setup(0)\n"
            "LatentExplorer(MLPGenerator(hidden=(32,)), n_directions=1, frames=4)",
            timeout=60, output_hook=hook)
        assert reply["content"]["status"] == "ok", reply["content"]
        kinds = [(t, sorted(c.get("data", {}))) for t, c in outputs]
        assert kinds == [("stream", []),
                         ("display_data", ["application/vnd.jupyter.widget-view+json", "text/plain"]),
                         ("display_data", ["image/png", "text/plain"])], kinds
        assert outputs[0][1]["text"].strip() == REOPEN_NOTE
        picture = outputs[2][1]
        display_id = picture["transient"]["display_id"]

        outputs.clear()  # move "direction 0" as the browser does: a comm message
        kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": comms["direction 0"], "data": {
            "method": "update", "state": {"value": 2.25}, "buffer_paths": []}}))
        t0 = time.time()
        updates = []
        while time.time() - t0 < 30 and not updates:
            try:
                hook(kc.get_iopub_msg(timeout=0.5))
            except queue.Empty:
                continue
            updates = [c for t, c in outputs if t == "update_display_data"]
        assert updates, f"moving the slider sent no picture, only {outputs}"
        update = updates[0]
        assert update["transient"]["display_id"] == display_id
        assert update["data"]["image/png"] != picture["data"]["image/png"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_stop_button_in_a_live_kernel():
    """A real kernel, driven as JupyterLab drives it: while ``await dash.fit`` trains,
    a click on the Stop button (a comm message) ends training within a second."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        kc.execute_interactive(
            "import gantut, torch\nfrom gantut.train import GANTrainer\n"
            "from gantut.models import MLPGenerator, MLPDiscriminator\n"
            "from gantut.widgets import TrainingDashboard\ngantut.setup(0)\n"
            "x = torch.rand(256, 1, 28, 28) * 2 - 1\n"
            "tr = GANTrainer(MLPGenerator(hidden=(32,)), MLPDiscriminator(hidden=(32,)))\n"
            "dash = TrainingDashboard(tr, every=20)",
            timeout=60, output_hook=lambda m: None)
        msg_id = kc.execute("await dash.fit(x, steps=10**7)\nprint(tr.step)")
        button, clicked, printed, t0 = None, None, None, time.time()
        while time.time() - t0 < 90:
            try:
                msg = kc.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                continue
            c = msg["content"]
            if msg["msg_type"] == "comm_open" and \
                    c["data"].get("state", {}).get("_model_name") == "ButtonModel":
                button = c["comm_id"]
            if msg["msg_type"] == "comm_msg" and button and clicked is None and \
                    "step 40 of" in str(c["data"].get("state", {}).get("value", "")):
                kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": button, "data": {
                    "method": "custom", "content": {"event": "click"}}}))
                clicked = time.time()
            if msg["msg_type"] == "stream":
                printed = c["text"]
            if msg["msg_type"] == "status" and c["execution_state"] == "idle" \
                    and msg["parent_header"].get("msg_id") == msg_id:
                break
        assert clicked is not None, "the dashboard never reported step 40"
        assert printed is not None and 40 <= int(printed) < 10**7
        assert time.time() - clicked < 10
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
