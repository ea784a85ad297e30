"""Registered models applied to new subjects' NIfTI files, at cohort scale (Ray Data).

``preprocess`` (the training store's preprocessing, repeated), ``native`` (back to each
subject's grid, written as NIfTI), ``predictor`` (what a task plugs in), ``pipeline`` (Ray Data
over the cohort, manifest), and the tasks: ``synthesis`` (``python -m raysys.synthesise``) and
``segmentation`` (``jobs/segment.py --predict``).
"""

from raysys.predict.pipeline import PredictionReport, run_predictions
from raysys.predict.preprocess import PredictError, Preprocessing, preprocessing_of

__all__ = ["PredictError", "PredictionReport", "Preprocessing", "preprocessing_of", "run_predictions"]
