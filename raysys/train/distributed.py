"""Averaging metrics over every sample of every rank (sum and count all-reduced, NaN ignored).

Works without an initialised process group (one rank, or Train local mode).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Mapping

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class MeanAccumulator:
    """Running NaN-aware sums and counts per metric name on one rank.

    ``add`` takes per-sample tensors [B] (NaN = undefined for that sample) or Python floats
    (one value with weight 1); ``reduce`` returns the mean over all ranks' samples per name
    (NaN for a name with no defined value anywhere).
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, float] = defaultdict(float)

    def add(self, values: Mapping[str, torch.Tensor | float]) -> None:
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                flat = value.detach().float().reshape(-1)
                finite = ~torch.isnan(flat)
                self.sums[name] += float(flat[finite].sum())
                self.counts[name] += float(finite.sum())
            else:
                value = float(value)
                if not math.isnan(value):
                    self.sums[name] += value
                    self.counts[name] += 1.0
                else:
                    self.counts.setdefault(name, 0.0)
                    self.sums.setdefault(name, 0.0)

    def reduce(self, names: Iterable[str] = (), device: torch.device | str = "cpu") -> dict[str, float]:
        """Means across ranks of every name seen on any rank (plus ``names``)."""
        keys = set(self.sums) | set(names)
        if is_distributed():
            # Ranks may have seen different names (e.g. a loss that only some batches produce).
            gathered: list[list[str]] = [[] for _ in range(dist.get_world_size())]
            dist.all_gather_object(gathered, sorted(keys))
            keys = set().union(*map(set, gathered))
        ordered = sorted(keys)
        if not ordered:
            return {}
        totals = torch.tensor(
            [[self.sums.get(k, 0.0) for k in ordered], [self.counts.get(k, 0.0) for k in ordered]],
            dtype=torch.float64,
            device=device,
        )
        if is_distributed():
            dist.all_reduce(totals, op=dist.ReduceOp.SUM)
        sums, counts = totals.cpu().tolist()
        return {k: (s / c if c > 0 else float("nan")) for k, s, c in zip(ordered, sums, counts)}

