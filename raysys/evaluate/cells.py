"""What is scored: cells = (input subset, target) pairs of a model family over the store's modalities.

* families that synthesise from subsets (mmhvae, mmgan; ``SubsetSynthesis``): every non-empty
  subset of the modalities as inputs x every target (a target inside its inputs is harmonisation /
  self-reconstruction, left out for a model that returns its inputs unchanged: mmgan);
* disentangle: every (source, target) pair, inputs = the single source (source == target is
  self-reconstruction; otherwise cross-synthesis, the target image supplying only z).

A cell is scored for a subject when the subject has every input and the target. Cells no
subject of the split can fill are left out (counted, never written as NaN).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Iterable, Mapping, Sequence

from raysys.registry.inference import INFERENCE, synthesises_from_subsets


@dataclasses.dataclass(frozen=True, order=True)
class Cell:
    """One table cell: ``inputs`` (modality names in store order) -> ``target``."""

    inputs: tuple[str, ...]
    target: str

    @property
    def label(self) -> str:
        """The inputs as written in the CSVs: names joined by ``+`` in store order."""
        return inputs_label(self.inputs)


def inputs_label(inputs: Iterable[str]) -> str:
    return "+".join(inputs)


def family_cells(family: str, modalities: Sequence[str]) -> list[Cell]:
    """Every cell of ``family`` over ``modalities``, in table order (subsets by size, then store order)."""
    modalities = list(modalities)
    if synthesises_from_subsets(family):
        subsets = [c for r in range(1, len(modalities) + 1) for c in itertools.combinations(modalities, r)]
        harmonises = INFERENCE[family].reconstructs_inputs
        return [Cell(tuple(s), t) for s in subsets for t in modalities if harmonises or t not in s]
    if family == "disentangle":
        return [Cell((s,), t) for s in modalities for t in modalities]
    known = ["disentangle", *(f for f in INFERENCE if synthesises_from_subsets(f))]
    raise ValueError(f"family={family!r}: expected one of {known}")


def subject_cells(cells: Sequence[Cell], available: Mapping[str, bool]) -> list[Cell]:
    """The cells a subject with ``available`` modalities can fill (all inputs and the target present)."""
    return [c for c in cells if available.get(c.target, False) and all(available.get(m, False) for m in c.inputs)]


def group_by_inputs(cells: Sequence[Cell]) -> dict[tuple[str, ...], list[Cell]]:
    """Cells grouped by their input subset (one model call per subset gives every target)."""
    groups: dict[tuple[str, ...], list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.inputs, []).append(cell)
    return groups
