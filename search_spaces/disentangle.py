"""Disentanglement search space (Ouyang et al.): define-by-run, centred on the paper's values.

Keys that start with ``model.`` or ``train.`` are config overrides the trial driver applies.

| key                 | range                         | paper value |
|---------------------|-------------------------------|-------------|
| model.alpha_s       | 0.02 .. 0.5                   | 0.1         |
| model.alpha_z       | 0.02 .. 0.5                   | 0.1         |
| model.lambda_c      | log 0.5 .. 8                  | 2.0         |
| model.lambda_l      | log 0.01 .. 1                 | 0.1         |
| model.lambda_s      | log 1 .. 100                  | 10.0        |
| model.lambda_z      | log 0.2 .. 20                 | 2.0         |
| model.regulariser   | na / adv / sim                | sim         |
| model.lambda_adv    | log 0.01 .. 1, only if adv    | (not given) |
| model.encoder       | conv / condconv               | condconv    |
| model.n_experts     | int 2 .. 6, only if condconv  | 3 (code)    |
| model.lr            | log 5e-5 .. 1e-3              | 2e-4        |
| model.anatomy_channels | 4 / 8                      | 4           |

The margins and similarity weights are sampled for every regulariser so the comparison view
lines trials up; they only act when the regulariser is ``sim``.
"""

from __future__ import annotations

from typing import Any

import optuna

REGULARISERS = ("na", "adv", "sim")
ENCODERS = ("conv", "condconv")
ANATOMY_CHANNELS = (4, 8)  # C of s: the paper's 4, or room for the phantom's 7 tissue and lesion classes

# The paper's Table 1 rows, evaluated first: CondConv+Sim (the proposed model) and Conv+NA.
PAPER_POINTS: list[dict[str, Any]] = [
    {
        "model.alpha_s": 0.1,
        "model.alpha_z": 0.1,
        "model.lambda_c": 2.0,
        "model.lambda_l": 0.1,
        "model.lambda_s": 10.0,
        "model.lambda_z": 2.0,
        "model.regulariser": "sim",
        "model.encoder": "condconv",
        "model.n_experts": 3,
        "model.lr": 2e-4,
        "model.anatomy_channels": 4,
    },
]


def preset_points(config: Any) -> list[dict[str, Any]]:
    """A preset's own values of every key of the space (first point of a study of that preset)."""
    point: dict[str, Any] = {
        f"model.{name}": getattr(config, name)
        for name in ("alpha_s", "alpha_z", "lambda_c", "lambda_l", "lambda_s", "lambda_z", "regulariser", "encoder", "lr",
                     "anatomy_channels")
    }
    if config.regulariser == "adv":
        point["model.lambda_adv"] = config.lambda_adv
    if config.encoder == "condconv":
        point["model.n_experts"] = config.n_experts
    return [point]


def space(trial: optuna.Trial) -> dict[str, Any] | None:
    """Suggest one disentanglement configuration (conditional: lambda_adv, n_experts)."""
    trial.suggest_float("model.alpha_s", 0.02, 0.5)
    trial.suggest_float("model.alpha_z", 0.02, 0.5)
    trial.suggest_float("model.lambda_c", 0.5, 8.0, log=True)
    trial.suggest_float("model.lambda_l", 0.01, 1.0, log=True)
    trial.suggest_float("model.lambda_s", 1.0, 100.0, log=True)
    trial.suggest_float("model.lambda_z", 0.2, 20.0, log=True)
    if trial.suggest_categorical("model.regulariser", list(REGULARISERS)) == "adv":
        trial.suggest_float("model.lambda_adv", 0.01, 1.0, log=True)
    if trial.suggest_categorical("model.encoder", list(ENCODERS)) == "condconv":
        trial.suggest_int("model.n_experts", 2, 6)
    trial.suggest_float("model.lr", 5e-5, 1e-3, log=True)
    trial.suggest_categorical("model.anatomy_channels", list(ANATOMY_CHANNELS))
    return None
