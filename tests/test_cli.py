"""``python -m gantut``: train -> resume -> sample, and a clear error for each mistake."""

import errno
import json
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image

import gantut.checkpoint
from gantut.cli import load_run, main

FAST = ["--eval-every", "-1", "--no-progress", "--log-every", "1"]


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def rows(out, event):
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def test_train_resume_sample(tmp_path, capsys):
    out = tmp_path / "run"
    rc, err = run(capsys, "train", "--model", "seed-mlp", "--steps", 4, "--out", out,
                  "--eval-every", 2, "--n-eval", 200, "--log-every", 1, "--no-progress")
    assert rc == 0, err
    assert "images/s" in err and "FID" in err
    assert [r["step"] for r in rows(out, "train")] == [1, 2, 3, 4]
    fids = rows(out, "eval")
    assert [r["step"] for r in fids] == [2, 4] and all(r["fid"] > 0 for r in fids)
    assert Image.open(out / "samples.png").size == (4 * 242, 4 * 242)  # 8 x 8 digits, 4x
    info = json.loads((out / "run.json").read_text())
    assert info["model"] == "seed-mlp" and info["steps"] == 4 and info["processes"] == 1

    rc, err = run(capsys, "train", "--steps", 6, "--out", out, *FAST, "--resume")
    assert rc == 0, err
    assert "step 4 -> 6" in err
    assert [r["step"] for r in rows(out, "train")] == [1, 2, 3, 4, 5, 6]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 6

    rc, err = run(capsys, "train", "--steps", 6, "--out", out, *FAST, "--resume")
    assert rc == 0 and "nothing to do" in err

    trainer = load_run(out)  # what a notebook does to use a CLI-trained model
    assert trainer.step == 6 and trainer.meta["model"] == "seed-mlp"
    assert trainer.sample(3).shape == (3, 1, 28, 28)

    rc, err = run(capsys, "sample", out, "-n", 16, "-o", tmp_path / "grid.png")
    assert rc == 0, err
    assert Image.open(tmp_path / "grid.png").size == (4 * 122, 4 * 122)  # a 4 x 4 grid, 4x
    rc, err = run(capsys, "sample", out, "-n", 16, "--scale", 1, "-o", tmp_path / "small.png")
    assert rc == 0, err
    small = Image.open(tmp_path / "small.png")
    assert small.size == (122, 122)
    big = np.asarray(Image.open(tmp_path / "grid.png").convert("L"))  # each pixel 4 x 4
    assert (big[::4, ::4] == np.asarray(small.convert("L"))).all()
    assert (big[1::4, 3::4] == big[::4, ::4]).all()


