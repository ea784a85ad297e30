"""Command line: ``python -m data_prep.convert --input DIR|manifest.csv --output STORE [...]``.

Exit codes: 0 all subjects converted; 1 some subjects failed (summary table on stderr, the
store is complete with the others); 2 the conversion could not run (bad arguments, unusable
output, --strict stop, no subject converted).
"""

from __future__ import annotations

import argparse
import sys

from .discover import ConvertError
from .normalise import METHODS
from .pipeline import DEFAULT_SHARD_SLICES, DTYPES, convert
from .subject import COMPRESSIONS, DEFAULT_COMPRESSION


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_prep.convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="cohort folder (<subject>_<modality>.nii[.gz]|.mgz) or manifest CSV")
    p.add_argument("--output", required=True, help="store path or fsspec URL (file://, memory://, s3://...)")
    p.add_argument("--modalities", nargs="+", default=None, help="image modalities (aliases ok); default: all found")
    p.add_argument("--size", nargs=2, type=int, default=(64, 64), metavar=("H", "W"), help="in-plane size")
    p.add_argument("--slices", default="auto", help="'auto' (slices with brain) or 'a:b' (RAS axial indices)")
    p.add_argument("--normalise", choices=METHODS, default="zscore")
    p.add_argument("--dtype", choices=DTYPES, default="float32")
    p.add_argument("--scheduler", default="threads", help="threads | processes | dask.distributed address")
    p.add_argument("--workers", type=int, default=None, help="local workers (default: one per core)")
    p.add_argument("--folds", type=int, default=5, help="k of the k-fold split by subject (>= 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    p.add_argument("--shard-slices", type=int, default=DEFAULT_SHARD_SLICES, help="slices per shard")
    p.add_argument("--compression", choices=COMPRESSIONS, default=DEFAULT_COMPRESSION,
                   help="chunk compression: lz4 (Blosc-LZ4, fast), zstd (Blosc-zstd, slower, about as "
                        "small here) or none (raw bytes, ~3x larger store, no decompression on reads)")
    p.add_argument("--keep-raw", action="store_true",
                   help="also store raw/<modality>: the images scaled per volume only (x / brain p99, clipped to "
                        "[0, 2]), not normalised; for training on raw inputs with normalised targets (harmonisation)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad input")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        report = convert(args.input, args.output, modalities=args.modalities, size=tuple(args.size),
                         slices=args.slices, normalise=args.normalise, dtype=args.dtype,
                         scheduler=args.scheduler, workers=args.workers, folds=args.folds, seed=args.seed,
                         strict=args.strict, shard_slices=args.shard_slices, progress=not args.quiet,
                         compression=args.compression, keep_raw=args.keep_raw)
    except ConvertError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for problem in report.failures:
        print(f"error: {problem.line()}", file=sys.stderr)
    state = "already complete" if report.already_complete else f"{report.seconds:.1f} s"
    print(f"{report.output}: {len(report.subjects)} subjects, {report.n_slices} slices "
          f"({len(report.resumed)} resumed; {state})")
    if report.failures:
        print(report.summary(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
