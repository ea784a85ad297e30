"""Hyperparameter study of the mmgan family (Ray Tune + Optuna + ASHA, MLflow, Model Registry).

    python jobs/tune_mmgan.py                      # small study on the embedded phantom cohort
    RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=~/.ray/auth_token ray job submit --address http://127.0.0.1:8265 -- python jobs/tune_mmgan.py --trials 8
    python jobs/tune_mmgan.py --name mmgan-study-1 --resume

Flags: `python jobs/tune_mmgan.py --help`; README section "Hyperparameter studies".
"""

import sys

from raysys.tune.cli import main

if __name__ == "__main__":
    sys.exit(main("mmgan"))
