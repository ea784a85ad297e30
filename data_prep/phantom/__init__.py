"""The embedded MNI152 phantom cohort: ``python -m data_prep.phantom --out DIR ...``.

Anatomy comes from the real MNI152 2009 template shipped with nilearn (no downloads); each
subject gets its own smooth deformation, affine, ventricle size and (optionally) a tumour with
BraTS labels, and every modality is synthesised from the same deformed tissue fractions.
"""

from .availability import DEFAULT_RATES, parse_missing_spec, resolve_rates, sample_availability
from .cohort import MANIFEST_COLUMNS, generate_cohort
from .contrasts import ALL_MODALITIES, MEANS, MR_MODALITIES
from .subject import make_subject, tumour_assignment
from .template import load_template

__all__ = [
    "ALL_MODALITIES", "DEFAULT_RATES", "MANIFEST_COLUMNS", "MEANS", "MR_MODALITIES",
    "generate_cohort", "load_template", "make_subject", "parse_missing_spec", "resolve_rates",
    "sample_availability", "tumour_assignment",
]
