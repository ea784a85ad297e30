"""The disentanglement model: E^A, E^M and D for M modalities, and its inference methods."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from raysys.models.disentangle.condconv import PerModality
from raysys.models.disentangle.config import DisentangleConfig
from raysys.models.disentangle.fusion import fuse_anatomy
from raysys.models.disentangle.modality_encoder import ModalityEncoder
from raysys.models.disentangle.spade import SPADEDecoder
from raysys.models.disentangle.unet import AnatomyEncoder


class DisentangleOutput(NamedTuple):
    """Everything the training losses need (a tuple, so DDP finds its tensors).

    s: [B, M, C, H, W] anatomies (zeros where unavailable).
    z: [B, M, Dz] modality codes (zeros where unavailable).
    recon: [B, M, M, K, H, W], recon[b, i, j] = D(E^A(x_i), E^M(x_j) | target j): self (i == j)
        and cross (i != j) reconstructions of x_j (zeros where a modality is unavailable).
    z_reencoded: [B, M, M, Dz], E^M_j(recon[b, i, j]) (eq. 1's z~).
    pair_valid: [B, M, M] bool, available[b, i] & available[b, j].
    anatomy_rows: [N, C, H, W], s of the available (b, i) rows in ``row_index`` order.
    row_index: [N, 2] int64 (b, i) of each available row.
    """

    s: torch.Tensor
    z: torch.Tensor
    recon: torch.Tensor
    z_reencoded: torch.Tensor
    pair_valid: torch.Tensor
    anatomy_rows: torch.Tensor
    row_index: torch.Tensor


class DisentangleModel(nn.Module):
    """E^A, E^M (per modality or CondConv-shared) and the SPADE decoder D.

    Images are [B, M, K, H, W] with availability [B, M]; only available images are encoded,
    so BatchNorm statistics never see the zero-filled missing modalities.
    """

    def __init__(self, config: DisentangleConfig, modalities: Sequence[str]):
        super().__init__()
        if len(modalities) < 2:
            raise ValueError(f"DisentangleModel: modalities={list(modalities)!r} needs at least 2 modalities")
        self.config = config
        self.modalities = tuple(modalities)
        m, k, size = len(modalities), config.context, tuple(config.image_size)

        def anatomy_encoder(kind: str) -> AnatomyEncoder:
            return AnatomyEncoder(k, config.unet_widths, config.anatomy_channels, kind, m, config.n_experts,
                                  input_skip=config.full_resolution_skips)

        def modality_encoder(kind: str) -> ModalityEncoder:
            return ModalityEncoder(k, config.modality_widths, size, config.z_dim, kind, m, config.n_experts)

        if config.encoder == "conv":  # Table 1 "Conv": independent encoders per modality
            self.anatomy_encoder: nn.Module = PerModality([anatomy_encoder("conv") for _ in range(m)])
            self.modality_encoder: nn.Module = PerModality([modality_encoder("conv") for _ in range(m)])
        else:  # "CondConv": one encoder pair, kernels routed by the modality
            self.anatomy_encoder = anatomy_encoder("condconv")
            self.modality_encoder = modality_encoder("condconv")
        self.decoder = SPADEDecoder(config.anatomy_channels, config.z_dim, config.decoder_widths, size, k, m,
                                    config.spade_hidden, config.decoder_head, config.n_experts,
                                    anatomy_skip=config.full_resolution_skips)

    # --- training forward ----------------------------------------------------------------
    def forward(self, images: torch.Tensor, available: torch.Tensor) -> DisentangleOutput:
        """Encode every available image, decode every available ordered pair, re-encode.

        images [B, M, K, H, W], available [B, M] bool -> DisentangleOutput (see its fields).
        """
        self._check(images, available)
        b, m = available.shape
        available = available.bool()
        s, z, rows, s_rows = self._encode(images, available)

        pair_valid = available[:, :, None] & available[:, None, :]
        pb, pi, pj = pair_valid.nonzero(as_tuple=True)
        recon_rows = self.decoder(s[pb, pi], z[pb, pj], pj)  # anatomy of i, appearance of j, target j
        z_tilde_rows = self.modality_encoder(recon_rows, pj)  # eq. (1): z~ = E^M_j(D(E^A_i(x_i), E^M_j(x_j)))
        recon = recon_rows.new_zeros(b, m, m, *recon_rows.shape[1:]).index_put((pb, pi, pj), recon_rows)
        z_reencoded = z_tilde_rows.new_zeros(b, m, m, z_tilde_rows.shape[-1]).index_put((pb, pi, pj), z_tilde_rows)
        return DisentangleOutput(s, z, recon, z_reencoded, pair_valid, s_rows, rows)

    def _encode(self, images: torch.Tensor, available: torch.Tensor):
        """Encode the available rows: s [B, M, C, H, W], z [B, M, Dz], rows [N, 2] (b, i), s_rows [N, C, H, W]."""
        b, m = available.shape
        rb, ri = available.nonzero(as_tuple=True)
        x = images[rb, ri]  # [N, K, H, W]
        s_rows = self.anatomy_encoder(x, ri)
        z_rows = self.modality_encoder(x, ri)
        s = s_rows.new_zeros(b, m, *s_rows.shape[1:]).index_put((rb, ri), s_rows)
        z = z_rows.new_zeros(b, m, z_rows.shape[-1]).index_put((rb, ri), z_rows)
        return s, z, torch.stack([rb, ri], dim=1), s_rows

    def _check(self, images: torch.Tensor, available: torch.Tensor) -> None:
        m, k, (h, w) = len(self.modalities), self.config.context, self.config.image_size
        if images.dim() != 5 or tuple(images.shape[1:]) != (m, k, h, w):
            raise ValueError(f"DisentangleModel: images {tuple(images.shape)} must be [B, M={m}, K={k}, H={h}, W={w}]")
        if tuple(available.shape) != tuple(images.shape[:2]):
            raise ValueError(f"DisentangleModel: available {tuple(available.shape)} must be "
                             f"[B, M]={tuple(images.shape[:2])}")

    # --- inference ---------------------------------------------------------------------------
    def modality_index(self, modality: int | str) -> int:
        """Index of a modality given by name or index (ValueError naming it otherwise)."""
        if isinstance(modality, str):
            if modality not in self.modalities:
                raise ValueError(f"unknown modality {modality!r}; known: {list(self.modalities)}")
            return self.modalities.index(modality)
        if not 0 <= int(modality) < len(self.modalities):
            raise ValueError(f"modality index {modality} out of range for {len(self.modalities)} modalities")
        return int(modality)

    @torch.no_grad()
    def anatomy(self, images: torch.Tensor, available: torch.Tensor) -> torch.Tensor:
        """s [B, M, C, H, W] (zeros where unavailable)."""
        self._check(images, available)
        return self._encode(images, available.bool())[0]

    @torch.no_grad()
    def modality(self, images: torch.Tensor, available: torch.Tensor) -> torch.Tensor:
        """z [B, M, Dz] (zeros where unavailable)."""
        self._check(images, available)
        return self._encode(images, available.bool())[1]

    @torch.no_grad()
    def fused_anatomy(self, images: torch.Tensor, available: torch.Tensor) -> torch.Tensor:
        """Concat(Max, Mean, Min) of the available anatomies: [B, 3C, H, W]."""
        return fuse_anatomy(self.anatomy(images, available), available)

    @torch.no_grad()
    def decode(self, s: torch.Tensor, z: torch.Tensor, target: int | str) -> torch.Tensor:
        """D(s, z | target): s [N, C, H, W], z [N, Dz] -> [N, K, H, W]."""
        route = torch.full((s.shape[0],), self.modality_index(target), dtype=torch.long, device=s.device)
        return self.decoder(s, z, route)

    @torch.no_grad()
    def cross_synthesis(self, images: torch.Tensor, available: torch.Tensor, source: int | str,
                        target: int | str) -> torch.Tensor:
        """x~ = D(E^A(x_source), E^M(x_target) | target): [B, K, H, W].

        Both modalities must be available in every sample (the target's image supplies z).
        """
        i, j = self.modality_index(source), self.modality_index(target)
        if not bool(available[:, i].all() and available[:, j].all()):
            raise ValueError(f"cross_synthesis: source {self.modalities[i]!r} and target {self.modalities[j]!r} "
                             "must be available in every sample")
        s, z = self._encode(images, available.bool())[:2]
        return self.decode(s[:, i], z[:, j], j)
