"""Metrics of families that synthesise every modality from any input subset (mmhvae, mmgan).

One definition, so both families report the same names over the same cells (the MMHVAE paper's
Table I: every non-empty input subset x every target) and studies, the champion rule and the
evaluation compare like with like.

    psnr/t1-t2_to_flair    PSNR of target flair synthesised from inputs {t1, t2}
    psnr_synthesis         mean over the cells whose target is not an input
    psnr_harmonisation     mean over the cells whose target is an input (self-reconstruction)
    psnr_mean              mean over every cell that is defined
"""

from __future__ import annotations

from typing import Sequence

import torch

AGGREGATE_METRICS = (
    "psnr_mean", "ssim_mean", "psnr_harmonisation", "psnr_synthesis", "ssim_harmonisation", "ssim_synthesis",
)


def all_subsets(n_modalities: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The 2^M - 1 non-empty subsets as bool [S, M], ordered by size then lexicographically
    (singletons first, the full set last), the MMHVAE paper's Table I order."""
    rows = [[bool(code >> j & 1) for j in range(n_modalities)] for code in range(1, 2**n_modalities)]
    rows.sort(key=lambda r: (sum(r), [not v for v in r]))
    return torch.tensor(rows, dtype=torch.bool, device=device)


def subset_name(subset: Sequence[bool], modalities: Sequence[str]) -> str:
    """``t1+t2`` for the subset's modality names joined by '+' (modality order)."""
    return "+".join(name for name, used in zip(modalities, subset) if used)


def metric_name(metric: str, subset: Sequence[bool], target: str, modalities: Sequence[str]) -> str:
    """``psnr/t1-t2_to_flair``: metric of target ``flair`` from inputs t1 and t2 (MLflow-safe)."""
    return f"{metric}/{subset_name(subset, modalities).replace('+', '-')}_to_{target}"


def subset_metric_names(modalities: Sequence[str]) -> list[str]:
    """PSNR and SSIM names for every non-empty input subset (Table I order) and target."""
    return [
        metric_name(metric, subset, target, modalities)
        for subset in all_subsets(len(modalities)).tolist()
        for metric in ("psnr", "ssim")
        for target in modalities
    ]


def subset_scores(
    psnr: torch.Tensor,
    ssim: torch.Tensor,
    subsets: torch.Tensor,
    available: torch.Tensor,
    modalities: Sequence[str],
    harmonisation: bool = True,
) -> dict[str, torch.Tensor]:
    """Per-sample metrics (each [B], NaN where undefined) from the scores of every cell.

    Args:
        psnr, ssim: [S, M, B] score of target j predicted from input subset s for sample b.
        subsets: bool [S, M] (``all_subsets``); available: bool [B, M], what each sample has.
        harmonisation: False for a model that returns its inputs unchanged (nothing to score):
            the cells whose target is an input are then NaN.
    Returns:
        ``AGGREGATE_METRICS`` and every ``metric_name(metric, subset, target)``. A cell is NaN for a
        sample that lacks one of its inputs or its target.
    """
    nan = torch.tensor(float("nan"), device=psnr.device)
    inputs_present = ~(subsets[:, None, :] & ~available[None]).any(dim=2)  # [S, B]
    defined = inputs_present[:, None, :] & available.transpose(0, 1)[None]  # [S, M, B]
    is_input = subsets[:, :, None].expand_as(defined)  # target among the inputs
    if not harmonisation:
        defined = defined & ~is_input
    psnr = torch.where(defined, psnr, nan)
    ssim = torch.where(defined, ssim, nan)

    def mean_over(values: torch.Tensor, select: torch.Tensor | None = None) -> torch.Tensor:
        if select is not None:
            values = torch.where(select, values, nan)
        return values.flatten(0, 1).nanmean(dim=0)

    metrics = {
        "psnr_mean": mean_over(psnr),
        "ssim_mean": mean_over(ssim),
        "psnr_harmonisation": mean_over(psnr, is_input),
        "psnr_synthesis": mean_over(psnr, ~is_input),
        "ssim_harmonisation": mean_over(ssim, is_input),
        "ssim_synthesis": mean_over(ssim, ~is_input),
    }
    for s, subset in enumerate(subsets.tolist()):
        for metric, values in (("psnr", psnr), ("ssim", ssim)):
            for j, target in enumerate(modalities):
                metrics[metric_name(metric, subset, target, modalities)] = values[s, j]
    return metrics
