"""``torchrun --nproc_per_node=2 -m gantut train``: 2 CPU processes (gloo) on 127.0.0.1.

Both processes hold identical weights after every step, and a run resumes with the same
number of processes and with a different one (the data order, kept as global batches,
carries over unchanged). Two launches only, for the CI budget; that a resume with the same
number of processes is bit-exact (2+2 steps == 4 steps) was checked by hand.
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from gantut.cli import main

ARGS = ["--model", "seed-mlp", "--eval-every", "-1", "--log-every", "1", "--no-progress"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*argv, nproc=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           "--nnodes=1", "--master-addr=127.0.0.1", f"--master-port={free_port()}",
           "-m", "gantut", "train", *map(str, argv)]
    env = {**os.environ, "GANTUT_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def events(out, kind):
    rows = map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
    return [r for r in rows if r["event"] == kind]


def ckpt(out):
    return torch.load(out / "checkpoint.pt", weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    log = torchrun("--steps", 2, "--out", root / "two", "--check-sync", *ARGS)
    shutil.copytree(root / "two", root / "one")
    log += torchrun("--steps", 4, "--out", root / "two", "--resume", "--check-sync", *ARGS)
    return root, log


def test_both_processes_hold_identical_weights_after_every_step(runs):
    root, log = runs
    assert "on 2 x cpu (gloo)" in log
    assert "step 2 -> 4" in log
    sync = events(root / "two", "sync")
    assert [r["step"] for r in sync] == [1, 2, 3, 4]
    for r in sync:
        assert len(r["digests"]) == 2 and r["digests"][0] == r["digests"][1], r
    assert len({r["digests"][0] for r in sync}) == 4  # and the weights did change
    state = ckpt(root / "two")
    assert state["step"] == 4 and [r["step"] for r in state["history"]] == [1, 2, 3, 4]
    assert len(state["rank_rng"]) == 2  # each process's random state, for an exact resume
    assert not torch.equal(state["rank_rng"][0]["cpu"], state["rank_rng"][1]["cpu"])


def test_resume_with_one_process(runs, capsys):
    root, _ = runs
    out = root / "one"
    assert main(["train", "--steps", "4", "--out", str(out), "--resume", *ARGS[2:]]) == 0
    assert "step 2 -> 4 on 1 x cpu" in capsys.readouterr().err
    one, two = ckpt(out), ckpt(root / "two")
    assert one["step"] == 4 and [r["step"] for r in one["history"]] == [1, 2, 3, 4]
    assert one["history"][:2] == two["history"][:2]  # the 2-process steps are kept
    # the same global batches: one process went through the data exactly as two did
    assert torch.equal(one["batches"]["perm"], two["batches"]["perm"])
    assert one["batches"]["pos"] == two["batches"]["pos"]
