"""Held-out evaluation of registered models against trivial baselines.

``evaluate(model_uri, data, split="test", fold=0, out=...)`` -> ``EvaluationResult``; command
line ``jobs/evaluate.py``; README section "Evaluating a model". One concept per module:
``cells`` (what is scored), ``slices`` (what is read), ``baselines``, ``methods`` (models),
``scoring`` (masked PSNR/SSIM), ``stats`` (Wilcoxon, Bonferroni, best), ``tables``,
``figure``, ``summary``, ``overlap`` (refusal), ``tracking`` (MLflow), ``run``.
"""

from raysys.evaluate.overlap import EvaluationError
from raysys.evaluate.run import EvaluationResult, evaluate, method_label
from raysys.evaluate.summary import format_summary

__all__ = ["EvaluationError", "EvaluationResult", "evaluate", "format_summary", "method_label"]
