"""What one row of the table is: an input mode trained with a hide probability."""

from __future__ import annotations

import dataclasses

from raysys.models.segmenter import INPUT_MODES, UPSTREAM_FAMILY

# Row order of the table: the standard fillings, imputation, then the paper's fused anatomy.
MODES = ("standard_zero", "standard_avg", "mmhvae_impute", "fused_anatomy")
assert set(MODES) == set(INPUT_MODES)
UPSTREAM_FLAG = {"fused_anatomy": "--encoder", "mmhvae_impute": "--synthesiser"}
assert set(UPSTREAM_FLAG) == set(UPSTREAM_FAMILY)


@dataclasses.dataclass(frozen=True)
class Variant:
    """``mode`` trained on complete inputs (``hide_prob`` 0, as the paper) or with random
    modality dropout; ``label`` names its rows (``standard_zero``, ``standard_zero_hide0.3``),
    safe in MLflow metric names and run names."""

    mode: str
    hide_prob: float = 0.0

    @property
    def label(self) -> str:
        return self.mode if self.hide_prob == 0 else f"{self.mode}_hide{self.hide_prob:g}"


def variants(inputs: str, hide_prob: float) -> list[Variant]:
    """The variants of ``--input MODE|all`` and ``--hide-prob P``: each mode on complete inputs,
    and with P > 0 each mode again trained with dropout P (its own rows)."""
    modes = list(MODES) if inputs == "all" else [inputs]
    out = [Variant(m) for m in modes]
    if hide_prob > 0:
        out += [Variant(m, hide_prob) for m in modes]
    return out
