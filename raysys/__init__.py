"""raysys: distributed training and hyperparameter studies for multi-modal brain MRI models."""

__version__ = "0.1.0"
