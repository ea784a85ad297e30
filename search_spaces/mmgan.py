"""MM-GAN search space (Sharma & Hamarneh 2019): define-by-run, centred on the released code's values.

Keys that start with ``model.`` or ``train.`` are config overrides the trial driver applies. The
design switches (``model.implicit_conditioning``, ``model.curriculum``) are not searched: they are
the method, compared as variants (``jobs/reproduce.py``), not tuned.

| key                      | range                 | paper / released value      |
|--------------------------|-----------------------|-----------------------------|
| model.lambda_l1 (lambda) | 0.5 .. 0.99           | 0.9 (L_G = 0.1 adv + 0.9 L1) |
| model.lr                 | log 5e-5 .. 2e-3      | 2e-4 (Adam)                 |
| model.disc_lr            | log 5e-5 .. 2e-3      | 2e-4 (Adam)                 |
| model.beta1              | 0.0 .. 0.9            | 0.5                         |
| model.dropout            | 0.0 .. 0.5            | 0.2                         |
| model.curriculum_end     | 0.2 .. 0.8            | 0.5 (all scenarios from epoch 31 of 60) |
"""

from __future__ import annotations

from typing import Any

import optuna

PAPER_POINTS: list[dict[str, Any]] = [
    {
        "model.lambda_l1": 0.9,
        "model.lr": 2e-4,
        "model.disc_lr": 2e-4,
        "model.beta1": 0.5,
        "model.dropout": 0.2,
        "model.curriculum_end": 0.5,
    }
]


def preset_points(config: Any) -> list[dict[str, Any]]:
    """A preset's own values of every key of the space (first point of a study of that preset)."""
    return [{key: getattr(config, key.split(".", 1)[1]) for key in PAPER_POINTS[0]}]


def space(trial: optuna.Trial) -> dict[str, Any] | None:
    """Suggest one MM-GAN configuration (nothing derived)."""
    trial.suggest_float("model.lambda_l1", 0.5, 0.99)
    trial.suggest_float("model.lr", 5e-5, 2e-3, log=True)
    trial.suggest_float("model.disc_lr", 5e-5, 2e-3, log=True)
    trial.suggest_float("model.beta1", 0.0, 0.9)
    trial.suggest_float("model.dropout", 0.0, 0.5)
    trial.suggest_float("model.curriculum_end", 0.2, 0.8)
    return None
