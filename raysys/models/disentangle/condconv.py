"""Modality-routed convolutions: CondConv (one shared network for all modalities) and helpers.

A *route* is a per-row integer (the modality index) that selects which weights a row uses.
Rows of a batch are grouped by route and each group is convolved in one batched call, so the
cost is one conv per distinct route present (<= M), never one per sample.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def apply_by_route(route: torch.Tensor, fn: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Run ``fn(r, rows)`` once per distinct route ``r`` and reassemble rows in input order.

    Args:
        route: [N] int64 route of every row.
        fn: maps (route value, [n_r] row indices) to a tensor [n_r, ...] for those rows.
    Returns:
        [N, ...] the per-route outputs, rows in the original order.
    """
    routes = torch.unique(route).tolist()
    if len(routes) == 1:
        return fn(int(routes[0]), torch.arange(route.shape[0], device=route.device))
    outputs, order = [], []
    for r in routes:
        rows = (route == r).nonzero(as_tuple=True)[0]
        outputs.append(fn(int(r), rows))
        order.append(rows)
    perm = torch.cat(order)
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.shape[0], device=perm.device)
    return torch.cat(outputs).index_select(0, inverse)


class RoutedLayer(nn.Module):
    """Marker base class: ``forward(x, route)`` instead of ``forward(x)``."""


class PlainConv(RoutedLayer):
    """An ordinary ``nn.Conv2d`` that ignores the route (the "conv" encoders)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor, route: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(x)


class CondConv2d(RoutedLayer):
    """Conditional convolution: kernel^i = sum_k beta_k^i W_k, beta^i = sigmoid(logits[i]).

    Paper sec. 3.1 (CondConv(x; i)); routing logits are learned per modality (an embedding, i.e.
    a linear layer on the one-hot modality) instead of the released code's
    Linear(1 -> n)(index + 1) on a scalar index. One bias shared by the experts (as the code).
    The kernels of all routes are built once per call; rows are convolved per route, batched.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, n_routes: int,
                 n_experts: int = 3, stride: int = 1, padding: int = 0):
        super().__init__()
        if n_routes < 1:
            raise ValueError(f"CondConv2d: n_routes={n_routes} must be >= 1")
        if n_experts < 1:
            raise ValueError(f"CondConv2d: n_experts={n_experts} must be >= 1")
        self.stride, self.padding = stride, padding
        self.experts = nn.Parameter(torch.empty(n_experts, out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.routing_logits = nn.Parameter(torch.zeros(n_routes, n_experts))
        for expert in self.experts:  # each expert initialised like a plain conv
            nn.init.kaiming_uniform_(expert, a=math.sqrt(5))
        fan_in = in_channels * kernel_size * kernel_size
        nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def kernels(self) -> torch.Tensor:
        """[R, C_out, C_in, k, k]: the mixed kernel of every route."""
        beta = torch.sigmoid(self.routing_logits)  # [R, n_experts]
        return torch.einsum("rn,noikl->roikl", beta, self.experts)

    def forward(self, x: torch.Tensor, route: torch.Tensor) -> torch.Tensor:
        """x [N, C_in, H, W], route [N] -> [N, C_out, H', W']."""
        if route is None or route.shape[0] != x.shape[0]:
            raise ValueError("CondConv2d: route must be an [N] tensor matching the batch of x")
        kernels = self.kernels()
        return apply_by_route(
            route, lambda r, rows: F.conv2d(x.index_select(0, rows), kernels[r], self.bias, self.stride, self.padding)
        )


def make_conv(kind: str, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
              n_routes: int = 1, n_experts: int = 3) -> RoutedLayer:
    """A routed conv layer: ``kind`` "conv" -> PlainConv, "condconv" -> CondConv2d."""
    if kind == "conv":
        return PlainConv(in_channels, out_channels, kernel_size, stride, padding)
    if kind == "condconv":
        return CondConv2d(in_channels, out_channels, kernel_size, n_routes, n_experts, stride, padding)
    raise ValueError(f"make_conv: kind={kind!r} must be 'conv' or 'condconv'")


class RoutedSequential(nn.Module):
    """Sequential container passing the route to routed layers only."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, route: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, route) if isinstance(layer, (RoutedLayer, RoutedSequential)) else layer(x)
        return x


class PerModality(nn.Module):
    """One independent network per modality; rows are dispatched to their modality's network.

    Used for the "conv" encoders (Table 1's Conv rows): each member is called with
    ``(rows, route)`` and owns all its weights, BatchNorm statistics included.
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor, route: torch.Tensor) -> torch.Tensor:
        def run(r: int, rows: torch.Tensor) -> torch.Tensor:
            return self.members[r](x.index_select(0, rows), route.index_select(0, rows))

        return apply_by_route(route, run)