def test_resumed_run_equals_uninterrupted(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run(capsys, "train", "--model", "dcgan", "--steps", 4, "--out", a, *FAST)[0] == 0
    assert run(capsys, "train", "--model", "dcgan", "--steps", 2, "--out", b, *FAST)[0] == 0
    assert run(capsys, "train", "--steps", 4, "--out", b, "--resume", *FAST)[0] == 0
    sa = torch.load(a / "checkpoint.pt", weights_only=True)
    sb = torch.load(b / "checkpoint.pt", weights_only=True)
    for name, weights in sa["modules"].items():
        for k, v in weights.items():
            assert torch.equal(v, sb["modules"][name][k]), f"{name}.{k}"
    def losses(out):
        return [(r["step"], r["d_loss"], r["g_loss"]) for r in rows(out, "train")]

    assert losses(a) == losses(b)


def test_ctrl_c_stops_cleanly_with_a_checkpoint(tmp_path):
    """SIGINT during training: the step finishes, the checkpoint is written, exit 0."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "gantut", "train", "--model", "seed-mlp",
                             "--steps", "100000", "--out", str(out), *FAST],
                            stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    for _ in range(600):  # wait until it trains
        if metrics.exists() and metrics.read_text().count("\n") >= 3:
            break
        proc.poll()
        assert proc.returncode is None, proc.stderr.read()
        time.sleep(0.1)
    proc.send_signal(2)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped early" in err
    step = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert 3 <= step < 100000


def test_errors(tmp_path, capsys):
    out = tmp_path / "run"
    rc, err = run(capsys, "train", "--model", "seed-mlp", "--out", out, "--resume", *FAST)
    assert rc == 1 and "no checkpoint at" in err and "train one first" in err

    rc, err = run(capsys, "train", "--model", "vae", "--profile", "fast", "--out", out, *FAST)
    assert rc == 1 and "unknown profile 'fast'" in err and "smoke, quick, full" in err

    rc, err = run(capsys, "train", "--model", "vae", "--loss", "hinge", "--out", out, *FAST)
    assert rc == 1 and "--loss does not apply" in err

    rc, err = run(capsys, "train", "--out", out, *FAST)
    assert rc == 1 and "choose a model with --model" in err

    assert run(capsys, "train", "--model", "vae", "--steps", 2, "--out", out, *FAST)[0] == 0
    rc, err = run(capsys, "train", "--model", "dcgan", "--steps", 4, "--out", out, "--resume",
                  *FAST)
    assert rc == 1 and "holds a --model vae run; you asked for --model dcgan" in err

    rc, err = run(capsys, "train", "--model", "vae", "--steps", 4, "--out", out, *FAST)
    assert rc == 1 and "already holds a run: add --resume" in err

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    rc, err = run(capsys, "sample", junk)
    assert rc == 1 and "corrupt or not a gantut checkpoint" in err

    foreign = tmp_path / "foreign"  # a real torch file, but no CLI run in it
    gantut.checkpoint.atomic_save({"weights": torch.zeros(3)}, foreign / "checkpoint.pt")
    rc, err = run(capsys, "sample", foreign)
    assert rc == 1 and "not a checkpoint of `python -m gantut train`" in err

    rc, err = run(capsys, "sample", tmp_path / "missing")
    assert rc == 1 and "no checkpoint at" in err


def test_full_disk(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert run(capsys, "train", "--model", "seed-mlp", "--steps", 2, "--out", out, *FAST)[0] == 0

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gantut.checkpoint.torch, "save", no_space)
    rc, err = run(capsys, "train", "--steps", 4, "--out", out, "--resume", *FAST)
    assert rc == 1
    assert "disk is full" in err and "--resume" in err and "Traceback" not in err
    monkeypatch.undo()
    # the checkpoint of step 2 is intact and no temporary file is left behind
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2
    assert not list(out.glob(".checkpoint.pt.*"))


def test_bad_numbers_are_errors_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    for flag, value, says in [("--steps", -5, "--steps must be at least 1"),
                              ("--steps", 0, "--steps must be at least 1"),
                              ("--log-every", 0, "--log-every must be at least 1"),
                              ("--checkpoint-every", -1, "--checkpoint-every must be at least 0"),
                              ("--eval-every", -2, "--eval-every must be at least -1"),
                              ("--n-eval", -1, "--n-eval must be at least 0")]:
        rc, err = run(capsys, "train", "--model", "seed-mlp", "--out", out, *FAST, flag, value)
        assert rc == 1 and says in err, (flag, err)
        assert not out.exists(), f"{flag} {value} wrote {list(out.iterdir())}"
    rc, err = run(capsys, "sample", tmp_path, "-n", 0)
    assert rc == 1 and "-n must be at least 1" in err


def test_loss_choices_are_the_losses_of_gantut_losses():
    from gantut.cli import parser
    from gantut.losses import LOSSES

    train = parser()._subparsers._group_actions[0].choices["train"]
    loss = next(a for a in train._actions if a.dest == "loss")
    assert list(loss.choices) == list(LOSSES)


def test_a_corrupt_checkpoint_keeps_the_previous_one(tmp_path, capsys):
    """Every checkpoint replaces the last one by renames, keeping it as checkpoint.prev.pt;
    when the newest cannot be read, the error says how to go on from the previous one."""
    out = tmp_path / "run"
    args = [*FAST, "--checkpoint-every", 2]
    assert run(capsys, "train", "--model", "seed-mlp", "--steps", 3, "--out", out, *args)[0] == 0
    ckpt, prev = out / "checkpoint.pt", out / "checkpoint.prev.pt"
    assert torch.load(ckpt, weights_only=True)["step"] == 3
    assert torch.load(prev, weights_only=True)["step"] == 2
    assert not list(out.glob(".*"))  # no temporary files left

    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # a truncated write (a crash, a full disk)
    rc, err = run(capsys, "train", "--steps", 6, "--out", out, *args, "--resume")
    assert rc == 1 and "cannot be read" in err and "is intact (from step 2)" in err
    assert f"mv {prev} {ckpt}" in err
    rc, err = run(capsys, "train", "--model", "seed-mlp", "--steps", 6, "--out", out, *args)
    assert rc == 1 and "already holds a run" in err  # a fresh run must not overwrite it

    prev.rename(ckpt)  # what the message says to do
    rc, err = run(capsys, "train", "--steps", 6, "--out", out, *args, "--resume")
    assert rc == 0 and "step 2 -> 6" in err, err
    assert [r["step"] for r in rows(out, "train")] == [1, 2, 3, 4, 5, 6]

    prev.unlink()
    ckpt.write_bytes(b"junk")  # no previous checkpoint: the plain error
    rc, err = run(capsys, "train", "--steps", 8, "--out", out, *args, "--resume")
    assert rc == 1 and "corrupt or not a gantut checkpoint" in err
