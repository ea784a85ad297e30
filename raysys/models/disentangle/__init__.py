"""Disentanglement of anatomy and modality (Ouyang et al. 2021), pure PyTorch.

Public: ``DisentangleConfig``, ``DisentangleFamily``, ``DisentangleModel``, ``disentanglement_score``,
``similarity_margin_loss`` (eq. 2), ``fuse_anatomy`` (sec. 3.2) and the probes in
``raysys.models.disentangle.probes``.
"""

from raysys.models.disentangle.config import DisentangleConfig
from raysys.models.disentangle.family import DisentangleFamily
from raysys.models.disentangle.fusion import fuse_anatomy
from raysys.models.disentangle.losses import similarity_margin_loss
from raysys.models.disentangle.model import DisentangleModel, DisentangleOutput
from raysys.models.disentangle.score import disentanglement_score

__all__ = ["DisentangleConfig", "DisentangleFamily", "DisentangleModel", "DisentangleOutput", "disentanglement_score",
           "fuse_anatomy", "similarity_margin_loss"]
