"""Memory of real images per modality (the paper's m_j, Alg. 1 l. 30-32).

When a modality is missing from a sample, its discriminator still needs a "real" example: it
takes one remembered from an earlier batch. (The released code filled this pool but never
scored it; ours does.) A plain ring buffer per modality, allocated on the first push's device.
"""

from __future__ import annotations

import torch


class RealImageMemory:
    """Ring buffers of ``capacity`` real images [H, W] per modality (model space)."""

    def __init__(self, n_modalities: int, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.n_modalities = n_modalities
        self.capacity = capacity
        self.buffers: torch.Tensor | None = None  # [M, capacity, H, W]
        self.filled = [0] * n_modalities
        self.cursor = [0] * n_modalities

    def push(self, images: torch.Tensor, available: torch.Tensor) -> None:
        """Remember the available images of a batch: images [B, M, H, W], available bool [B, M]."""
        images = images.detach()
        if self.buffers is None or self.buffers.shape[-2:] != images.shape[-2:] or self.buffers.device != images.device:
            self.buffers = images.new_zeros(self.n_modalities, self.capacity, *images.shape[-2:])
            self.filled = [0] * self.n_modalities
            self.cursor = [0] * self.n_modalities
        present = available.bool().cpu()
        for j in range(self.n_modalities):
            rows = present[:, j].nonzero().flatten().tolist()[-self.capacity :]
            if not rows:
                continue
            slots = [(self.cursor[j] + i) % self.capacity for i in range(len(rows))]
            self.buffers[j, slots] = images[rows, j]
            self.cursor[j] = (self.cursor[j] + len(rows)) % self.capacity
            self.filled[j] = min(self.capacity, self.filled[j] + len(rows))

    def fill_missing(self, images: torch.Tensor, available: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Replace missing images by random remembered ones of the same modality.

        Args: images [B, M, H, W], available bool [B, M].
        Returns: (images [B, M, H, W], valid bool [B, M]); valid is False where a modality is
        missing and nothing of it has been remembered yet.
        """
        available = available.bool()
        out = images.clone()
        valid = available.clone()
        if self.buffers is None:
            return out, valid
        b = images.shape[0]
        for j in range(self.n_modalities):
            if self.filled[j] == 0:
                continue
            pick = torch.randint(self.filled[j], (b,), device=images.device)
            out[:, j] = torch.where(available[:, j, None, None], images[:, j], self.buffers[j, pick])
            valid[:, j] = True
        return out, valid
