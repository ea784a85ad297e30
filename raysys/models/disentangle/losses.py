"""Loss terms of the disentanglement model, each masked by modality availability.

All reductions are "mean over the valid set", and an empty valid set gives an exact zero that
still depends on the inputs (so ``backward`` works and DDP sees every parameter used).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over ``valid`` entries (same shape); 0 with a gradient path if none."""
    valid = valid.to(values.dtype)
    return (values * valid).sum() / valid.sum().clamp(min=1.0)


def pair_l1(recon: torch.Tensor, images: torch.Tensor, pair_valid: torch.Tensor, cross: bool,
            pixel_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Self-recon (``cross=False``, i == j) or cross-recon (``cross=True``, i != j) L1.

    Paper sec. 3.1, L_self-recon and L_cross-recon (lambda_c applied by the caller).
    Args:
        recon: [B, M, M, K, H, W], recon[b, i, j] = D(E^A(x_i), E^M(x_j) | target j).
        images: [B, M, K, H, W] inputs (the targets x_j).
        pair_valid: [B, M, M] bool, both modalities available.
        pixel_weight: optional [B, H, W] non-negative weights; the per-image error is then the
            weighted mean sum(w |e|) / sum(w) over pixels (all K slices). None = plain mean.
    Returns:
        scalar: mean over valid pairs of the per-image (weighted) mean absolute error.
    """
    m = images.shape[1]
    eye = torch.eye(m, dtype=torch.bool, device=images.device)
    valid = pair_valid & (~eye if cross else eye)
    error = (recon.float() - images.float().unsqueeze(1)).abs()  # [B, M, M, K, H, W]
    if pixel_weight is None:
        error = error.mean(dim=(-3, -2, -1))  # [B, M, M]
    else:
        w = pixel_weight.float()[:, None, None, None]  # [B, 1, 1, 1, H, W]
        error = (error * w).mean(dim=-3).sum(dim=(-2, -1)) / w.sum(dim=(-2, -1)).squeeze(-1).clamp(min=1e-6)
    return masked_mean(error, valid)


def latent_consistency(z_reencoded: torch.Tensor, z: torch.Tensor, pair_valid: torch.Tensor) -> torch.Tensor:
    """Eq. (1): mean over all valid (i, j), i == j included, of || z~ - z_target ||_1 / z_dim.

    Args:
        z_reencoded: [B, M, M, Dz], z_reencoded[b, i, j] = E^M_j(recon[b, i, j]).
        z: [B, M, Dz] codes of the real images (z_reencoded[b, i, j] is compared with z[b, j]).
        pair_valid: [B, M, M] bool.
    """
    error = (z_reencoded.float() - z.float().unsqueeze(1)).abs().mean(dim=-1)  # [B, M, M]
    return masked_mean(error, pair_valid)



def check_embedding_shapes(caller: str, fs: torch.Tensor, z: torch.Tensor, subject: torch.Tensor,
                           available: torch.Tensor) -> None:
    """Raise naming ``caller`` unless fs [B, M, Ds], z [B, M, Dz], subject [B], available [B, M]."""
    if fs.dim() != 3 or z.dim() != 3 or fs.shape[:2] != z.shape[:2] or available.shape != fs.shape[:2]:
        raise ValueError(
            f"{caller}: fs {tuple(fs.shape)}, z {tuple(z.shape)}, available {tuple(available.shape)} "
            "must be [B, M, Ds], [B, M, Dz], [B, M]"
        )
    if subject.shape != fs.shape[:1]:
        raise ValueError(f"{caller}: subject {tuple(subject.shape)} must be [B]={fs.shape[0]}")

def similarity_margin_loss(fs: torch.Tensor, z: torch.Tensor, subject: torch.Tensor, available: torch.Tensor,
                           alpha_s: float, alpha_z: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (2), unweighted: the margin losses on f(s) and on z (lambda_s, lambda_z by the caller).

    Over every (p, q, i, j) with subject[p] != subject[q], i != j and available[p, i],
    available[p, j], available[q, i]:
        loss_s term = max(0, alpha_s - cos(fs[p,i], fs[p,j]) + cos(fs[p,i], fs[q,i]))
        loss_z term = max(0, alpha_z - cos(z[p,i], z[q,i]) + cos(z[p,i], z[p,j]))
    each loss the mean of its terms over that set; 0 (with a gradient path) if the set is empty.

    Args:
        fs: [B, M, Ds] pooled, flattened anatomy f(s). z: [B, M, Dz]. subject: [B] ints.
        available: [B, M] bool.
    Returns:
        (loss_s, loss_z) scalars.
    """
    check_embedding_shapes("similarity_margin_loss", fs, z, subject, available)
    available = available.bool()
    m = fs.shape[1]
    valid = _margin_valid_set(subject, available, m)  # [B(p), B(q), M(i), M(j)]

    fs_unit = F.normalize(fs.float(), dim=-1)
    within_s = torch.einsum("pid,pjd->pij", fs_unit, fs_unit)  # cos(fs[p,i], fs[p,j])
    across_s = torch.einsum("pid,qid->pqi", fs_unit, fs_unit)  # cos(fs[p,i], fs[q,i])
    terms_s = F.relu(alpha_s - within_s[:, None, :, :] + across_s[:, :, :, None])

    z_unit = F.normalize(z.float(), dim=-1)
    within_z = torch.einsum("pid,pjd->pij", z_unit, z_unit)  # cos(z[p,i], z[p,j])
    across_z = torch.einsum("pid,qid->pqi", z_unit, z_unit)  # cos(z[p,i], z[q,i])
    terms_z = F.relu(alpha_z - across_z[:, :, :, None] + within_z[:, None, :, :])
    return masked_mean(terms_s, valid), masked_mean(terms_z, valid)


def _margin_valid_set(subject: torch.Tensor, available: torch.Tensor, m: int) -> torch.Tensor:
    """[B, B, M, M] bool: subject[p] != subject[q], i != j, available[p,i], available[p,j], available[q,i]."""
    different = subject[:, None] != subject[None, :]  # [p, q]
    off_diagonal = ~torch.eye(m, dtype=torch.bool, device=available.device)  # [i, j]
    pair_p = available[:, :, None] & available[:, None, :]  # [p, i, j]
    return different[:, :, None, None] & off_diagonal & pair_p[:, None, :, :] & available[None, :, :, None]


def pooled_anatomy(s: torch.Tensor, pool: int) -> torch.Tensor:
    """f(s) of eq. (2): max-pool ``pool`` x ``pool`` then flatten. s [B, M, C, H, W] -> [B, M, D]."""
    b, m = s.shape[:2]
    return F.max_pool2d(s.flatten(0, 1), pool).reshape(b, m, -1)


def confusion_loss(logits: torch.Tensor) -> torch.Tensor:
    """+Adv encoder term: cross-entropy of the discriminator's prediction against the UNIFORM
    distribution over modalities. Minimal (log M) when the discriminator cannot tell the source;
    unlike maximising the discriminator's error, it does not reward flipping to a wrong modality.
    logits [N, M] -> scalar (0 with a gradient path when N == 0)."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return -torch.log_softmax(logits.float(), dim=-1).mean()
