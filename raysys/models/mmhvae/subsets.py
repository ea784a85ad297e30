"""Input subsets r' of the observed set r: the mixture weights p_alpha(r' | r) (eq. 7-8), the
subsets drawn from them per training step, or the full observed set alone (``posterior="full"``)."""

from __future__ import annotations

from typing import Literal

import torch

from raysys.models.subset_metrics import all_subsets, subset_name  # noqa: F401  (shared with mmgan; re-exported)


def subset_probabilities(
    available: torch.Tensor, scheme: Literal["uniform", "paper"], anchor: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """p_alpha(r' | r) over all non-empty subsets for each sample.

    Args:
        available: bool [B, M], the observed set r of each sample (non-empty).
        scheme: "uniform" over the non-empty subsets of r; "paper": 1/3 the full r, 1/3 the anchor
            modality alone, 1/3 uniform over the non-empty subsets of r without the anchor (the
            paper's "a set of MRI"); components that do not exist for a sample (anchor missing,
            or r = {anchor}) are dropped and the rest renormalised.
    Returns:
        (subsets bool [S, M], probabilities [B, S]).
    """
    if available.dim() != 2 or available.dtype != torch.bool:
        raise ValueError(f"available must be bool [B, M], got {available.dtype} {tuple(available.shape)}")
    if not bool(available.any(dim=1).all()):
        raise ValueError("available: every sample needs at least one observed modality")
    m = available.shape[1]
    subsets = all_subsets(m, available.device)  # [S, M]
    inside = ~(subsets[None] & ~available[:, None]).any(dim=2)  # [B, S]: r' within r
    if scheme == "uniform":
        weights = inside.float()
    elif scheme == "paper":
        if not 0 <= anchor < m:
            raise ValueError(f"anchor modality index {anchor} is out of range for {m} modalities")
        full = (subsets[None] == available[:, None]).all(dim=2)  # [B, S]
        alone = torch.zeros(m, dtype=torch.bool, device=available.device)
        alone[anchor] = True
        anchor_only = (subsets == alone).all(dim=1)[None] & available[:, anchor : anchor + 1]  # [B, S]
        others = inside & ~subsets[None, :, anchor]  # subsets of r \ {anchor}
        parts = [full.float(), anchor_only.float(), others.float()]
        weights = torch.zeros_like(parts[0])
        for part in parts:
            mass = part.sum(dim=1, keepdim=True)
            weights = weights + torch.where(mass > 0, part / mass.clamp(min=1), part)
    else:
        raise ValueError(f"subset scheme must be 'uniform' or 'paper', got {scheme!r}")
    return subsets, weights / weights.sum(dim=1, keepdim=True)


def sample_subsets(
    available: torch.Tensor,
    draws: int,
    scheme: Literal["uniform", "paper"] = "uniform",
    anchor: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw T subsets r' ~ p_alpha(. | r) per sample (Alg. 1 l. 10).

    Args: available bool [B, M] (per-sample observed sets; a batch may mix patterns).
    Returns: bool [T, B, M], each row a non-empty subset of the sample's observed set.
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    subsets, probs = subset_probabilities(available, scheme, anchor)
    index = torch.multinomial(probs, draws, replacement=True, generator=generator)  # [B, T]
    return subsets[index.transpose(0, 1)]


def training_subsets(
    available: torch.Tensor,
    posterior: Literal["mixture", "full"],
    draws: int,
    scheme: Literal["uniform", "paper"] = "uniform",
    anchor: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The input subsets of one training step: bool [T, B, M].

    "mixture": T draws from p_alpha(. | r) (``sample_subsets``). "full": ONE draw, r' = r itself
    (eq. 11 with r' = r: the PoE of every observed input), whatever ``draws`` says.
    """
    if posterior == "mixture":
        return sample_subsets(available, draws, scheme, anchor, generator)
    if posterior == "full":
        if not bool(available.any(dim=1).all()):
            raise ValueError("available: every sample needs at least one observed modality")
        return available.bool()[None]
    raise ValueError(f"posterior must be 'mixture' or 'full', got {posterior!r}")
