"""The learners' shared building blocks: one MLP, one critic ensemble layer, one polyak update.

Twin critics (TD3, SAC) are one network whose layers hold both critics' weights
stacked, evaluated with one batched matmul per layer: on a CPU the per-call
overhead of small matmuls is a large part of an update, so halving the calls
buys wall-clock.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers applied to an (n, B, in) input in one ``baddbmm``."""

    def __init__(self, n: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default init, per member
        self.weight = nn.Parameter(
            torch.empty(n, in_features, out_features).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(n, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


def mlp(in_dim: int, out_dim: int, hidden: Sequence[int], *, ensemble: int = 0) -> nn.Sequential:
    """ReLU MLP ``in_dim -> hidden... -> out_dim``; with ``ensemble=n``, ``n`` of them stacked.

    A stacked MLP takes (n, B, in_dim) and returns (n, B, out_dim).
    """
    sizes = [in_dim, *hidden, out_dim]
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(
            EnsembleLinear(ensemble, fan_in, fan_out) if ensemble else nn.Linear(fan_in, fan_out)
        )
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@torch.no_grad()
def polyak_update(target: Iterable[Tensor], source: Iterable[Tensor], tau: float) -> None:
    """``target <- (1 - tau) * target + tau * source``, in place, for every pair of tensors."""
    targets, sources = list(target), list(source)
    if len(targets) != len(sources):
        raise ValueError(f"polyak_update: {len(targets)} target and {len(sources)} source tensors")
    torch._foreach_lerp_(targets, sources, tau)


def linear_layers(net: nn.Sequential) -> list[nn.Linear]:
    """The ``nn.Linear`` layers of an MLP built by :func:`mlp`, in order."""
    return [m for m in net if isinstance(m, nn.Linear)]
