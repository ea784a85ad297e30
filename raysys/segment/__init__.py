"""``jobs/segment.py``: train a segmenter per input mode, register it, score it on the test fold
under every missing-modality condition (Ouyang et al.'s Table 2, plus MMHVAE imputation).

One concept per module: ``variants`` (input modes x hide probability, their labels), ``frozen``
(the upstream models and cohort-mean images a mode needs, resolved on the driver and written
where every Ray worker reads them), ``evaluation`` (per-subject Dice per condition and region),
``report`` (dice.csv, table.md), ``run`` (one variant: train, register, evaluate), ``cli``.
"""

from raysys.segment.variants import MODES, Variant

__all__ = ["MODES", "Variant"]
