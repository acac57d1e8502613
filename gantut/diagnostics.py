"""Probes that look inside a network: dead units, gradients by layer, G's gradient under a strong D.

Notebook 06 (the source's FAQ) answers two questions with them:

- *Which activation?* :func:`activation_stats` measures, for every hidden activation
  layer, the share of units that pass (almost) no gradient for any input of a batch --
  dead ReLUs, saturated sigmoids and tanhs -- and the average gradient a unit passes.
- *Why do gradients vanish, and what helps?* :func:`layer_grad_norms` shows gradients
  shrinking layer by layer through a deep network (a problem of depth), and
  :func:`probe_generator_gradients` trains D alone against a frozen G and measures the
  gradient each generator loss would send to G as D gets stronger (a problem of the
  loss: Arjovsky & Bottou 2017, figure 2). :func:`generator_gradient_norm` measures that
  gradient before and after the gradient clipping the source recommends.

Notebook 04.1 uses :func:`vae_elbo` to follow a VAE's ELBO on held-out digits; notebook 05.2
uses :func:`real_score_gap` to watch a discriminator memorise its training digits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .losses import get_loss
from .train import GANTrainer
from .utils import evaluating

# The derivative of each activation, computed from its output, divided by its largest value
# (ReLU and LeakyReLU: 1 at x > 0; sigmoid: 1/4 at x = 0; tanh: 1 at x = 0).
_RELATIVE_DERIVATIVE: dict[type, Callable[[nn.Module, torch.Tensor], torch.Tensor]] = {
    nn.ReLU: lambda m, y: (y > 0).float(),
    nn.LeakyReLU: lambda m, y: torch.where(y > 0, 1.0, m.negative_slope),
    nn.Sigmoid: lambda m, y: 4 * y * (1 - y),
    nn.Tanh: lambda m, y: 1 - y**2,
}


@torch.no_grad()
def activation_stats(model: nn.Module, inputs: torch.Tensor, threshold: float = 0.01,
                     skip: tuple[str, ...] = ("out_act",)) -> list[dict]:
    """How much gradient the hidden units of ``model`` can pass, on the batch ``inputs``.

    For every activation module (ReLU, LeakyReLU, sigmoid, tanh) whose name is not in
    ``skip`` (by default a generator's output activation), in forward order, one row:

    - ``layer``: the module's name, ``activation``: its class name, ``units``: its width;
    - ``dead``: share of units whose derivative is below ``threshold`` times the
      activation's largest derivative *for every input of the batch*. Such a unit sends
      no gradient back to the layers below, whatever the input: a dead ReLU (negative
      pre-activation everywhere), a sigmoid or tanh saturated at one end. A LeakyReLU unit
      is never dead (its smallest derivative is its slope, 0.2);
    - ``gain``: the unit's derivative relative to the largest, averaged over units and
      inputs (1 = every unit passes its full gradient).

    The model runs once in eval mode (dropout off); its mode is restored afterwards.
    """
    rows: list[dict] = []
    hooks = []
    for name, module in model.named_modules():
        kind = next((k for k in _RELATIVE_DERIVATIVE if type(module) is k), None)
        if kind is None or name in skip:
            continue

        def hook(m, _inp, out, name=name, kind=kind):
            d = _RELATIVE_DERIVATIVE[kind](m, out).flatten(1)  # N x units
            rows.append({"layer": name, "activation": kind.__name__, "units": d.shape[1],
                         "dead": (d < threshold).all(0).float().mean().item(),
                         "gain": d.mean().item()})

        hooks.append(module.register_forward_hook(hook))
    if not hooks:
        raise ValueError(f"{type(model).__name__} has no ReLU, LeakyReLU, Sigmoid or Tanh module "
                         f"outside {skip}: nothing to measure")
    try:
        with evaluating(model):
            model(inputs)
    finally:
        for h in hooks:
            h.remove()
    return rows


def dead_unit_share(model: nn.Module, inputs: torch.Tensor, threshold: float = 0.01) -> float:
    """Share of all hidden units of ``model`` that are dead on ``inputs`` (see
    :func:`activation_stats`), weighting each layer by its width."""
    rows = activation_stats(model, inputs, threshold)
    return sum(r["dead"] * r["units"] for r in rows) / sum(r["units"] for r in rows)


def layer_grad_norms(model: nn.Module, loss_fn: Callable[[nn.Module], torch.Tensor],
                     clip: float | None = None) -> list[float]:
    """Gradient norm of the weight of every ``nn.Linear`` in ``model``, input side first,
    for the scalar ``loss_fn(model)`` -- after clipping the whole gradient of ``model`` to
    norm ``clip`` with ``torch.nn.utils.clip_grad_norm_`` when ``clip`` is given. Nothing is
    updated and the ``.grad`` fields are left as they were.

    In a deep network whose gradients vanish, the norms fall from the last layer to the
    first: each layer multiplies the backward signal by its weights and by its
    activation's derivative (at most 1/4 for a sigmoid). Clipping multiplies every
    layer's gradient by the same factor (at most 1), so it cannot change that fall.
    """
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer")
    params = [p for p in model.parameters() if p.requires_grad]
    saved = [p.grad for p in params]
    try:
        for p in params:
            p.grad = None
        loss_fn(model).backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(params, clip)
        return [0.0 if m.weight.grad is None else m.weight.grad.norm().item() for m in linears]
    finally:
        for p, g in zip(params, saved, strict=True):
            p.grad = g


def generator_gradient_norm(G, D, loss: str, n: int = 256, clip: float | None = None,
                            seed: int = 0) -> float:
    """Norm of the gradient that generator loss ``loss`` sends to G's parameters, for one batch
    of ``n`` fixed noise vectors (``seed``), with G and D as they are (nothing is updated, no
    ``.grad`` field is touched).

    ``clip``: the norm *after* ``torch.nn.utils.clip_grad_norm_(params, clip)``, as
    :class:`~gantut.train.GANTrainer` applies it with ``clip_grad`` -- it can only shrink a norm.

    Comparing losses on the same G, D and noise isolates what the loss itself does: e.g. under a
    D that rejects G's samples, the minimax gradient is a small fraction of the non-saturating one.
    """
    _, g_loss = get_loss(loss)
    params = [p for p in G.parameters() if p.requires_grad]
    d_state = [p.requires_grad for p in D.parameters()]
    D.requires_grad_(False)
    try:
        z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
        grads = torch.autograd.grad(g_loss(D(G(z.to(params[0].device)))), params)
    finally:
        for p, flag in zip(D.parameters(), d_state, strict=True):
            p.requires_grad_(flag)
    norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item()
    if clip is not None:  # clip_grad_norm_ scales by clip / (norm + 1e-6) when that is < 1
        norm *= min(1.0, clip / (norm + 1e-6))
    return norm


def probe_generator_gradients(G: nn.Module, D: nn.Module, x: torch.Tensor, *, steps: int,
                              every: int, loss: str = "minimax",
                              probes: dict[str, dict] | None = None,
                              trainer_cls: type[GANTrainer] = GANTrainer, **trainer_kw):
    """Train D alone against the frozen G for ``steps`` steps and, every ``every`` steps
    (and before the first), measure G's gradient norm under each probe.

    D is trained with ``loss``'s discriminator loss by ``trainer_cls(G, D, loss=loss,
    lr_g=0.0, **trainer_kw)`` -- an ordinary :class:`~gantut.train.GANTrainer`, or a
    subclass that trains D its own way (notebook 06's weight-clipped WGAN critic) --
    whose generator learning rate is 0, so G stays exactly as it is. ``probes`` maps a
    column name to keyword arguments of
    :func:`generator_gradient_norm`, e.g. ``{"minimax": {"loss": "minimax"}, "clipped":
    {"loss": "minimax", "clip": 1.0}}`` (default: the generator loss of ``loss``).

    Returns ``(trainer, DataFrame)``: the frame has ``step``, ``d_fake`` (mean D(G(z)) as
    a probability for the BCE losses, a raw score otherwise) and one column per probe.
    """
    import pandas as pd

    probes = probes or {loss: {"loss": loss}}
    trainer = trainer_cls(G, D, loss=loss, lr_g=0.0, **trainer_kw)
    rows = []
    z_fixed = torch.randn(256, G.z_dim, generator=torch.Generator().manual_seed(1))
    z_fixed = z_fixed.to(trainer.device)

    def measure(tr):
        with torch.no_grad(), evaluating(D):
            f = D(G(z_fixed))
        d_fake = torch.sigmoid(f).mean().item() if loss in ("minimax", "nonsaturating") \
            else f.mean().item()
        rows.append({"step": tr.step, "d_fake": d_fake,
                     **{name: generator_gradient_norm(G, D, **kw) for name, kw in probes.items()}})

    measure(trainer)
    trainer.fit(x, steps=steps, callbacks=[(every, measure)], progress=False)
    return trainer, pd.DataFrame(rows).set_index("step")


@torch.no_grad()
def vae_elbo(vae: nn.Module, x: torch.Tensor, seed: int = 0, batch: int = 1000) -> dict[str, float]:
    """The VAE's ``elbo``, ``recon`` and ``kl`` (nats per image, averaged over ``x``) in eval
    mode, with the reparameterisation noise drawn under a fixed ``seed``.

    It runs inside :func:`torch.random.fork_rng`, so it can be called during training
    (``trainer.fit(..., callbacks=[(k, lambda tr: tr.log_eval(**vae_elbo(tr.vae, x)))])``)
    without changing the run, and two calls on the same model give the same numbers.
    """
    device = next(vae.parameters()).device
    totals = {"elbo": 0.0, "recon": 0.0, "kl": 0.0}
    with evaluating(vae), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for i in range(0, len(x), batch):
            chunk = x[i:i + batch].to(device)
            for k, v in vae.elbo(chunk).items():
                totals[k] += v.item() * len(chunk)
    return {k: v / len(x) for k, v in totals.items()}


@torch.no_grad()
def real_scores(D: nn.Module, x: torch.Tensor, batch: int = 1000) -> dict[str, float]:
    """D's view of the real images ``x``, in eval mode: ``real``, the share it calls real
    (sigmoid(D(x)) > 0.5), and ``p``, the mean of sigmoid(D(x))."""
    with evaluating(D):
        p = torch.cat([torch.sigmoid(D(b)).flatten() for b in x.split(batch)])
    return {"real": (p > 0.5).float().mean().item(), "p": p.mean().item()}


def real_score_gap(train_x: torch.Tensor, held_x: torch.Tensor):
    """A callback for ``trainer.fit(callbacks=[(every, real_score_gap(train_x, held_x))])``:
    logs D's :func:`real_scores` on real digits it trains on (``train_real``, ``train_p``)
    and on held-out ones it never saw (``held_real``, ``held_p``), and ``gap`` = ``train_real``
    - ``held_real``. A gap that grows is D memorising its training digits."""
    def log_gap(trainer) -> None:
        seen = real_scores(trainer.D, train_x.to(trainer.device))
        unseen = real_scores(trainer.D, held_x.to(trainer.device))
        trainer.log_eval(train_real=seen["real"], held_real=unseen["real"],
                         gap=seen["real"] - unseen["real"], train_p=seen["p"], held_p=unseen["p"])

    return log_gap


__all__ = ["activation_stats", "dead_unit_share", "generator_gradient_norm", "layer_grad_norms",
           "probe_generator_gradients", "real_score_gap", "real_scores", "vae_elbo"]
