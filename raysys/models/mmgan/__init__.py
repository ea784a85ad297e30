"""MM-GAN (Sharma & Hamarneh, IEEE TMI 2019): a multi-input multi-output U-Net GAN that synthesises
every missing MR modality from the available ones in one pass, trained with implicit conditioning
and a curriculum over missing-data scenarios. A baseline of the MMHVAE paper's Table I.

Public: ``MMGANFamily`` (the ModelFamily), ``MMGANConfig`` (presets "tiny", "cpu", "paper"),
``MMGAN`` (the inference module).
"""

from raysys.models.mmgan.config import MMGANConfig
from raysys.models.mmgan.family import MMGANFamily
from raysys.models.mmgan.model import MMGAN

__all__ = ["MMGAN", "MMGANConfig", "MMGANFamily"]
