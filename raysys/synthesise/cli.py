"""Synthesise every missing modality of a cohort's NIfTI subjects with a registered model. Example:

    python -m raysys.synthesise --model models:/mmhvae@champion --input nifti/ --out synthesised/ \
        --tracking-uri sqlite:////abs/mlflow.db

Writes OUT/<subject>/<subject>_<modality>.nii.gz (float32, the input's grid and header,
intensities in the model's normalised units, 0 outside the brain) and OUT/manifest.csv. Runs
on a local Ray, on ``--address``, or under ``ray job submit``. Exit status 2 for a bad
model/input/flag (nothing written), 1 when some subjects failed (the others are written).
"""

from __future__ import annotations

import argparse
import sys

from raysys.predict.cli_flags import add_cohort_flags
from raysys.predict.synthesis import OUTPUTS


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m raysys.synthesise", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="models:/name@alias, models:/name/N, runs:/... or a model directory")
    p.add_argument("--input", required=True, help="folder of <subject>/<subject>_<modality>.nii[.gz], or a manifest.csv")
    p.add_argument("--out", required=True, help="output folder (a path every Ray node sees)")
    p.add_argument("--temperature", type=float, default=None, help="mmhvae posterior std scale (default: the model's, 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mmhvae draws (default 0)")
    p.add_argument("--output", choices=OUTPUTS, default=None,
                   help="synthesis (mmhvae, default), anatomy or fused (disentangle, default fused)")
    add_cohort_flags(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    from raysys.predict import PredictError
    from raysys.predict.synthesis import synthesise

    try:
        report = synthesise(args.model, args.input, args.out, output=args.output, temperature=args.temperature,
                            seed=args.seed, tracking_uri=args.tracking_uri, store=args.store, address=args.address,
                            actors=args.actors, gpus=args.gpus_per_actor, log=lambda s: print(s, file=sys.stderr))
    except PredictError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    return report.exit_code
