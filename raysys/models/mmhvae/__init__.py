"""MMHVAE (Dorent et al.): hierarchical multi-modal VAE whose posterior is a mixture over input
subsets of products of experts, with per-modality GAN regularisation and a memory of real images.

Public: ``MMHVAEFamily`` (the ModelFamily), ``MMHVAEConfig`` (presets "tiny" and "paper"),
``MMHVAE`` (the inference module), ``product_of_experts`` and ``gaussian_kl``.
"""

from raysys.models.mmhvae.config import MMHVAEConfig, latent_groups
from raysys.models.mmhvae.distributions import gaussian_kl
from raysys.models.mmhvae.family import MMHVAEFamily
from raysys.models.mmhvae.model import MMHVAE
from raysys.models.mmhvae.poe import product_of_experts

__all__ = ["MMHVAE", "MMHVAEConfig", "MMHVAEFamily", "gaussian_kl", "latent_groups", "product_of_experts"]
