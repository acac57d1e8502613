"""GPU bugs caught on a CPU: the trainers run, save, resume and sample on "CUDA" tensors.

A machine without a GPU cannot run CUDA kernels, but most GPU bugs are not in kernels: a
CPU tensor mixed into a GPU computation, a checkpoint loaded onto the device whose random
states ``torch.set_rng_state`` then refuses, one random state per GPU saved on one machine
and restored on another, a blocking read from the device in every step. The harness below
(``fake_cuda``) runs the real code with tensors that compute on the CPU but say they live
on ``cuda:0``, and refuses what CUDA refuses:

- an operation mixing a "CUDA" tensor with a CPU tensor that is not a 0-d scalar raises
  PyTorch's "Expected all tensors to be on the same device" (copies and CPU indices into
  CUDA tensors are allowed, as on a GPU);
- random numbers on the "GPU" come from per-GPU generators of their own, read and set
  through ``torch.cuda.get_rng_state`` / ``set_rng_state`` / ``manual_seed_all``, and
  random states must be CPU ByteTensors (``torch.set_rng_state`` too);
- ``torch.save`` remembers which tensors were on the GPU and ``torch.load`` honours
  ``map_location`` as it would (``"cuda"`` puts every tensor on the GPU);
- every read from the device (``.item()``, ``.tolist()``, ``.cpu()``) is counted.

Each test runs for every trainer in :data:`TRAINERS` (GANs, the VAE, flow matching; a new
trainer added there gets the same checks). The harness itself is tested first: a
test that reintroduces the bug of issue 16 (``map_location=device``) must fail.
"""

from __future__ import annotations

import contextlib
import copy
import warnings

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_unflatten

import gantut.train
from gantut import metrics
from gantut.checkpoint import safe_load
from gantut.cli import _save_grid, main
from gantut.flow import FlowTrainer, UNet
from gantut.models import VAE, MLPDiscriminator, MLPGenerator
from gantut.recipes import make_trainer
from gantut.train import GANTrainer, VAETrainer
from gantut.utils import seeded

CUDA = torch.device("cuda", 0)
aten = torch.ops.aten
PYTHON_KEY = torch._C.DispatchKeySet(torch._C.DispatchKey.Python)
CROSS_DEVICE_OK = {aten.copy_.default, aten._to_copy.default, aten._foreach_copy_.default}
INDEX_OPS = {aten.index.Tensor, aten.index_put_.default, aten.index_put.default,
             aten._index_put_impl_.default}  # a CUDA tensor may be indexed with CPU indices


# --------------------------------------------------------------------------- the harness
class CudaTensor(torch.Tensor):
    """A CPU tensor that says it is on ``cuda:0``; operations on it go through :func:`_run`."""

    @staticmethod
    def __new__(cls, t: torch.Tensor):
        return torch.Tensor._make_subclass(cls, t, t.requires_grad)

    device = property(lambda self: CUDA)
    is_cuda = property(lambda self: True)

    def get_device(self):
        return 0

    def __repr__(self, **kwargs):
        return f"{self.cpu()!r} on cuda"

    def tolist(self):
        return self.cpu().tolist()

    def numpy(self, *args, **kwargs):
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() "
                        "to copy the tensor to host memory first.")

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        """``.to("cuda")`` / ``.cuda()`` of a CUDA tensor is the tensor itself; ``.cpu()``
        and ``.to("cpu")`` copy (the C++ side sees a CPU tensor and would do neither)."""
        kwargs = kwargs or {}
        if func is torch.nn.functional.one_hot and isinstance(args[0], CudaTensor):
            return _one_hot(*args, **kwargs)
        if func in (torch.Tensor.to, torch.Tensor.cpu, torch.Tensor.cuda) \
                and isinstance(args[0], CudaTensor):
            if func is torch.Tensor.to:
                device, dtype, _, _ = torch._C._nn._parse_to(*args[1:], **kwargs)
            else:
                device, dtype = ("cpu" if func is torch.Tensor.cpu else "cuda"), None
            if device is not None and torch.device(device).type == "cuda" \
                    and dtype in (None, args[0].dtype):
                return args[0]
            if device is not None and torch.device(device).type == "cpu":
                return aten._to_copy.default(args[0], dtype=dtype, device=torch.device("cpu"))
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **kwargs)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


