"""NIfTI cohort -> sharded Zarr v3 slice store (``python -m data_prep.convert``).

Modules: ``discover`` (folder/manifest, modality aliases), ``volumes`` (nibabel loading and
validation), ``geometry`` (axial stacks, resizing, brain mask, slice choice), ``normalise``
(zscore / wm-median / minmax), ``subject`` (one Dask task per subject -> staging),
``assemble`` (shard-aligned final arrays, folds), ``scheduling`` (Dask), ``pipeline`` (convert).
"""

from .discover import MODALITY_ALIASES, ConvertError, Problem
from .pipeline import CONVERTER_VERSION, ConversionReport, convert

__all__ = ["CONVERTER_VERSION", "ConversionReport", "ConvertError", "MODALITY_ALIASES", "Problem", "convert"]
