"""``evaluate(...)``: score a registered model (and ``compare`` models) against the trivial
baselines on the held-out split of a store, write the tables, figure and summary, and
optionally record an MLflow evaluation run. ``jobs/evaluate.py`` is its command line.

Method labels: the model is ``model``; the ``compare`` models are ``model:2``, ``model:3`` ...
in the order given (``summary.json`` maps each label to its URI); baselines are
``baseline:zeros``, ``baseline:mean`` and ``baseline:copy`` (``raysys.evaluate.baselines``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from raysys.data.store import Store, StoreError, open_store
from raysys.evaluate.baselines import CopyBaseline, MeanBaseline, ZerosBaseline
from raysys.evaluate.cells import Cell, family_cells, group_by_inputs, subject_cells
from raysys.evaluate.figure import panel_figure
from raysys.evaluate.methods import ModelMethod
from raysys.evaluate.overlap import EvaluationError, check_overlap
from raysys.evaluate.scoring import score_slices
from raysys.evaluate.slices import SubjectSlices, evenly_spaced, read_subject
from raysys.evaluate.summary import build_summary, format_summary
from raysys.evaluate.tables import PER_SUBJECT_COLUMNS, TABLE_COLUMNS, markdown_table, table_rows, write_csv
from raysys.registry.inference import synthesises_from_subsets

SPLITS = ("test", "val")
MODEL = "model"
PSNR_CAP = 100.0  # dB: a slice predicted exactly (infinite PSNR) counts as 100 dB, so no inf is written
PROBE_SLICES_PER_SUBJECT = 16


@dataclasses.dataclass
class EvaluationResult:
    """What ``evaluate`` wrote: ``out`` holds per_subject.csv, table.csv, table.md, figure.png, summary.json."""

    out: Path
    per_subject: list[dict[str, Any]]
    table: list[dict[str, Any]]
    summary: dict[str, Any]
    left_out: int
    run_id: str | None = None

    def format_summary(self) -> str:
        return format_summary(self.summary)


def _warn_only(line: str) -> None:
    """The default ``log``: progress is silent, ``warning: ...`` lines become ``warnings.warn``."""
    if line.startswith("warning: "):
        warnings.warn(line[len("warning: "):], stacklevel=4)


def method_label(i: int) -> str:
    """``model`` for the evaluated model, ``model:2``, ``model:3`` ... for the compare models."""
    return MODEL if i == 0 else f"{MODEL}:{i + 1}"


def _open(data: str, split: str, fold: int) -> tuple[Store, np.ndarray]:
    if split not in SPLITS:
        raise EvaluationError(f"split={split!r}: expected one of {', '.join(SPLITS)}")
    try:
        store = open_store(data)
        subjects = store.split_subjects(split, fold)
    except (StoreError, ValueError) as err:
        raise EvaluationError(str(err)) from err
    if subjects.size == 0:
        raise EvaluationError(f"split {split} of fold {fold} has no subjects in {store.url}")
    return store, subjects


def _load_models(uris: Sequence[str], store: Store, split_names: list[str], split: str, tracking_uri: str | None,
                 temperature: float | None, seed: int, log: Callable[[str], None]) -> list[ModelMethod]:
    from raysys.registry import RegistryError, load_model_flag

    methods = []
    for i, uri in enumerate(uris):
        try:
            inference = load_model_flag(uri, tracking_uri)
        except RegistryError as err:
            raise EvaluationError(str(err)) from err
        warning = check_overlap(uri, inference.meta, store, split_names, split)
        if warning:
            log(f"warning: {warning}")
        try:
            methods.append(ModelMethod(method_label(i), uri, inference, store.modalities, temperature, seed))
        except ValueError as err:
            raise EvaluationError(str(err)) from err
    families = {m.family for m in methods}
    if len(families) > 1:
        raise EvaluationError(f"--compare models must be of the model's family; got {sorted(families)}")
    return methods


def scored_modalities(models: Sequence[ModelMethod], store: Store) -> list[str]:
    """The modalities the cells range over: the evaluated model's, in store order (a model built on
    some of the store's modalities is scored on cells within them; so are the baselines). Every
    compare model must have them all."""
    modalities = [m for m in store.modalities if m in models[0].modalities]
    for other in models[1:]:
        lacking = [m for m in modalities if m not in other.modalities]
        if lacking:
            raise EvaluationError(f"--compare model {other.uri} lacks the modalities {lacking} of model {models[0].uri}")
    return modalities


def _disentanglement(method: ModelMethod, subject: SubjectSlices) -> dict[str, np.ndarray]:
    """f(s), z, modality, subject of up to ``PROBE_SLICES_PER_SUBJECT`` slices (``probes.collect_representations``)."""
    from raysys.models.disentangle.probes import collect_representations

    rows = evenly_spaced(subject.n, PROBE_SLICES_PER_SUBJECT)
    x = torch.as_tensor(method.images(subject, rows))
    available = torch.as_tensor(np.array([subject.available[m] for m in method.modalities]))[None].expand(len(rows), -1)
    x = method.inference._to_model_size(x * available[:, :, None, None, None])
    batch = {"images": x, "available": available, "subject": torch.full((len(rows),), subject.index, dtype=torch.long)}
    return collect_representations(method.inference.module, [batch])


def _disentanglement_metrics(reps: list[dict[str, np.ndarray]], seed: int, log: Callable[[str], None]) -> dict[str, float]:
    """``probes.disentanglement_metrics`` of the split; {} (with a warning) when the split is too
    small for them (fewer than 2 subjects or modalities)."""
    from raysys.models.disentangle.probes import disentanglement_metrics

    if not reps:
        return {}
    joined = {k: np.concatenate([r[k] for r in reps]) for k in reps[0]}
    try:
        return disentanglement_metrics(joined, seed=seed)
    except ValueError as err:
        log(f"warning: no disentanglement scores: {err}")
        return {}


def _figure_rows(subject: SubjectSlices, methods: Sequence[Any], family: str, modalities: list[str],
                 copy: CopyBaseline, store_modalities: list[str]) -> list[tuple[str, list]]:
    """Rows for figure.png: 2 slices x each available target of ``modalities`` (the scored ones),
    inputs = the subject's other ones (disentangle: the best copy source)."""
    have = [m for m in modalities if subject.available[m]]
    rows = []
    width = len(modalities) - 1 if synthesises_from_subsets(family) else 1  # input columns
    for r in evenly_spaced(subject.n, 4)[1:3] if subject.n > 2 else range(subject.n):
        r_ = np.array([r])
        for target in have:
            others = [m for m in have if m != target]
            if not others:
                continue
            inputs = tuple(others) if synthesises_from_subsets(family) else (copy.source(others, target) or others[0],)
            panels = [(f"in {m}", subject.centre(store_modalities.index(m))[r]) for m in inputs]
            panels += [("", None)] * (width - len(panels))
            for method in methods:
                pred = method.predict(subject, r_, inputs, [target]).get(target)
                panels.append((method.name, None if pred is None else pred[0]))
            panels.append((f"target {target}", subject.centre(store_modalities.index(target))[r]))
            rows.append((f"{subject.name} z{subject.position[r]} {target}", panels))
    return rows[:8]


