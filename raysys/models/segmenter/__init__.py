"""Brain-tumour segmentation with MONAI (AttentionUnet or UNet, DiceCE, DiceMetric) on four kinds
of input, for Ouyang et al.'s Table 2 with missing modalities. Pure PyTorch + MONAI.

Public: ``SegmenterConfig``, ``SegmenterFamily``, ``SegmenterModel``, ``INPUT_MODES``,
``UPSTREAM_FAMILY`` and the label/region helpers of ``raysys.models.segmenter.regions``.
"""

from raysys.models.segmenter.config import INPUT_MODES, UPSTREAM_FAMILY, SegmenterConfig, describe_upstream
from raysys.models.segmenter.family import SegmenterFamily
from raysys.models.segmenter.model import SegmenterModel
from raysys.models.segmenter.regions import CLASSES, LABELS, MEAN, REGION_NAMES, REGIONS, region_dice

__all__ = ["CLASSES", "INPUT_MODES", "LABELS", "MEAN", "REGIONS", "REGION_NAMES", "UPSTREAM_FAMILY", "SegmenterConfig",
           "SegmenterFamily", "SegmenterModel", "describe_upstream", "region_dice"]
