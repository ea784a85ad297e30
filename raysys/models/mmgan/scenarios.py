"""Missing-data scenarios and the curriculum over their difficulty (Sec. III-E).

A scenario is the set of modalities kept as inputs (bool [M]); the others are synthesised. The
2^M - 2 scenarios (none and all missing excluded) are ordered hardest first: by the number of
kept inputs, fewest first (the released code's order). The curriculum opens the easiest ones
first: stage 0 only the M scenarios with one modality missing, the last stage all of them; the
number open grows linearly over the stages (M = 4: 4, 7, 11, 14 scenarios, the released windows
of epochs 0-10, 11-20, 21-30 and 31-60 of 60).
"""

from __future__ import annotations

import torch

from raysys.models.subset_metrics import all_subsets


def missing_scenarios(n_modalities: int, device: torch.device | str | None = None) -> torch.Tensor:
    """bool [S, M], S = 2^M - 2: the kept inputs of every scenario, hardest (one input) first."""
    if n_modalities < 2:
        raise ValueError(f"MM-GAN needs at least 2 modalities to synthesise one from another, got {n_modalities}")
    return all_subsets(n_modalities, device)[:-1]  # all_subsets is ordered by size; drop the full set


def curriculum_stage(progress: float, stages: int, end: float) -> int:
    """0-based stage at training fraction ``progress``: stage k from just after ``k * end / (stages - 1)``."""
    if stages <= 1:
        return 0
    step = end / (stages - 1)
    return sum(progress > k * step + 1e-9 for k in range(1, stages))  # released: epoch > 10, > 20, > 30


def open_scenarios(n_modalities: int, stage: int, stages: int) -> int:
    """How many of the easiest scenarios may be drawn at ``stage`` (of ``stages``)."""
    total = 2**n_modalities - 2
    if stages <= 1:
        return total
    easiest = n_modalities  # one modality missing
    return easiest + round((total - easiest) * min(stage, stages - 1) / (stages - 1))


def sample_inputs(available: torch.Tensor, n_open: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw each sample's kept inputs: uniformly among the ``n_open`` easiest scenarios that are
    strict subsets of what it has (so at least one of its modalities is left to synthesise).

    A sample none of whose open scenarios fits (it lacks modalities) gets the easiest that fit
    (one fewer input than it has); a sample with a single modality keeps it (nothing to learn).

    Args: available bool [B, M]. Returns: bool [B, M], inputs within ``available``.
    """
    if available.dim() != 2 or available.dtype != torch.bool:
        raise ValueError(f"available must be bool [B, M], got {available.dtype} {tuple(available.shape)}")
    scenarios = missing_scenarios(available.shape[1], available.device)  # [S, M]
    within = ~(scenarios[None] & ~available[:, None]).any(dim=2)  # [B, S]: kept inputs all present
    strict = within & (scenarios.sum(1)[None] < available.sum(1, keepdim=True))  # something left to synthesise
    is_open = torch.arange(len(scenarios), device=available.device) >= len(scenarios) - n_open
    weights = strict & is_open[None]
    size = scenarios.sum(1)[None].expand_as(strict)
    largest = torch.where(strict, size, -1).amax(dim=1, keepdim=True)
    weights = torch.where(weights.any(1, keepdim=True), weights, strict & (size == largest))
    nothing = ~weights.any(1)
    weights = weights.float() + nothing[:, None].float()  # placeholder row for multinomial; replaced below
    index = torch.multinomial(weights, 1, generator=generator)[:, 0]
    return torch.where(nothing[:, None], available, scenarios[index])