def _one_hot(y, num_classes):
    """``one_hot`` as CUDA computes it. PyTorch's own, given a tensor with a Python dispatch
    key, builds a class index with the input's C++ device -- the CPU here, the GPU on a GPU."""
    out = torch.zeros(*y.shape, num_classes, dtype=torch.long, device="cuda")
    return out.scatter_(-1, y.unsqueeze(-1), 1)


class _FakeCudaMode(TorchDispatchMode):
    """Routes factory functions (``torch.randn(..., device="cuda")``) through :func:`_run`."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


class GPUs:
    """The fake GPUs' random generators and the count of reads from them."""

    generators: list[torch.Generator] = []
    reads = 0  # device -> host copies and .item(): each one a blocking sync on a GPU
    writes = 0  # host -> device copies


def _run(func, args, kwargs):
    tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
    cuda = any(isinstance(t, CudaTensor) for t in tensors)
    if cuda and func not in CROSS_DEVICE_OK:
        checked = [args[0]] if func in INDEX_OPS else tensors
        if any(not isinstance(t, CudaTensor) and t.dim() > 0 for t in checked):
            raise RuntimeError(f"{func}: Expected all tensors to be on the same device, but "
                               "found at least two devices, cuda:0 and cpu!")
    _count_transfers(func, args, kwargs)
    if kwargs.get("device") is not None:  # a factory function, or a copy to a device
        cuda = torch.device(kwargs["device"]).type == "cuda"
        kwargs = {**kwargs, "device": torch.device("cpu")}
    own_stream = cuda and torch.Tag.nondeterministic_seeded in func.tags \
        and kwargs.get("generator") is None
    with torch._C._ExcludeDispatchKeyGuard(PYTHON_KEY), _gpu_stream(own_stream):
        out = func(*args, **kwargs)
        if cuda and func is not aten._local_scalar_dense.default:
            out = tree_flatten(out)
            out = tree_unflatten([CudaTensor(t) if type(t) is torch.Tensor else t
                                  for t in out[0]], out[1])
    return out


@contextlib.contextmanager
def _gpu_stream(on: bool):
    """Random numbers drawn on the GPU come from the GPU's generator, not the CPU's."""
    if not on:
        yield
        return
    cpu = torch.default_generator.get_state()
    torch.default_generator.set_state(GPUs.generators[0].get_state())
    try:
        yield
    finally:
        GPUs.generators[0].set_state(torch.default_generator.get_state())
        torch.default_generator.set_state(cpu)


def _count_transfers(func, args, kwargs):
    if func is aten._local_scalar_dense.default and isinstance(args[0], CudaTensor):
        GPUs.reads += 1
    elif func is aten._to_copy.default and kwargs.get("device") is not None:
        to_cuda = torch.device(kwargs["device"]).type == "cuda"
        if to_cuda != isinstance(args[0], CudaTensor):
            GPUs.writes += to_cuda
            GPUs.reads += not to_cuda
    elif func is aten.copy_.default and isinstance(args[0], CudaTensor) != isinstance(args[1], CudaTensor):
        GPUs.writes += isinstance(args[0], CudaTensor)
        GPUs.reads += isinstance(args[1], CudaTensor)


def _check_rng_state(state):
    if not (type(state) is torch.Tensor and state.dtype == torch.uint8):
        raise TypeError("RNG state must be a torch.ByteTensor")  # PyTorch's own words


def _index(device) -> int:
    return device if isinstance(device, int) else (torch.device(device).index or 0)


def _get_rng_state(device="cuda"):
    return GPUs.generators[_index(device)].get_state()


def _set_rng_state(state, device="cuda"):
    _check_rng_state(state)
    GPUs.generators[_index(device)].set_state(state)  # IndexError for a GPU it does not see


_real = {"save": torch.save, "load": torch.load, "set_rng_state": torch.set_rng_state,
         "group": torch._C._group_tensors_by_device_and_dtype}


def _group(tensorlistlist, with_indices=False):
    """Optimisers and gradient clipping group tensors by device: a group of CUDA tensors
    is keyed ``cuda:0``, as on a GPU (the C++ side sees CPU tensors)."""
    out = {}
    for (device, dtype), group in _real["group"](tensorlistlist, with_indices).items():
        first = next((t for t in group[0][0] if t is not None), None)
        out[CUDA if isinstance(first, CudaTensor) else device, dtype] = group
    return out
