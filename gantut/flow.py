r"""Flow matching: what replaced GANs for image generation, in its simplest form.

A *velocity* network :math:`v_\theta(x, t)` learns to carry noise to data along straight
lines (conditional flow matching, Lipman et al. 2023; rectified flow, Liu et al. 2023):

- draw a data point :math:`x_1`, noise :math:`x_0 \sim N(0, I)` and a time :math:`t \sim U(0, 1)`;
- the point :math:`x_t = (1 - t)\,x_0 + t\,x_1` moves with velocity :math:`x_1 - x_0`;
- regress :math:`v_\theta(x_t, t)` on that velocity (a mean squared error).

To sample, start from noise at :math:`t = 0` and follow :math:`dx/dt = v_\theta(x, t)` to
:math:`t = 1` with a few Euler steps (:func:`euler_sample`). There is no discriminator and no
game: one regression loss, which falls as the model improves. Notebook 05.5 writes both
functions out and races this model against the GAN.

The networks: :class:`VelocityMLP` for 2-D points, :class:`UNet` (small, for a CPU) for
28 x 28 images. Both take ``(x, t)`` with ``t`` a batch of times in [0, 1].
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn.functional import avg_pool2d, interpolate, silu

from .train import Trainer, update_ema
from .utils import evaluating


def flow_matching_loss(v: nn.Module, x1: torch.Tensor) -> torch.Tensor:
    """Conditional flow matching: the squared error of ``v(x_t, t)`` against ``x1 - x0``."""
    x0 = torch.randn_like(x1)                           # noise, the start of each path
    t = torch.rand(len(x1), device=x1.device)           # a time per example
    tt = t.view(-1, *[1] * (x1.dim() - 1))              # broadcast over the data's dimensions
    xt = (1 - tt) * x0 + tt * x1                        # a point on the straight path
    return ((v(xt, t) - (x1 - x0)) ** 2).mean()         # whose velocity is x1 - x0


@torch.no_grad()
def euler_sample(v: nn.Module, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """Follow ``dx/dt = v(x, t)`` from the noise ``x0`` at t = 0 to t = 1 in ``steps`` Euler steps."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    x = x0
    for i in range(steps):
        t = torch.full((len(x),), i / steps, device=x.device)
        x = x + v(x, t) / steps                         # x(t + dt) = x(t) + v(x, t) dt
    return x


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``dim`` sinusoidal features of times ``t`` in [0, 1] (as DDPM embeds its time steps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device) / half)
    angles = 1000.0 * t[:, None] * freqs[None]          # N x half
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # N x dim


class VelocityMLP(nn.Module):
    """``v(x, t)`` for points in R^dim: an MLP on ``x`` joined to features of ``t``."""

    def __init__(self, dim: int = 2, hidden=(128, 128, 128), t_dim: int = 32):
        super().__init__()
        self.data_shape, self.t_dim = (dim,), t_dim
        sizes = [dim + t_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], dim))

    def forward(self, x, t):
        return self.net(torch.cat([x, time_embedding(t, self.t_dim)], dim=1))  # N x dim


