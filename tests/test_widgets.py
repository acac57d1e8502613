"""The widgets: their handlers (called directly), their headless picture, and the Stop
button in a real kernel while training runs."""

import asyncio
import base64
import queue
import time

import ipywidgets
import pytest
import torch

from gantut.models import VAE, DCGANGenerator, MLPDiscriminator, MLPGenerator
from gantut.train import GANTrainer, VAETrainer
from gantut.widgets import ClassPicker, LatentExplorer, TrainingDashboard, slerp

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
    first = bytes(ex._image.value)
    assert first.startswith(PNG)
    z0 = ex.latents()
    assert z0.shape == (5, 100)
    assert torch.allclose(z0[0], torch.randn(100, generator=torch.Generator().manual_seed(0)))

    ex.controls["frame"].value = 4  # what the slider does: its observer redraws
    assert ex.state["frame"] == 4 and bytes(ex._image.value) != first
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


def test_dashboard_on_step_updates_status_and_picture(gan, small_mnist):
    dash = TrainingDashboard(gan, every=2)
    dash.widget()
    before = bytes(dash._image.value)
    gan.fit(small_mnist[0], steps=2, progress=False)
    dash.on_step(gan)
    assert dash.status.startswith("step 2 of ") and "d_loss" in dash.controls["status"].value
    assert bytes(dash._image.value) != before and dash.png().startswith(PNG)


def test_headless_output_carries_a_png(gan, monkeypatch):
    """What papermill/nbval/the book keep: a PNG of the state, with or without the panel."""
    ex = LatentExplorer(gan)
    for mode in ("auto", "static"):  # pytest is no kernel: the PNG alone
        monkeypatch.setenv("GANTUT_WIDGETS", mode)
        bundle = ex._bundle()
        assert base64.b64decode(bundle["image/png"]).startswith(PNG)
        assert "application/vnd.jupyter.widget-view+json" not in bundle
    monkeypatch.setenv("GANTUT_WIDGETS", "on")
    with pytest.raises(ValueError, match="use auto or static"):
        ex._bundle()


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
