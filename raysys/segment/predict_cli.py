"""``jobs/segment.py --predict DIR --model URI --out DIR``: a registered segmenter on new NIfTI
subjects, through the same Ray Data pipeline as ``python -m raysys.synthesise``.

Writes OUT/<subject>/<subject>_seg.nii.gz (BraTS labels 0/1/2/4, uint8, the subject's own grid
and header) and OUT/manifest.csv. Exit 2 for a bad model/input/flag (nothing written), 1 when
some subjects failed (the others are written).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from raysys.predict.cli_flags import add_cohort_flags

PREDICT_FLAG = "--predict"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="segment.py --predict", description=__doc__.split("\n")[0])
    p.add_argument(PREDICT_FLAG, dest="predict", required=True, metavar="DIR",
                   help="folder of <subject>/<subject>_<modality>.nii[.gz], or a manifest.csv")
    p.add_argument("--model", default="models:/segmenter@champion", help="models:/name@alias, models:/name/N, runs:/... or a model directory")
    p.add_argument("--out", required=True, help="output folder (a path every Ray node sees)")
    add_cohort_flags(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from raysys.predict import PredictError
    from raysys.predict.segmentation import predict_segmentations

    args = build_parser().parse_args(argv)
    try:
        report = predict_segmentations(args.model, args.predict, args.out, tracking_uri=args.tracking_uri, store=args.store,
                                       address=args.address, actors=args.actors, gpus_per_actor=args.gpus_per_actor,
                                       log=lambda line: print(line, file=sys.stderr))
    except PredictError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.summary("segmentations"))
    return report.exit_code