SAVED_ON_CUDA = "__saved_on_cuda__"


def _save(obj, f, *args, **kwargs):
    """``torch.save``, remembering which tensors were on the GPU."""
    leaves, spec = tree_flatten(obj)
    on_cuda = [i for i, t in enumerate(leaves) if isinstance(t, CudaTensor)]
    if on_cuda:
        leaves = [t.cpu() if isinstance(t, CudaTensor) else t for t in leaves]
        obj = {SAVED_ON_CUDA: on_cuda, "obj": tree_unflatten(leaves, spec)}
    return _real["save"](obj, f, *args, **kwargs)


def _load(f, map_location=None, *args, **kwargs):
    """``torch.load``: ``map_location=None`` puts tensors back where they were saved,
    ``"cuda"`` puts every tensor on the GPU, ``"cpu"`` every tensor on the CPU."""
    if map_location is not None and not isinstance(map_location, str | torch.device):
        raise NotImplementedError("the fake handles a device as map_location only")
    obj = _real["load"](f, *args, map_location="cpu", **kwargs)
    on_cuda = set()
    if isinstance(obj, dict) and SAVED_ON_CUDA in obj:
        on_cuda, obj = set(obj[SAVED_ON_CUDA]), obj["obj"]
    leaves, spec = tree_flatten(obj)
    for i, t in enumerate(leaves):
        to_cuda = (i in on_cuda if map_location is None
                   else torch.device(map_location).type == "cuda")
        if isinstance(t, torch.Tensor) and to_cuda:
            leaves[i] = t.to("cuda")
    return tree_unflatten(leaves, spec)


def _cpu_set_rng_state(state):
    _check_rng_state(state)
    _real["set_rng_state"](state)


@contextlib.contextmanager
def fake_cuda(n_gpus: int = 1):
    """Within the block, ``n_gpus`` fake GPUs exist and ``"cuda"`` tensors compute on the CPU."""
    torch._C._ensureCUDADeviceGuardSet()  # a no-op device guard where CUDA is unavailable
    GPUs.generators = [torch.Generator().manual_seed(1000 + i) for i in range(n_gpus)]
    GPUs.reads = GPUs.writes = 0
    patches = {"_lazy_init": lambda: None, "is_initialized": lambda: True,
               "device_count": lambda: n_gpus, "get_rng_state": _get_rng_state,
               "set_rng_state": _set_rng_state,
               "manual_seed": lambda seed: GPUs.generators[0].manual_seed(seed),
               "manual_seed_all": lambda seed: [g.manual_seed(seed) for g in GPUs.generators]}
    swap = torch.__future__.get_swap_module_params_on_conversion()
    with pytest.MonkeyPatch.context() as mp:
        for name, fn in patches.items():
            mp.setattr(torch.cuda, name, fn)
        mp.setattr(torch, "set_rng_state", _cpu_set_rng_state)
        mp.setattr(torch, "save", _save)
        mp.setattr(torch, "load", _load)
        mp.setattr(torch._C, "_group_tensors_by_device_and_dtype", _group)
        torch.__future__.set_swap_module_params_on_conversion(True)  # module.to("cuda")
        try:
            with _FakeCudaMode():
                yield
        finally:
            torch.__future__.set_swap_module_params_on_conversion(swap)


def on_cuda(trainer) -> bool:
    tensors = [t for m in trainer.modules.values() for t in (*m.parameters(), *m.buffers())]
    tensors += [t for o in trainer.optimizers.values() for s in o.state.values()
                for k, t in s.items() if k != "step"]
    return all(isinstance(t, CudaTensor) for t in tensors)


# ---------------------------------------------------------------------- the trainers
def _gan():
    return GANTrainer(MLPGenerator(hidden=(32,)), MLPDiscriminator(hidden=(32,), dropout=0.2),
                      ema=0.9, batch_size=32, device="cuda")


def _wgan_gp():
    return GANTrainer(MLPGenerator(hidden=(32,)), MLPDiscriminator(hidden=(32,)),
                      loss="wgan-gp", n_critic=2, clip_grad=1.0, batch_size=32, device="cuda")


def _vae():
    return VAETrainer(VAE(z_dim=4, hidden=32), batch_size=32, device="cuda")