def evaluate(model_uri: str, data: str, split: str = "test", fold: int = 0, out: str | Path = "evaluation",
             tracking_uri: str | None = None, compare: Sequence[str] = (), temperature: float | None = None,
             seed: int = 0, max_slices_per_subject: int = 0, batch_size: int = 64,
             log: Callable[[str], None] | None = None) -> EvaluationResult:
    """Evaluate ``model_uri`` (and ``compare``) on ``split`` (test = fold k, val = fold k+1) of store ``data``.

    Writes into ``out``: per_subject.csv, table.csv, table.md, figure.png, summary.json; with a
    tracking URI (argument or ``MLFLOW_TRACKING_URI``) also an MLflow evaluation run. Raises
    ``EvaluationError`` for a bad split/fold/store, a model that saw the split, or mixed families.
    ``log`` receives progress lines and warnings (default: warnings are ``warnings.warn``-ed,
    progress is silent).
    """
    log = log or _warn_only
    if batch_size < 1 or max_slices_per_subject < 0:
        raise EvaluationError("batch_size must be >= 1 and max_slices_per_subject >= 0")
    store, split_subjects = _open(data, split, fold)
    split_names = [store.subjects[i] for i in split_subjects]
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
    torch.manual_seed(seed)
    models = _load_models([model_uri, *compare], store, split_names, split, tracking_uri, temperature, seed, log)
    family, modalities = models[0].family, scored_modalities(models, store)
    train = store.split_subjects("train", fold)
    log(f"baselines from {len(train)} training subjects; evaluating {len(split_names)} {split} subjects")
    raw = any(m.raw_inputs for m in models)
    if raw and not store.has_raw:
        uri = next(m.uri for m in models if m.raw_inputs)
        raise EvaluationError(f"model {uri} was trained on raw inputs; store {store.url} has no raw images (--keep-raw)")
    copy = CopyBaseline.fit(store, train, max_slices_per_subject, raw=raw)
    mean = MeanBaseline.fit(store, train)
    methods: list[Any] = [*models, ZerosBaseline(), mean, copy]
    cells = family_cells(family, modalities)
    context = max(m.context for m in models)

    per_subject: list[dict[str, Any]] = []
    reps: dict[str, list[dict[str, np.ndarray]]] = {m.name: [] for m in models if family == "disentangle"}
    figure_subject: SubjectSlices | None = None
    for index in split_subjects:
        subject = read_subject(store, int(index), context, max_slices_per_subject, raw=raw)
        if subject.n == 0:
            log(f"{subject.name}: no slices with brain, skipped")
            continue
        if figure_subject is None or sum(subject.available.values()) > sum(figure_subject.available.values()):
            figure_subject = subject
        per_subject += _score_subject(subject, methods, subject_cells(cells, subject.available), store.modalities,
                                      store.value_range, batch_size)
        for m in models:
            if m.name in reps:
                reps[m.name].append(_disentanglement(m, subject))
        log(f"{subject.name}: {subject.n} slices scored")

    evaluated = {(r["inputs"], r["target"]) for r in per_subject}
    left_out = sum((c.label, c.target) not in evaluated for c in cells)
    names = [m.name for m in methods]
    table = table_rows(per_subject, cells, names)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "per_subject.csv", per_subject, PER_SUBJECT_COLUMNS)
    write_csv(out / "table.csv", table, TABLE_COLUMNS)
    (out / "table.md").write_text(markdown_table(table, cells, names, family, modalities))
    if figure_subject is not None:
        panel_figure(_figure_rows(figure_subject, methods, family, modalities, copy, store.modalities), store.value_range,
                     out / "figure.png")
    summary = build_summary(
        per_subject, family, modalities,
        {store.subjects[i]: {m for m, a in store.available(int(i)).items() if a} for i in split_subjects},
        model=MODEL, model_uri=model_uri, methods={m.name: m.uri for m in models}, split=split, fold=fold, model_modalities=modalities,
        inputs={m.name: "raw" if m.raw_inputs else "normalised" for m in models},
        store_id=store.store_id, data=store.url, n_subjects=len({r["subject"] for r in per_subject}),
        n_cells=len(evaluated), left_out=left_out, temperature=models[0].temperature if family == "mmhvae" else None,
        seed=seed, max_slices_per_subject=max_slices_per_subject,
        copy_ranking=copy.ranking, copy_inputs="raw" if raw else "normalised", mean_baseline_bins=mean.bins,
        disentanglement={k: _disentanglement_metrics(v, seed, log) for k, v in reps.items()} or None,
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    run_id = None
    if tracking_uri:
        from raysys.evaluate.tracking import log_evaluation

        run_id = log_evaluation(tracking_uri, out, summary, model_uri, split, fold, store.store_id, MODEL)
    return EvaluationResult(out, per_subject, table, summary, left_out, run_id)


def _score_subject(subject: SubjectSlices, methods: Sequence[Any], cells: Sequence[Cell], modalities: Sequence[str],
                   value_range: tuple[float, float], batch_size: int) -> list[dict[str, Any]]:
    """Per-subject rows: each method x cell, metrics averaged over the subject's slices.

    Slices go through the methods ``batch_size`` at a time; every prediction of one batch (all
    methods x targets) is scored in one metrics call. A baseline's prediction that does not
    depend on the input subset (``cache_key``) is scored once per subject and target.
    """
    index = {m: i for i, m in enumerate(modalities)}
    batches = [np.arange(start, min(subject.n, start + batch_size)) for start in range(0, subject.n, batch_size)]
    cache: dict[tuple, np.ndarray] = {}  # (method, target, key) -> [2, Z] psnr, ssim
    rows = []
    for inputs, group in group_by_inputs(cells).items():
        targets = [c.target for c in group]
        scores: dict[tuple[str, str], list[np.ndarray]] = {}
        for b, batch in enumerate(batches):
            pending: list[tuple[str, str, tuple | None, np.ndarray]] = []  # (method, target, cache key, prediction)
            for method in methods:
                key_of = getattr(method, "cache_key", None)
                keys = {t: None if key_of is None else key_of(inputs, t) for t in targets}
                todo = []
                for target, key in keys.items():
                    if key is not None and (method.name, target, key, b) in cache:
                        scores.setdefault((method.name, target), []).append(cache[(method.name, target, key, b)])
                    else:
                        todo.append(target)
                for target, pred in method.predict(subject, batch, inputs, todo).items():
                    pending.append((method.name, target, keys[target], pred))
            if not pending:
                continue
            truth = np.concatenate([subject.centre(index[target])[batch] for _, target, _, _ in pending])
            psnr, ssim = score_slices(np.concatenate([p for *_, p in pending]), truth,
                                      np.concatenate([subject.mask[batch]] * len(pending)), value_range)
            for i, (name, target, key, _) in enumerate(pending):
                value = np.stack([psnr[i * len(batch):(i + 1) * len(batch)], ssim[i * len(batch):(i + 1) * len(batch)]])
                scores.setdefault((name, target), []).append(value)
                if key is not None:
                    cache[(name, target, key, b)] = value
        label = "+".join(inputs)
        for method in methods:
            for target in targets:
                values = scores.get((method.name, target))
                if values is None:
                    continue  # the method does not apply to this cell (copy without another input)
                psnr, ssim = np.concatenate(values, axis=1)
                psnr = np.minimum(psnr, PSNR_CAP)
                rows.append({"method": method.name, "subject": subject.name, "inputs": label, "target": target,
                             "psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim))})
    return [r for r in rows if math.isfinite(r["psnr"]) and math.isfinite(r["ssim"])]
