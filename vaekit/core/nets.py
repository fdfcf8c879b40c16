"""Building blocks: MLPs and the conv stacks of the image VAEs. No probability here, only functions."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "softplus": nn.Softplus,
}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLP(nn.Sequential):
    """Linear layers with an activation between them (none after the last)."""

    def __init__(self, sizes: Sequence[int], act: str = "tanh", final_act: bool = False) -> None:
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2 or final_act:
                layers.append(activation(act))
        super().__init__(*layers)


def upsample_start(size: int, n_layers: int) -> int:
    """Smallest side that n doublings take to at least ``size`` (the decoder then crops)."""
    return math.ceil(size / 2**n_layers)


class ConvEncoder(nn.Module):
    """Conv stack (k4 s2 p1 halves H and W) then one hidden fc layer: Higgins et al. / Burgess et al.'s
    64x64 encoder is channels (32, 32, 64, 64) with fc 256; on 28x28 two or three layers fit."""

    def __init__(
        self, in_shape: Sequence[int], channels: Sequence[int], fc: int, out: int, act: str = "relu"
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        layers: list[nn.Module] = []
        for ch in channels:
            layers += [nn.Conv2d(c, ch, 4, 2, 1), activation(act)]
            c = ch
        self.conv = nn.Sequential(*layers)
        with torch.no_grad():  # the flattened size for any input shape, without a formula per padding
            self.flat = self.conv(torch.zeros(1, *in_shape)).numel()
        self.fc = nn.Sequential(nn.Linear(self.flat, fc), activation(act), nn.Linear(fc, out))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x).flatten(1))


class ConvDecoder(nn.Module):
    """Mirror of ConvEncoder: fc to a small feature map, then transposed convs that double H and W.

    Output spatial size is cropped to ``out_shape`` so sizes that are not powers of two (28) work."""

    def __init__(
        self, in_dim: int, out_shape: Sequence[int], channels: Sequence[int], fc: int, act: str = "relu"
    ) -> None:
        super().__init__()
        c_out, h, w = out_shape
        self.out_hw = (h, w)
        chans = list(channels)[::-1]
        self.start = (chans[0], upsample_start(h, len(chans)), upsample_start(w, len(chans)))
        n_start = self.start[0] * self.start[1] * self.start[2]
        self.fc = nn.Sequential(nn.Linear(in_dim, fc), activation(act), nn.Linear(fc, n_start), activation(act))
        layers: list[nn.Module] = []
        for i, ch in enumerate(chans):
            nxt = chans[i + 1] if i + 1 < len(chans) else c_out
            layers.append(nn.ConvTranspose2d(ch, nxt, 4, 2, 1))
            if i + 1 < len(chans):
                layers.append(activation(act))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        y = self.deconv(self.fc(z).view(-1, *self.start))
        h, w = self.out_hw
        return y[..., :h, :w]


def fold(fn: Callable[[Tensor], Tensor], x: Tensor, event_dims: int) -> Tensor:
    """Apply ``fn`` (a conv, batch-norm or recurrent layer that takes one batch dimension) to ``x`` with any
    leading sample dimensions: [k, B, *event] is folded to [k * B, *event] and the result unfolded to
    [k, B, *out]. ``event_dims`` counts the trailing dimensions ``fn`` sees per example."""
    lead = x.shape[: x.dim() - event_dims]
    out = fn(x.reshape(-1, *x.shape[x.dim() - event_dims :]))
    return out.reshape(*lead, *out.shape[1:])


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
