"""CLI: ``python -m data_prep.phantom --out DIR --subjects N --seed S [options]``; see ``--help``."""

from __future__ import annotations

import argparse
import sys
import time

from .availability import DEFAULT_RATES, parse_missing_spec
from .cohort import generate_cohort, validate_modalities
from .contrasts import ALL_MODALITIES, MR_MODALITIES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.phantom",
        description="Generate the embedded multi-modal MNI152 phantom cohort (NIfTI + manifest.csv).")
    parser.add_argument("--out", required=True, help="output directory (created; subjects in it are replaced)")
    parser.add_argument("--subjects", type=int, default=20, help="number of subjects (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed; same seed -> byte-identical files")
    parser.add_argument("--resolution", type=int, choices=(1, 2), default=2, help="voxel size in mm (default 2)")
    parser.add_argument("--modalities", nargs="+", default=list(MR_MODALITIES), metavar="MODALITY",
                        help=f"modalities to synthesise, from {' '.join(ALL_MODALITIES)} (default: the 4 MR ones)")
    parser.add_argument("--tumour-fraction", type=float, default=0.5,
                        help="fraction of subjects with a tumour, in [0, 1] (default 0.5)")
    defaults = ",".join(f"{m}={r}" for m, r in DEFAULT_RATES.items())
    parser.add_argument("--missing", default=None, metavar="SPEC",
                        help=f"availability rate per modality, e.g. t1=0.95,t2=0.7 (unnamed ones keep the "
                             f"default {defaults}); 'none' = all always available")
    parser.add_argument("--preview", action="store_true", help="also write DIR/preview.png (one tumour subject)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all usable CPUs)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        modalities = validate_modalities(args.modalities)
        missing = parse_missing_spec(args.missing, modalities) if args.missing is not None else None
        start = time.perf_counter()
        manifest = generate_cohort(args.out, subjects=args.subjects, seed=args.seed, resolution=args.resolution,
                                   modalities=modalities, tumour_fraction=args.tumour_fraction,
                                   missing=missing, workers=args.workers, preview=args.preview)
    except ValueError as error:
        parser.error(str(error))  # exits with status 2 and the message
    print(f"wrote {args.subjects} subjects to {args.out} in {time.perf_counter() - start:.1f} s; manifest: {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
