"""Training on several processes with DistributedDataParallel: ``torchrun ... -m gantut train``.

``torchrun --nproc_per_node=N -m gantut train --model dcgan --out runs/dcgan`` starts N
copies of the command line (:mod:`gantut.cli`); each calls :func:`init` to join the
process group (gloo on CPUs, NCCL on GPUs, one GPU per process) and :func:`prepare` to
train its share of every batch. How the work is split:

- **Data.** Every process holds the whole (small) dataset and draws the same shuffled
  order from a generator seeded alike everywhere; each keeps its own ``1/N`` slice of
  every batch (:class:`gantut.train.Batches`). The first process of each machine fills
  the data caches (the download, the metrics' classifier) while the others wait
  (:func:`first_then_others`); then all check that they hold the same data (:func:`agree`). The recipe's ``batch_size`` stays the
  *global* batch, so N processes train the same recipe as one process, N times wider
  per step per process instead of N times longer. It must divide by N.
- **Gradients.** G and D (or the VAE) are wrapped in ``DistributedDataParallel``, which
  averages their gradients over the processes in every ``backward``; all processes then
  take the same optimiser step and hold identical weights (:func:`digests` checks it).
  The generator step runs D unwrapped: D is frozen there, so there is nothing of D to
  share, and DDP would otherwise wait for D gradients that never come.
- **Randomness.** Noise, dropout and the like differ per process (seed + rank): the
  processes must not draw the same fake images.
- **Writing.** Every process calls ``trainer.save`` at the same steps (each sends its
  random state); only rank 0 writes the checkpoint, the metrics log and the images.

**Resuming with another number of processes.** A checkpoint holds the weights, the
optimiser states, the step and the data order as *global* batches: the permutation of
the epoch, the position in it, and the shared generator. None of these depends on N, so
``--resume`` continues the same sequence of global batches with any N, and every
process takes its slice of them. What does depend on N is each process's own random
stream (noise, dropout): with the same N each process gets its own stream back and the
resumed run is exact (on CPUs); with another N there are no streams to give back, so
each process starts a fresh one derived from the checkpoint and its rank.
BatchNorm layers (the DCGAN's) normalise over each process's slice, not the global batch.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import rng_state, set_rng_state
from .utils import get_device

# how long the other processes wait while the first one downloads MNIST and trains the
# metrics' classifier (minutes on one CPU thread for the 60,000 digits)
PREPARE_TIMEOUT = timedelta(hours=1)


@dataclass(frozen=True)
class Dist:
    """This process's place in the group."""

    rank: int
    world: int
    local_rank: int
    device: torch.device
    backend: str


def init(device: str = "auto") -> Dist | None:
    """Join the process group that ``torchrun`` describes in the environment.

    Returns ``None`` for a plain single-process run (no ``WORLD_SIZE`` above 1). On
    GPUs the backend is NCCL (with gloo beside it for waiting on the CPU); on the CPU it
    is gloo. Process ``LOCAL_RANK`` takes GPU ``LOCAL_RANK`` -- or GPU 0 when it sees
    only one, as when a scheduler (SLURM) gives each process its own
    ``CUDA_VISIBLE_DEVICES``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = get_device(device)
    if device.type == "cuda":
        device = torch.device("cuda", _gpu_index(rank, local_rank))
        torch.cuda.set_device(device)
    backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Dist(rank, world, local_rank, device, "nccl" if device.type == "cuda" else "gloo")


def _gpu_index(rank: int, local_rank: int) -> int:
    """Which of the visible GPUs process ``local_rank`` of this machine trains on."""
    n = torch.cuda.device_count()
    if n == 1 and (local_rank == 0 or os.environ.get("CUDA_VISIBLE_DEVICES")):
        return 0  # one GPU per process (CUDA_VISIBLE_DEVICES set per process)
    if local_rank >= n:
        raise RuntimeError(f"process {rank} wants GPU {local_rank}, but it sees {n}: lower "
                           "--nproc_per_node to the number of GPUs, or give each process "
                           "its own with CUDA_VISIBLE_DEVICES")
    return local_rank


def first_then_others(d: Dist | None, fn):
    """``fn()`` on the first process of each machine, then on the others; returns its result.

    For work that fills a cache on the local disk (downloading MNIST, training the metrics'
    classifier): the first process does it while the others wait (up to
    :data:`PREPARE_TIMEOUT`, on the CPU, outside any NCCL timeout), then they read the cache.
    """
    if d is None:
        return fn()
    if d.local_rank == 0:
        out = fn()
    dist.monitored_barrier(timeout=PREPARE_TIMEOUT)
    if d.local_rank != 0:
        out = fn()
    return out


def agree(d: Dist | None, value, what: str) -> None:
    """Raise unless every process has the same ``value`` (a collective: all must call it)."""
    if d is None:
        return
    values: list = [None] * d.world
    dist.all_gather_object(values, value)
    if len(set(map(repr, values))) > 1:
        raise RuntimeError(f"the processes disagree on {what}: {values} (by rank). Give every "
                           "machine the same data/ folder (copy rank 0's), then start again")


def prepare(trainer, d: Dist, seed: int):
    """Make ``trainer`` (built alike on every process) train its share with DDP.

    Call it after building the trainer and before ``resume``/``fit``; returns ``trainer``.
    """
    trainer.shard = (d.rank, d.world)
    trainer.data_generator = torch.Generator().manual_seed(seed)
    ids = [d.local_rank] if d.device.type == "cuda" else None
    # DDP broadcasts rank 0's weights now, so every process starts from the same ones.
    trainer.ddp = {name: DistributedDataParallel(trainer.modules[name], device_ids=ids)
                   for name in trainer.optimizers}
    torch.manual_seed(seed + d.rank)  # each process its own noise from here on
    return trainer


def gather_rng_states() -> list[dict]:
    """Every process's random state, in rank order (a collective: all must call it)."""
    states: list = [None] * dist.get_world_size()
    dist.all_gather_object(states, rng_state())
    return states


def restore_rng_state(state: dict, trainer) -> None:
    """After loading a checkpoint, give this process its own random stream back.

    With as many processes as wrote the checkpoint, each gets exactly its saved state;
    with another number, each seeds a fresh stream from the checkpoint and its rank.
    """
    rank, world = trainer.shard
    saved = state.get("rank_rng") or []
    if len(saved) == world:
        set_rng_state(saved[rank])
    else:  # the checkpoint's rank-0 state is loaded on every process: derive from it
        base = int(torch.randint(2**62, (1,)))
        torch.manual_seed(base + rank)


def digests(trainer) -> list[str]:
    """A SHA-256 of each process's weights (the parameters of every module, the EMA copy
    included), in rank order: equal strings mean identical weights. A collective.

    Buffers are left out on purpose: BatchNorm's running statistics are updated from each
    process's own slice and made equal by DDP (rank 0's are broadcast) at the next forward.
    """
    h = hashlib.sha256()
    for name, module in sorted(trainer.modules.items()):
        for key, t in module.named_parameters():
            h.update(f"{name}.{key}".encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    if not dist.is_initialized():
        return [h.hexdigest()]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, h.hexdigest())
    return out


def close(d: Dist | None) -> None:
    """Leave the process group (a no-op for a single process)."""
    if d is not None and dist.is_initialized():
        dist.destroy_process_group()
