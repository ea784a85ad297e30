"""What a task plugs into the prediction pipeline: a predictor turns one preprocessed subject
into named outputs on the model's grid (the pipeline maps them back and writes them).

A predictor class has ``families`` (the model families it takes), ``check(meta, **options)``
(raises ``PredictError`` before any work starts, e.g. an output the model cannot make) and is
built as ``Predictor(inference, **options)`` once per actor; ``outputs(prepared)`` is called per
subject. ``raysys.predict.synthesis`` and ``raysys.predict.segmentation`` are the two tasks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from raysys.predict.preprocess import PredictError, Prepared

SLICE_CHUNK = 32
"""Slices of one subject per model call: bounds memory for large grids; a subject's chunks are
always the same, so results do not depend on how subjects are spread over actors."""


@dataclasses.dataclass
class Output:
    """One file to write: ``<subject>_<name>.nii.gz`` from ``slices`` [Z, (C,) H, W] on the model grid."""

    name: str
    slices: np.ndarray
    order: int = 1                 # 1: bilinear (images, anatomy); 0: nearest (labels)
    dtype: Any = np.float32
    masked: bool = True            # 0 outside the subject's brain mask


class Predictor:
    """Base class: the family check and the slice chunks."""

    families: tuple[str, ...] = ()

    def __init__(self, inference, **options):
        self.inference = inference

    @classmethod
    def check(cls, meta: Mapping[str, Any], **options) -> None:
        if meta["family"] not in cls.families:
            raise PredictError(f"model family {meta['family']!r} cannot be used here; expected {' or '.join(cls.families)}")

    def outputs(self, prepared: Prepared) -> list[Output]:
        raise NotImplementedError

    @staticmethod
    def chunks(n: int) -> list[slice]:
        return [slice(start, min(n, start + SLICE_CHUNK)) for start in range(0, n, SLICE_CHUNK)]
