"""The command line of ``jobs/segment.py``: the train jobs' flags (``raysys.train.cli``) plus the
input modes, the upstream models, ``--hide-prob`` and ``--out``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from raysys.config import ConfigError
from raysys.machine import machine_name
from raysys.segment.predict_cli import PREDICT_FLAG
from raysys.segment.predict_cli import main as predict_main
from raysys.segment.variants import MODES, UPSTREAM_FLAG, Variant, variants

FAMILY = "segmenter"
DEFAULT_UPSTREAM = {"fused_anatomy": "models:/disentangle@champion", "mmhvae_impute": "models:/mmhvae@champion"}
# Model fields the job sets itself (from --input, the upstream models and the store).
JOB_FIELDS = ("input_mode", "upstream", "frozen_parts", "position_bins")


def build_parser() -> argparse.ArgumentParser:
    from raysys.train.cli import build_parser as train_parser

    p = train_parser(FAMILY)
    p.prog = "segment.py"
    p.description = ("Train brain-tumour segmenters (MONAI) on fused anatomy, zero/average filling or MMHVAE imputation, "
                     "register them as 'segmenter' and score them on the test fold with each modality missing.")
    p.add_argument("--input", required=True, choices=[*MODES, "all"], help="input mode, or all (every mode, same budget)")
    p.add_argument("--encoder", default=DEFAULT_UPSTREAM["fused_anatomy"], help="disentangle model of fused_anatomy (URI or model dir)")
    p.add_argument("--synthesiser", default=DEFAULT_UPSTREAM["mmhvae_impute"], help="mmhvae model of mmhvae_impute (URI or model dir)")
    p.add_argument("--hide-prob", type=float, default=0.0,
                   help="also train every mode with random modality dropout P (own rows; 0 = complete inputs only)")
    p.add_argument("--out", required=True, help="directory for dice.csv and table.md")
    p.epilog = "Segment new NIfTI subjects with a registered segmenter: segment.py --predict DIR [--model URI] --out DIR (see --predict DIR --help)."
    return p


def _upstream_uri(args: argparse.Namespace, mode: str) -> str:
    return args.encoder if mode == "fused_anatomy" else args.synthesiser


def preflight(args: argparse.Namespace, train: Any, model_over: dict[str, Any], tracking_uri: str, download_dir: str):
    """Every check before training (ConfigError, one line): store with labels, batch, job-owned
    keys, --hide-prob, each needed upstream model registered, each model built on the store."""
    from raysys.preflight import check_batch_fits, check_model_fits_store, checked_store
    from raysys.segment.frozen import cohort_means, mode_overrides, resolve_upstream

    owned = [k for k in model_over if k in JOB_FIELDS]
    if owned:
        raise ConfigError(f"--set {owned[0]}: set by the job (from --input, --encoder/--synthesiser and the store)")
    if not 0.0 <= args.hide_prob < 1.0:
        raise ConfigError(f"--hide-prob {args.hide_prob}: must be in [0, 1)")
    store = checked_store(train.data)
    if not store.has_labels:
        raise ConfigError(f"--data {store.url}: the store has no tumour labels; convert a cohort with <subject>_seg label maps")
    check_batch_fits(store, train.fold, train.batch_size)
    chosen = variants(args.input, args.hide_prob)
    upstream = {v.mode: resolve_upstream(v.mode, _upstream_uri(args, v.mode), tracking_uri, Path(download_dir) / v.mode)
                for v in chosen if v.mode in UPSTREAM_FLAG}
    needs_means = any(v.mode == "standard_avg" for v in chosen)
    means, bins = cohort_means(store, train.fold) if needs_means else (None, 0)
    base = {"image_size": tuple(store.size), **model_over}
    overrides = {}
    for variant in chosen:
        overrides[variant] = {**base, **mode_overrides(variant.mode, upstream.get(variant.mode), bins)}
        check_model_fits_store(FAMILY, train.preset, overrides[variant], store, "--set")
    return store, chosen, upstream, means, overrides


def main(argv: Sequence[str] | None = None) -> int:
    from raysys.tracking import resolve_tracking_uri
    from raysys.train.cli import configs_from_args, init_ray

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == PREDICT_FLAG or a.startswith(PREDICT_FLAG + "=") for a in argv):
        return predict_main(argv)
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="raysys-upstream-") as download_dir:
        try:
            train, model_over, scaling, tracking, run_name = configs_from_args(FAMILY, args)
            tracking_uri = resolve_tracking_uri(args.tracking_uri)
            store, chosen, upstream, means, overrides = preflight(args, train, model_over, tracking_uri, download_dir)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if scaling.workers > 0:
            init_ray(args.num_cpus)
        base_name = args.run_name or f"{FAMILY}-{train.preset}-fold{train.fold}"
        summary = run_variants(args, train, scaling, dataclasses.replace(tracking, tracking_uri=tracking_uri), store,
                               chosen, upstream, means, overrides, base_name)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def run_variants(args, train, scaling, tracking, store, chosen: list[Variant], upstream, means, overrides,
                 base_name: str) -> dict[str, Any]:
    """Train, register and score every variant under one MLflow run (the parent of the training
    runs), then write and log dice.csv and table.md."""
    from raysys.names import TAG_ROLE, TAG_STORE
    from raysys.segment import run as variant_run
    from raysys.segment.evaluation import scored_subjects
    from raysys.segment.report import markdown_table, summary_rows, write_dice_csv
    from raysys.tracking import RunTracker
    from raysys.urls import absolute_url

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    storage = absolute_url(args.storage, "--storage")
    parent = RunTracker.open(f"{base_name}-{args.input}", tracking_uri=tracking.tracking_uri, experiment=tracking.experiment,
                             tags={TAG_ROLE: "segment", TAG_STORE: store.store_id})
    try:
        parent.log_params({"segment.input": args.input, "segment.hide_prob": args.hide_prob,
                           "segment.variants": ",".join(v.label for v in chosen), "data.store_id": store.store_id,
                           **{f"segment.upstream.{mode}": uri for mode, (_, uri) in upstream.items()},
                           **{f"train.{k}": v for k, v in dataclasses.asdict(train).items()}})
        child = dataclasses.replace(tracking, parent_run_id=parent.run_id)
        rows, outcomes = [], []
        for variant in chosen:
            run_name = f"{base_name}-{variant.label}"
            model_over = variant_run.prepare(variant, overrides[variant], train.preset, store, storage, run_name,
                                             upstream.get(variant.mode, (None,))[0], means)
            outcome = variant_run.train_and_register(variant, train, model_over, scaling, child, storage=storage,
                                                     run_name=run_name, store_id=store.store_id, max_failures=args.max_failures)
            rows += summary_rows(variant.label, variant_run.score(outcome, store, train.fold, tracking.tracking_uri),
                                 store.modalities)
            outcomes.append(outcome)
        scored, complete = scored_subjects(store, train.fold)
        csv_path = write_dice_csv(rows, out / "dice.csv")
        table = markdown_table(rows, store.modalities, store=store.url, fold=train.fold, scored=len(scored), complete=complete,
                               machine=machine_name())
        (out / "table.md").write_text(table)
        parent.log_metrics({f"test/{r['input_mode']}/{r['condition']}/{r['region']}": r["dice_mean"]
                            for r in rows if r["n"] > 0}, step=0)
        parent.log_file(csv_path)
        parent.log_file(out / "table.md")
    except BaseException:
        parent.finish("FAILED")
        raise
    parent.finish("FINISHED")
    return {"mlflow_run_id": parent.run_id, "dice_csv": str(csv_path), "table": str(out / "table.md"),
            "variants": [{"label": o.variant.label, "run_name": o.run_name, "registered_version": o.version,
                          "champion": o.champion, "best_val_dice_mean": o.best_objective, "checkpoint": o.checkpoint}
                         for o in outcomes]}
