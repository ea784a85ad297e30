"""Segmentation of new NIfTI subjects by a registered ``segmenter``: ``<subj>_seg.nii.gz`` (BraTS
labels 0/1/2/4, uint8) on each subject's own grid, through the same pipeline as synthesis.

The segmenter sees the subject's slices as its training store made them, the missing
modalities unavailable (``SegmenterInference.segment(images, available, position)``, CONTRACTS
of issue 13: ``position`` is the slice's relative place in the subject's stored range, which
the ``standard_avg`` mode needs). Labels map back by nearest neighbour and are not cut to the
brain mask (the store keeps tumour labels over the whole plane too); slices outside the stored
range are 0.
"""

from __future__ import annotations

import numpy as np

from raysys.predict.predictor import Output, Predictor
from raysys.predict.preprocess import Prepared, with_context

SEGMENTATION = "seg"
"""File suffix and manifest modality of the labels (the phantom's and BraTS' name)."""


class SegmentationPredictor(Predictor):
    families = ("segmenter",)

    def outputs(self, prepared: Prepared) -> list[Output]:
        n, m = prepared.images.shape[:2]
        context = getattr(self.inference, "context", None) or 1
        x = prepared.images if context == 1 else with_context(prepared.images, context)
        available = np.repeat(prepared.available[None], n, axis=0)
        position = prepared.position
        labels = np.concatenate([np.asarray(self.inference.segment(x[c], available[c], position[c]))
                                 for c in self.chunks(n)])
        return [Output(SEGMENTATION, labels.astype(np.uint8), order=0, dtype=np.uint8, masked=False)]


def predict_segmentations(model_uri: str, input_dir: str, out_dir: str, *, tracking_uri: str | None = None,
                          store: str | None = None, address: str | None = None, actors: int = 1,
                          gpus_per_actor: float | None = None, log=lambda line: None):
    """``jobs/segment.py --predict DIR --model URI --out DIR``: segment every subject of
    ``input_dir`` -> ``raysys.predict.pipeline.PredictionReport`` (``exit_code`` 1 when a
    subject failed; the others are written). Raises ``PredictError`` for a bad model or input."""
    from raysys.predict.pipeline import run_predictions

    return run_predictions(model_uri, input_dir, out_dir, SegmentationPredictor, {}, tracking_uri=tracking_uri,
                           store=store, address=address, actors=actors, gpus=gpus_per_actor,
                           input_flag="--predict", log=log)
