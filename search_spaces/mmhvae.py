"""MMHVAE search space (Dorent et al.): define-by-run, centred on the paper's values.

Keys that start with ``model.`` or ``train.`` are config overrides the trial driver applies;
other keys (``gan``) are choices of the space itself, recorded as tags but not applied.
``max_levels`` (L_max of the preset: tiny 6, paper 7) and ``epochs`` (the study's epochs per
trial) are bound by the study (``raysys.tune.space.load_space``).

| key                          | range                                  | paper value        |
|------------------------------|----------------------------------------|--------------------|
| model.levels (L)             | int 1 .. max_levels                    | 7 (= L_max)        |
| model.lambda_kl              | log 1e-4 .. 1e-2                       | 1e-3               |
| gan                          | off / on                               | on                 |
| model.gan_start_fraction     | 0.5 .. 0.9, only if on                 | 0.8 (800 of 1000)  |
| model.lambda_gan             | log 5e-3 .. 0.1 if on; 0 if off        | 0.025              |
| model.subsets_per_step (T)   | int 1 .. 5                             | 3                  |
| model.temperature            | 0.3 .. 1.0                             | 0.5                |
| model.lr                     | log 3e-4 .. 1e-2                       | 2e-3 (Adamax)      |
| model.fusion                 | poe / average / concat_zeros           | poe                |
| model.kl_warmup_epochs       | 0 .. 0.3 x epochs, only if L >= 3      | (code: 5 % of run) |

Derived: ``model.disc_start_fraction`` = gan start - 0.01 (the paper's discriminators start one
epoch in a thousand before the GAN term), or 1.0 (never) with the GAN off.
Depth-conditional: a KL warm-up only exists for hierarchies of three or more levels, where the
deep levels tend to collapse without it; L = 1 is the MoPoE baseline.
"""

from __future__ import annotations

from typing import Any

import optuna

MAX_LEVELS = 6  # L_max of the tiny preset (64x64); the paper preset has 7
EPOCHS = 2  # the default study's epochs per trial
FUSIONS = ("poe", "average", "concat_zeros")


def paper_points(max_levels: int = MAX_LEVELS, epochs: int = EPOCHS) -> list[dict[str, Any]]:
    """The paper's settings, evaluated first (the TPE sampler learns from them)."""
    return [
        {
            "model.levels": max_levels,
            "model.lambda_kl": 1e-3,
            "gan": "on",
            "model.gan_start_fraction": 0.8,
            "model.lambda_gan": 0.025,
            "model.subsets_per_step": 3,
            "model.temperature": 0.5,
            "model.lr": 2e-3,
            "model.fusion": "poe",
            "model.kl_warmup_epochs": 0.05 * epochs,
        }
    ]


PAPER_POINTS = paper_points()


def preset_points(config: Any, epochs: int = EPOCHS) -> list[dict[str, Any]]:
    """A preset's own values of every key of the space (first point of a study of that preset)."""
    gan_on = config.lambda_gan > 0 and config.gan_start_fraction < 1.0
    point: dict[str, Any] = {
        "model.levels": config.levels,
        "model.lambda_kl": config.lambda_kl,
        "gan": "on" if gan_on else "off",
        "model.subsets_per_step": config.subsets_per_step,
        "model.temperature": config.temperature,
        "model.lr": config.lr,
        "model.fusion": config.fusion,
    }
    if gan_on:
        point.update({"model.gan_start_fraction": config.gan_start_fraction, "model.lambda_gan": config.lambda_gan})
    if config.levels >= 3:
        point["model.kl_warmup_epochs"] = min(config.kl_warmup_epochs, 0.3 * epochs)
    return [point]


def space(trial: optuna.Trial, max_levels: int = MAX_LEVELS, epochs: int = EPOCHS) -> dict[str, Any] | None:
    """Suggest one MMHVAE configuration; returns the derived (not sampled) overrides."""
    levels = trial.suggest_int("model.levels", 1, max_levels)
    trial.suggest_float("model.lambda_kl", 1e-4, 1e-2, log=True)
    derived: dict[str, Any] = {}
    if trial.suggest_categorical("gan", ["off", "on"]) == "on":
        start = trial.suggest_float("model.gan_start_fraction", 0.5, 0.9)
        trial.suggest_float("model.lambda_gan", 5e-3, 0.1, log=True)
        derived["model.disc_start_fraction"] = max(0.0, start - 0.01)
    else:
        derived["model.lambda_gan"] = 0.0
        derived["model.disc_start_fraction"] = 1.0
    trial.suggest_int("model.subsets_per_step", 1, 5)
    trial.suggest_float("model.temperature", 0.3, 1.0)
    trial.suggest_float("model.lr", 3e-4, 1e-2, log=True)
    trial.suggest_categorical("model.fusion", list(FUSIONS))
    if levels >= 3:
        trial.suggest_float("model.kl_warmup_epochs", 0.0, 0.3 * epochs)
    return derived
