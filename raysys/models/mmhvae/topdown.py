"""The shared top-down path: conditional priors, residual posteriors fused by PoE, sampling.

Written once and used by training (posterior), inference (posterior at a temperature) and
generation (prior only, ``evidence=None``). Group g (1 = finest) lives at spatial index k = g - 1;
the coarsest group is the vector z_L.

State carried down the ladder: s_L = bottleneck_up(z_L) and, at spatial index k,
    feat_k = DecoderCell(UpsampleConv(s_{k+1}))                 (deterministic, depends on z_>k+1)
    p(z_g | z_>g) = N(prior_k(feat_k))                          (eq. 5, 1x1 conv)
    h_j(z_g | x_j, z_>g) = N(posterior_k([feat_k, skip_j,k]))   (eq. 12, shared across modalities)
    s_k = feat_k + z_projection_k(z_g)   (a group without latent: s_k = feat_k)
so every prior is conditioned on all coarser latents, as eq. 5 writes p(z_l | z_>l).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from raysys.models.mmhvae.blocks import DecoderCell, PosteriorHeadCell, UpsampleConv, maybe_weight_norm, soft_clamp
from raysys.models.mmhvae.config import MMHVAEConfig
from raysys.models.mmhvae.distributions import gaussian_kl, gaussian_log_prob, reparameterised_sample
from raysys.models.mmhvae.poe import fuse_experts


@dataclasses.dataclass
class Evidence:
    """Encoder features of E experts for N samples (N = draws x batch in training).

    skips[k]: [N / draws, E, C_k, H_k, W_k] for spatial index k (finest first): N is draw-major
    (row t * N / draws + b is draw t of sample b) and the skips, the same for every draw, are
    stored once; bottom: [N, E, F] the flattened coarsest feature map; available: bool [N, E]
    the experts that take part.
    """

    skips: list[torch.Tensor]
    bottom: torch.Tensor
    available: torch.Tensor
    draws: int = 1


@dataclasses.dataclass
class TopDownResult:
    """head_input: [N, C_head, H, W] what the image heads read (z_1, or a projection of the finest
    state when group 1 has no latent; with ``head_input="z1_state"`` followed by the finest state); kl: [N, G] KL per latent group (columns in ``groups``
    order, finest first), summed over the group's dimensions; latents / posteriors: per group,
    the sample z and the fused posterior (mu, logvar), kept for analysis and tests."""

    head_input: torch.Tensor
    kl: torch.Tensor
    groups: tuple[int, ...]
    latents: dict[int, torch.Tensor]
    posteriors: dict[int, tuple[torch.Tensor, torch.Tensor]]


class TopDown(nn.Module):
    """Shared top-down generative path with PoE posteriors (see module docstring)."""

    def __init__(self, config: MMHVAEConfig):
        super().__init__()
        self.config = config
        channels = list(config.channels)
        n = len(channels)
        self.groups = config.groups
        wn = config.weight_norm
        bottom_features = channels[-1] * config.bottom_size**2
        self.bottom_shape = (channels[-1], config.bottom_size, config.bottom_size)
        # q(z_L | x_j) heads and the map z_L -> coarsest feature map (the released code's linears).
        self.bottleneck_down = maybe_weight_norm(nn.Linear(bottom_features, 2 * config.top_latent_dim), wn)
        self.bottleneck_up = maybe_weight_norm(nn.Linear(config.top_latent_dim, bottom_features), wn)
        above = channels[1:] + channels[-1:]
        self.ups = nn.ModuleList(UpsampleConv(c_above, c) for c, c_above in zip(channels, above))
        self.cells = nn.ModuleList(DecoderCell(c, config.decoder_expansion) for c in channels)
        self.priors = nn.ModuleDict()
        self.posteriors = nn.ModuleDict()
        self.z_projections = nn.ModuleDict()
        for k, c in enumerate(channels):
            if k + 1 not in self.groups:
                continue
            self.priors[str(k)] = maybe_weight_norm(nn.Conv2d(c, c, 1, bias=False), wn)
            self.posteriors[str(k)] = PosteriorHeadCell(2 * c, c, c, wn)
            if k > 0:  # the finest latent goes to the heads only
                self.z_projections[str(k)] = nn.Conv2d(c // 2, c, 1)
        self.to_head = None if 1 in self.groups else nn.Conv2d(channels[0], channels[0] // 2, 1)
        self.max_group = n + 1

    def _clamp(self, x: torch.Tensor) -> torch.Tensor:
        return soft_clamp(x, self.config.soft_clamp)

    def _latent(
        self,
        prior: tuple[torch.Tensor, torch.Tensor],
        experts: tuple[torch.Tensor, torch.Tensor] | None,
        available: torch.Tensor | None,
        temperature: float,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One group: fuse prior and experts (eq. 13-14), sample, KL to the prior (Alg. 1 l. 13).

        prior: ([N, ...], [N, ...]); experts: ([E, N, ...], [E, N, ...]); available: bool [N, E].
        Returns z [N, ...], kl [N], and the posterior (mu, logvar).
        """
        mu_p, logvar_p = prior[0].float(), prior[1].float()
        if experts is None:
            mu_q, logvar_q = mu_p, logvar_p
        else:
            every = torch.ones_like(available[:, :1])
            mu_q, logvar_q = fuse_experts(
                torch.cat([mu_p[None], experts[0].float()]),
                torch.cat([logvar_p[None], experts[1].float()]),
                torch.cat([every, available], dim=1).transpose(0, 1),
            )
        z = reparameterised_sample(mu_q, logvar_q, temperature, generator)
        if self.config.kl == "analytic":
            kl = gaussian_kl(mu_q, logvar_q, mu_p, logvar_p)
        else:  # one-sample estimate log q(z) - log p(z) (eq. 19, the released code's choice)
            kl = gaussian_log_prob(z, mu_q, logvar_q) - gaussian_log_prob(z, mu_p, logvar_p)
        return z, kl.flatten(1).sum(dim=1), (mu_q, logvar_q)

    def _split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = params.chunk(2, dim=1)
        return self._clamp(mu), self._clamp(logvar)

    def forward(
        self,
        evidence: Evidence | None,
        batch_size: int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> TopDownResult:
        """Run the ladder from z_L down to the head input.

        Args:
            evidence: encoder features (posterior); None samples from the prior (needs batch_size).
            temperature: scales every sampled std (0 = means).
        """
        if evidence is None and batch_size is None:
            raise ValueError("batch_size is required when sampling from the prior (evidence=None)")
        n = evidence.bottom.shape[0] if evidence is not None else batch_size
        device = self.bottleneck_up.bias.device
        kls: dict[int, torch.Tensor] = {}
        latents: dict[int, torch.Tensor] = {}
        posteriors: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        # Coarsest group: p(z_L) = N(0, I) and one expert per modality (eq. 13, first factor).
        dim = self.config.top_latent_dim
        prior = (torch.zeros(n, dim, device=device), torch.zeros(n, dim, device=device))
        experts = None
        if evidence is not None:
            e = evidence.bottom.shape[1]
            params = self.bottleneck_down(evidence.bottom.flatten(0, 1)).view(n, e, 2 * dim).transpose(0, 1)
            mu, logvar = params.chunk(2, dim=-1)
            experts = (self._clamp(mu), self._clamp(logvar + self.config.expert_logvar_offset))
        top = self.max_group
        z, kls[top], posteriors[top] = self._latent(
            prior, experts, None if evidence is None else evidence.available, temperature, generator
        )
        latents[top] = z
        state = self.bottleneck_up(z).view(n, *self.bottom_shape)

        head_input = None
        for k in reversed(range(len(self.cells))):
            feat = self.cells[k](self.ups[k](state))
            group = k + 1
            if group not in self.groups:
                state = feat
                continue
            prior = self._split(self.priors[str(k)](feat))
            experts = None
            if evidence is not None:
                # eq. 12 for every expert j on [feat, skip_j] (split first conv, see forward_split)
                params = self.posteriors[str(k)].forward_split(feat, evidence.skips[k], evidence.draws)
                mu, logvar = params.transpose(0, 1).chunk(2, dim=2)
                experts = (self._clamp(mu), self._clamp(logvar + self.config.expert_logvar_offset))
            z, kls[group], posteriors[group] = self._latent(
                prior, experts, None if evidence is None else evidence.available, temperature, generator
            )
            latents[group] = z
            if k > 0:
                state = feat + self.z_projections[str(k)](z.to(feat.dtype))
            else:
                head_input = z
                state = feat
        if head_input is None:
            head_input = self.to_head(state)
        if self.config.head_input == "z1_state":  # z1 and the features it was drawn from
            head_input = torch.cat([head_input, state.to(head_input.dtype)], dim=1)
        kl = torch.stack([kls[g] for g in self.groups], dim=1)
        return TopDownResult(head_input, kl, self.groups, latents, posteriors)