def _flow():
    return FlowTrainer(UNet(ch=8), ema=0.9, batch_size=16, sample_steps=2, device="cuda")


# name -> (build a trainer on "cuda", does it train on labels?)
TRAINERS = {
    "gan": (_gan, False),
    "wgan-gp": (_wgan_gp, False),
    "dcgan": (lambda: make_trainer("dcgan", device="cuda", batch_size=16), False),
    "cgan": (lambda: make_trainer("cgan", device="cuda", batch_size=16), True),
    "vae": (_vae, False),
    "flow": (_flow, False),
}


@pytest.fixture(params=list(TRAINERS))
def builder(request, mnist):
    """``(build, x, y)``: a trainer builder and 128 training digits (with labels if used)."""
    build, labelled = TRAINERS[request.param]
    return build, mnist.train_x[:128], (mnist.train_y[:128] if labelled else None)


def fit(trainer, x, y, steps, **kwargs):
    return trainer.fit(x, y, steps=steps, progress=False, **kwargs)


# --------------------------------------------------------------------------- the tests
def test_the_harness_refuses_what_cuda_refuses():
    with fake_cuda():
        x = torch.randn(4, 3, device="cuda")
        assert isinstance(x, CudaTensor) and x.device.type == "cuda"
        with pytest.raises(RuntimeError, match="same device"):
            x + torch.ones(4, 3)
        assert (x * torch.tensor(2.0)).device.type == "cuda"  # a CPU scalar is fine
        assert x[torch.tensor([0, 2])].shape == (2, 3)  # so are CPU indices
        with pytest.raises(TypeError, match="ByteTensor"):
            torch.set_rng_state(torch.get_rng_state().to("cuda"))
        with pytest.raises(TypeError, match="ByteTensor"):
            torch.cuda.set_rng_state(torch.cuda.get_rng_state().to("cuda"))
        with pytest.raises(TypeError, match="numpy"):
            x.numpy()


def test_train_save_resume_and_sample_on_cuda(builder, tmp_path):
    """3 steps, a checkpoint, a fresh trainer resumed from it, 2 more steps: the same
    weights and losses as 5 steps in one go, everything on the GPU, samples too."""
    build, x, y = builder
    with fake_cuda():
        torch.manual_seed(1)
        whole = fit(build(), x, y, 5)
        torch.manual_seed(1)
        first = fit(build(), x, y, 3, callbacks=[(0, lambda tr: tr.save(tmp_path / "c.pt"))])
        assert on_cuda(first)
        torch.manual_seed(99)  # whatever happens in between must not matter
        resumed = build().resume(tmp_path / "c.pt")
        assert on_cuda(resumed) and resumed.step == 3
        fit(resumed, x, y, 2)
        for name, module in whole.modules.items():
            for (key, a), b in zip(module.state_dict().items(),
                                   resumed.modules[name].state_dict().values(), strict=True):
                assert torch.equal(a.cpu(), b.cpu()), f"{name}.{key}"
        assert [{k: v for k, v in r.items() if k != "time"} for r in whole.history] == \
               [{k: v for k, v in r.items() if k != "time"} for r in resumed.history]
        samples = resumed.sample(4)
        assert isinstance(samples, CudaTensor) and samples.shape[0] == 4


def test_resume_fails_if_the_checkpoint_is_loaded_onto_the_gpu(tmp_path, monkeypatch):
    """The bug of issue 16, put back: ``safe_load(path, map_location=self.device)``."""
    def onto_the_device(path, map_location="cpu"):
        return safe_load(path, map_location="cuda")

    with fake_cuda():
        _gan().fit(torch.randn(64, 1, 28, 28), steps=1, progress=False).save(tmp_path / "c.pt")
        _gan().resume(tmp_path / "c.pt")  # fine as it is
        monkeypatch.setattr(gantut.train, "safe_load", onto_the_device)
        with pytest.raises(TypeError, match="ByteTensor"):
            _gan().resume(tmp_path / "c.pt")


