"""The papers' experiments as reproducible jobs (``jobs/reproduce.py``; README "Reproducing the papers").

One concept per module: ``experiments`` (the three experiments as data: rows, claims, budgets),
``paper_numbers`` (the papers' own tables), ``plan`` (rows -> runs: switches, shared
configurations), ``trial`` (the Tune trainable: train, then ``raysys.evaluate`` on the test
fold), ``grid`` (the Tune grid), ``scores`` (the runs' scores back from MLflow), ``claims``
(paired Wilcoxon and effect sizes), ``tables`` and ``report`` (report.md and figures), ``cli``.
"""

from raysys.reproduce.experiments import EXPERIMENTS, get_experiment

__all__ = ["EXPERIMENTS", "get_experiment"]
