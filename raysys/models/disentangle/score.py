"""A per-sample disentanglement score (logged as ``val/disentanglement``), pure PyTorch.

The same geometry as eq. (2), turned into a bounded number instead of a hinge: for a sample p
with available modalities A_p and a reference set Q_p of samples of OTHER subjects,

    anatomy invariance   = mean_{i != j in A_p} cos(f(s)[p,i], f(s)[p,j])
                         - mean_{i in A_p, q in Q_p, i available in q} cos(f(s)[p,i], f(s)[q,i])
    modality consistency = mean_{i in A_p, q in Q_p, i available in q} cos(z[p,i], z[q,i])
                         - mean_{i != j in A_p} cos(z[p,i], z[p,j])
    score                = (anatomy invariance + modality consistency) / 2        in [-2, 2]

Higher = better disentangled: the anatomy of one slice is the same whatever modality it was
encoded from and differs from other subjects' anatomies, and z is the same for a modality
across subjects and differs between modalities. 0 = no separation (e.g. an encoder whose
codes ignore the input). NaN where undefined: fewer than 2 available modalities, or no
other-subject sample sharing an available modality. Zero vectors have cosine 0 with anything.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from .losses import check_embedding_shapes


def disentanglement_score(fs: torch.Tensor, z: torch.Tensor, subject: torch.Tensor, available: torch.Tensor,
                          reference: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                          ) -> torch.Tensor:
    """Per-sample disentanglement score [B] in [-2, 2] (module docstring), NaN where undefined.

    Args:
        fs: [B, M, Ds] pooled, flattened anatomies f(s) (``losses.pooled_anatomy``).
        z: [B, M, Dz] modality codes.
        subject: [B] subject ids. available: [B, M] bool.
        reference: optional extra samples ``(fs [R, M, Ds], z [R, M, Dz], subject [R], available [R, M])``
            compared against besides the batch itself (e.g. earlier validation batches); in both,
            only samples of a subject other than p's are used.
    Returns:
        float32 [B].
    """
    check_embedding_shapes("disentanglement_score", fs, z, subject, available)
    available = available.bool()
    fs_unit, z_unit = F.normalize(fs.float(), dim=-1), F.normalize(z.float(), dim=-1)
    q_fs, q_z, q_subject, q_available = fs_unit, z_unit, subject, available
    if reference is not None:
        r_fs, r_z, r_subject, r_available = reference
        if r_fs.shape[1:] != fs.shape[1:] or r_z.shape[1:] != z.shape[1:]:
            raise ValueError(f"disentanglement_score: reference fs {tuple(r_fs.shape)} / z {tuple(r_z.shape)} "
                             f"must be [R, {fs.shape[1]}, {fs.shape[2]}] / [R, {z.shape[1]}, {z.shape[2]}]")
        device = fs.device
        q_fs = torch.cat([fs_unit, F.normalize(r_fs.to(device).float(), dim=-1)])
        q_z = torch.cat([z_unit, F.normalize(r_z.to(device).float(), dim=-1)])
        q_subject = torch.cat([subject, r_subject.to(device).to(subject.dtype)])
        q_available = torch.cat([available, r_available.to(device).bool()])

    m = fs.shape[1]
    off_diagonal = ~torch.eye(m, dtype=torch.bool, device=fs.device)
    within_valid = (available[:, :, None] & available[:, None, :] & off_diagonal).float()  # [p, i, j]
    across_valid = ((subject[:, None] != q_subject[None, :])[:, :, None]
                    & available[:, None, :] & q_available[None, :, :]).float()  # [p, q, i]
    n_within, n_across = within_valid.sum((1, 2)), across_valid.sum((1, 2))

    def mean(values: torch.Tensor, valid: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(1, values.dim()))
        return (values * valid).sum(dims) / count.clamp(min=1.0)

    within_s = mean(torch.einsum("pid,pjd->pij", fs_unit, fs_unit), within_valid, n_within)
    across_s = mean(torch.einsum("pid,qid->pqi", fs_unit, q_fs), across_valid, n_across)
    within_z = mean(torch.einsum("pid,pjd->pij", z_unit, z_unit), within_valid, n_within)
    across_z = mean(torch.einsum("pid,qid->pqi", z_unit, q_z), across_valid, n_across)
    score = ((within_s - across_s) + (across_z - within_z)) / 2
    defined = (n_within > 0) & (n_across > 0)
    return torch.where(defined, score, torch.full_like(score, float("nan")))


class ReferenceBank:
    """Other-subject references for ``disentanglement_score`` across the batches of one validation
    pass (the validation loader is ordered by subject, so a batch rarely holds two subjects).

    Keeps the last ``per_subject`` samples of each of the last ``max_subjects`` subjects seen
    (detached fs, z, subject, available rows). ``DisentangleFamily`` clears it when training resumes.
    """

    def __init__(self, per_subject: int = 4, max_subjects: int = 32):
        self.per_subject, self.max_subjects = per_subject, max_subjects
        self._rows: dict[int, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._rows.values())

    def clear(self) -> None:
        self._rows.clear()

    def add(self, fs: torch.Tensor, z: torch.Tensor, subject: torch.Tensor, available: torch.Tensor) -> None:
        for p, sid in enumerate(subject.tolist()):
            rows = self._rows.pop(int(sid), [])  # re-insert: most recently seen subjects last
            rows.append((fs[p].detach().float(), z[p].detach().float(), available[p].detach().bool()))
            self._rows[int(sid)] = rows[-self.per_subject:]
        while len(self._rows) > self.max_subjects:
            self._rows.pop(next(iter(self._rows)))

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(fs [R, M, Ds], z [R, M, Dz], subject [R], available [R, M]) or None when empty."""
        items = [(sid, row) for sid, rows in self._rows.items() for row in rows]
        if not items:
            return None
        fs = torch.stack([row[0] for _, row in items])
        return (fs, torch.stack([row[1] for _, row in items]),
                torch.tensor([sid for sid, _ in items], dtype=torch.long, device=fs.device),
                torch.stack([row[2] for _, row in items]))