class ResBlock(nn.Module):
    """Two 3 x 3 convolutions with the time added in between, and a skip connection."""

    def __init__(self, c_in: int, c_out: int, t_dim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(t_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, temb):
        h = self.conv1(silu(self.norm1(x)))              # N x c_out x H x W
        h = h + self.time(temb)[:, :, None, None]         # the time, one number per channel
        h = self.conv2(silu(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """``v(x, t)`` for 28 x 28 images: a small U-Net (Ronneberger et al. 2015, the network of
    DDPM), sized for a CPU: most of its work at 14 x 14 and 7 x 7, little at full size."""

    def __init__(self, ch: int = 16, t_dim: int = 64):
        super().__init__()
        self.data_shape, self.t_dim = (1, 28, 28), t_dim
        self.time = nn.Sequential(nn.Linear(t_dim, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.inc = nn.Conv2d(1, ch, 3, padding=1)
        self.down1 = ResBlock(ch, 2 * ch, t_dim)
        self.down2 = ResBlock(2 * ch, 2 * ch, t_dim)
        self.mid = ResBlock(2 * ch, 2 * ch, t_dim)
        self.up2 = ResBlock(4 * ch, 2 * ch, t_dim)
        self.up1 = ResBlock(4 * ch, ch, t_dim)
        self.out = nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, 1, 3, padding=1))

    def forward(self, x, t):
        temb = self.time(time_embedding(t, self.t_dim))  # N x t_dim
        h0 = self.inc(x)                                  # N x ch x 28 x 28
        h1 = self.down1(avg_pool2d(h0, 2), temb)          # N x 2ch x 14 x 14
        h2 = self.down2(avg_pool2d(h1, 2), temb)          # N x 2ch x 7 x 7
        h = self.mid(h2, temb)                            # N x 2ch x 7 x 7
        h = self.up2(torch.cat([h, h2], 1), temb)         # N x 2ch x 7 x 7
        h = interpolate(h, scale_factor=2.0)              # N x 2ch x 14 x 14
        h = self.up1(torch.cat([h, h1], 1), temb)         # N x ch x 14 x 14
        h = interpolate(h, scale_factor=2.0) + h0         # N x ch x 28 x 28
        return self.out(h)                                # N x 1 x 28 x 28


class FlowTrainer(Trainer):
    """Train a velocity network by flow matching with Adam; sample with Euler steps.

    Args:
        net: a :class:`VelocityMLP` or :class:`UNet` (anything with ``data_shape`` and
            ``forward(x, t)``).
        lr, batch_size: Adam's learning rate and the batch size.
        ema: decay of an exponential moving average of the network's weights (as for the
            GANs' generators), or None; :meth:`sample` then uses the average.
        sample_steps: Euler steps of :meth:`sample` (set the attribute to change it).
    """

    def __init__(self, net: nn.Module, *, lr: float = 1e-3, batch_size: int = 64,
                 ema: float | None = None, sample_steps: int = 16, device="auto"):
        super().__init__(device, batch_size)
        self.net = net.to(self.device)
        self.ema, self.sample_steps = ema, sample_steps
        self.net_ema = copy.deepcopy(self.net).eval().requires_grad_(False) if ema else None
        self.modules = {"net": self.net}
        if self.net_ema is not None:
            self.modules["net_ema"] = self.net_ema
        self.optimizers = {"net": torch.optim.Adam(self.net.parameters(), lr=lr)}
        self.config = {"lr": lr, "batch_size": batch_size, "ema": ema,
                       "model": type(net).__name__}

    def train_step(self, x1) -> dict[str, float]:
        loss = flow_matching_loss(self.ddp.get("net", self.net), x1)
        opt = self.optimizers["net"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if self.net_ema is not None:
            update_ema(self.net_ema, self.net, self.step, self.ema)
        return {"loss": loss.item()}

    def _use_data(self, x, y) -> None:
        super()._use_data(x, None)  # unconditional: labels are not used

    @property
    def generator(self) -> nn.Module:
        """The network that samples: the EMA copy when there is one."""
        return self.net_ema if self.net_ema is not None else self.net

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return self.net.data_shape

    @torch.no_grad()
    def sample(self, n_or_z: int | torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """``n`` samples (or the images of the noise ``z``) after ``steps`` Euler steps
        (default :attr:`sample_steps`)."""
        z = (torch.randn(n_or_z, *self.noise_shape, device=self.device)
             if isinstance(n_or_z, int) else n_or_z.to(self.device))
        with evaluating(self.generator):  # 256 at a time: on a CPU, 1,000 at once is ~2x slower
            return torch.cat([euler_sample(self.generator, part, steps or self.sample_steps)
                              for part in z.split(256)])
