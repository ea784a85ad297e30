"""Optuna define-by-run search spaces, one per model family."""
