"""Evaluate a registered model on the held-out split against trivial baselines. Example:

    python jobs/evaluate.py --model models:/mmhvae@champion --data data/phantom.zarr --out eval/ \
        --tracking-uri sqlite:////abs/mlflow.db

Writes per_subject.csv, table.csv, table.md, figure.png and summary.json into --out; README
section "Evaluating a model". Exit status 2 with a one-line error for bad input (unknown
split, missing store or model, a split the model was trained or validated on).
"""

import argparse
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="models:/name@alias, models:/name/N, runs:/... or a model directory")
    p.add_argument("--data", required=True, help="the store (path or fsspec URL)")
    p.add_argument("--split", default="test", help="test (= fold k) or val (= fold k+1); default test")
    p.add_argument("--fold", type=int, default=0, help="fold k (default 0)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default MLFLOW_TRACKING_URI; none: files only)")
    p.add_argument("--compare", nargs="*", default=[], help="more model URIs, reported as methods model:2, model:3 ...")
    p.add_argument("--temperature", type=float, default=None, help="mmhvae sampling temperature (default: the model's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-slices-per-subject", type=int, default=0, help="0 = every slice with brain, else evenly spaced")
    p.add_argument("--batch-size", type=int, default=64)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    import torch

    from raysys.data import StoreError
    from raysys.evaluate import EvaluationError, evaluate, format_summary

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    try:
        result = evaluate(args.model, args.data, split=args.split, fold=args.fold, out=args.out,
                          tracking_uri=args.tracking_uri, compare=args.compare, temperature=args.temperature,
                          seed=args.seed, max_slices_per_subject=args.max_slices_per_subject,
                          batch_size=args.batch_size, log=lambda s: print(s, file=sys.stderr))
    except (EvaluationError, StoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_summary(result.summary))
    print(f"left out: {result.left_out} cells (no subject of the split has their inputs and target)")
    print(f"wrote {result.out}" + (f"; MLflow run {result.run_id}" if result.run_id else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