def test_one_read_from_the_gpu_per_step(builder):
    """A step reads its logged numbers in one transfer, and writes nothing: data on the
    device stay there, and the batch order is copied there once per epoch."""
    build, x, y = builder
    with fake_cuda():
        x = x.repeat(4, 1, 1, 1).to("cuda")  # on the device, as the notebooks load it
        y = y.repeat(4).to("cuda") if y is not None else None
        trainer = fit(build(), x, y, 1)  # the first step draws the epoch's order
        perm = trainer.batches.perm
        GPUs.reads = GPUs.writes = 0
        fit(trainer, x, y, 3)
        assert trainer.batches.perm is perm  # (still the same epoch)
        assert (GPUs.reads, GPUs.writes) == (3, 0)


def test_a_checkpoint_from_more_gpus_than_this_machine_sees(builder, tmp_path):
    """A run on 4 GPUs saves 4 CUDA random states; resumed where 1 GPU is visible, the
    visible GPU gets the first state (today's bug: IndexError)."""
    build, x, y = builder
    with fake_cuda(n_gpus=4):
        trainer = fit(build(), x, y, 2)
        trainer.save(tmp_path / "c.pt")
        saved = [g.get_state() for g in GPUs.generators]
    assert len(torch.load(tmp_path / "c.pt", weights_only=True)["obj"]["rng"]["cuda"]) == 4
    with fake_cuda(n_gpus=1):
        resumed = build().resume(tmp_path / "c.pt")
        assert torch.equal(GPUs.generators[0].get_state(), saved[0])
        fit(resumed, x, y, 1)
        assert resumed.sample(2).device.type == "cuda"
    with fake_cuda(n_gpus=1):  # and where CUDA is in use but the run was on the CPU
        cpu_run = copy.deepcopy(trainer.state_dict())
        cpu_run["rng"]["cuda"] = []
        torch.save(cpu_run, tmp_path / "cpu.pt")
        build().resume(tmp_path / "cpu.pt")


def test_the_cli_trains_on_gpus_and_samples_where_fewer_are_visible(tmp_path, capsys):
    out = tmp_path / "run"
    with fake_cuda(n_gpus=2):
        rc = main(["train", "--model", "seed-mlp", "--device", "cuda", "--steps", "3",
                   "--out", str(out), "--eval-every", "-1", "--no-progress"])
        assert rc == 0, capsys.readouterr().err
    assert "on 1 x cuda" in capsys.readouterr().err
    with fake_cuda(n_gpus=1):
        assert main(["sample", str(out), "-n", "4", "--device", "cuda",
                     "-o", str(tmp_path / "grid.png")]) == 0
        assert main(["train", "--steps", "4", "--out", str(out), "--device", "cuda",
                     "--eval-every", "-1", "--no-progress", "--resume"]) == 0
    assert "step 3 -> 4" in capsys.readouterr().err


def test_evaluating_leaves_every_random_stream_alone(builder, mnist, tmp_path):
    """FID-style sampling and sample grids during training draw from fixed seeds on the
    GPU too, and restore its generator: the run goes on exactly as without them."""
    build, x, y = builder
    metrics.load_classifier(mnist)  # the cached classifier, loaded outside the fake

    def look(trainer):
        metrics.class_histogram(trainer, mnist, n=64)
        _save_grid(trainer, tmp_path / "grid.png", n=4)

    with warnings.catch_warnings(), fake_cuda():
        warnings.simplefilter("ignore")
        torch.manual_seed(3)
        plain = fit(build(), x, y, 4)
        torch.manual_seed(3)
        looked = fit(build(), x, y, 4, callbacks=[(1, look)])
    assert [r["step"] for r in looked.history] == [1, 2, 3, 4]
    assert [{k: v for k, v in r.items() if k != "time"} for r in plain.history] == \
           [{k: v for k, v in r.items() if k != "time"} for r in looked.history]


def test_seeded_restores_the_cpu_and_every_gpu():
    with fake_cuda(n_gpus=3):
        before = [torch.get_rng_state(), *(g.get_state() for g in GPUs.generators)]
        with seeded(5):
            a = torch.randn(3, device="cuda")
            for g in GPUs.generators:
                g.manual_seed(123)  # (as if other GPUs drew numbers)
        with seeded(5):
            b = torch.randn(3, device="cuda")
        after = [torch.get_rng_state(), *(g.get_state() for g in GPUs.generators)]
    assert torch.equal(a.cpu(), b.cpu())  # the seed fixes the GPU's draws
    assert all(torch.equal(s, t) for s, t in zip(before, after, strict=True))
