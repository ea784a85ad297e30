"""``generate_cohort``: a phantom cohort on disk, in parallel across subjects, written atomically."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .availability import resolve_rates
from .contrasts import ALL_MODALITIES, MR_MODALITIES
from .io import tumour_slice_index, write_nifti
from .preview import write_preview
from .subject import make_subject, subject_name, tumour_assignment
from .template import RESOLUTIONS, Template, load_template

MANIFEST_COLUMNS = ("subject", "modality", "path", "site")


@dataclass(frozen=True)
class CohortSpec:
    """Everything a worker needs besides the template (small, pickled per task)."""

    seed: int
    modalities: tuple[str, ...]
    rates: dict[str, float]


def validate_modalities(modalities: Sequence[str]) -> tuple[str, ...]:
    if isinstance(modalities, str):
        modalities = (modalities,)
    chosen = tuple(str(m).lower() for m in modalities)
    unknown = [m for m in chosen if m not in ALL_MODALITIES]
    if unknown:
        raise ValueError(f"modalities: unknown {unknown}; choose from {', '.join(ALL_MODALITIES)}")
    if not chosen:
        raise ValueError("modalities: give at least one modality")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"modalities: duplicates in {list(chosen)}")
    return chosen


def generate_cohort(out: str | Path, subjects: int = 20, seed: int = 0, resolution: int = 2,
                    modalities: Sequence[str] = MR_MODALITIES, tumour_fraction: float = 0.5,
                    missing: Mapping[str, float] | None = None, workers: int | None = None,
                    preview: bool = False) -> Path:
    """Generate ``subjects`` phantom subjects under ``out`` and return ``out/manifest.csv``.

    Layout: ``out/<sub>/<sub>_<modality>.nii.gz`` (float32, available modalities only),
    ``<sub>_seg.nii.gz`` (uint8 BraTS 0/1/2/4), ``<sub>_tissue.nii.gz`` (uint8 0 bg/1 CSF/2 GM/3 WM),
    ``out/manifest.csv`` (subject, modality, path relative to ``out``, site), ``out/cohort.json``
    (parameters and per-subject facts) and, with ``preview``, ``out/preview.png``.
    ``missing`` maps modality -> availability rate in [0, 1] (defaults in availability.DEFAULT_RATES).
    Output depends only on the arguments (not on ``workers``): same seed, byte-identical files.
    """
    if isinstance(subjects, bool) or not isinstance(subjects, (int, np.integer)) or subjects < 1:
        raise ValueError(f"subjects must be a positive integer, got {subjects!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS} (mm), got {resolution!r}")
    if not 0.0 <= float(tumour_fraction) <= 1.0:
        raise ValueError(f"tumour_fraction must be in [0, 1], got {tumour_fraction!r}")
    if workers is not None and (not isinstance(workers, (int, np.integer)) or workers < 1):
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
    chosen = validate_modalities(modalities)
    spec = CohortSpec(seed=int(seed), modalities=chosen, rates=resolve_rates(chosen, missing))
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)

    template = load_template(resolution)
    tumours = tumour_assignment(int(subjects), float(tumour_fraction), int(seed))
    preview_index = int(np.argmax(tumours)) if preview else -1
    tasks = [(i, bool(tumours[i]), i == preview_index) for i in range(int(subjects))]
    staging = out / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        n_workers = min(workers or _available_cpus(), len(tasks))
        if n_workers == 1:
            _set_worker_state(template, spec, staging)
            results = [_generate_one(task) for task in tasks]
        else:
            with ProcessPoolExecutor(n_workers, mp_context=_pool_context(), initializer=_set_worker_state,
                                     initargs=(template, spec, staging)) as pool:
                results = list(pool.map(_generate_one, tasks))
        manifest = _publish(out, staging, results, spec, resolution, float(tumour_fraction))
        preview_result = next((r for r in results if r["preview"] is not None), None)
        if preview_result is not None:
            write_preview(out / "preview.png", preview_result["subject"], **preview_result["preview"],
                          available=preview_result["available"], site=preview_result["site"])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _pool_context() -> multiprocessing.context.BaseContext:
    """forkserver: never forks a parent that may run threads (Ray, Dask). It re-imports the
    caller's ``__main__`` in the workers (scripts need the usual ``if __name__ == "__main__"``
    guard); code piped on stdin cannot be re-imported, so there we fall back to fork."""
    methods = multiprocessing.get_all_start_methods()
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    unimportable_main = (main_file is not None and getattr(main, "__spec__", None) is None
                         and not os.path.exists(main_file))
    if "forkserver" in methods and not (unimportable_main and "fork" in methods):
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_WORKER: dict = {}


def _set_worker_state(template: Template, spec: CohortSpec, staging: Path) -> None:
    _WORKER.update(template=template, spec=spec, staging=staging)


def _generate_one(task: tuple[int, bool, bool]) -> dict:
    """Make and write one subject into the staging directory; return its manifest rows and facts."""
    index, has_tumour, with_preview = task
    template: Template = _WORKER["template"]
    spec: CohortSpec = _WORKER["spec"]
    subject = make_subject(template, index, spec.seed, spec.modalities, spec.rates, has_tumour,
                           all_modalities=with_preview)
    folder = _WORKER["staging"] / subject.name
    folder.mkdir()
    rows = []
    volumes = [(m, subject.images[m]) for m in spec.modalities if subject.available[m]]
    volumes += [("seg", subject.labels), ("tissue", subject.tissue)]
    for modality, data in volumes:
        filename = f"{subject.name}_{modality}.nii.gz"
        write_nifti(folder / filename, data, template.affine)
        rows.append({"subject": subject.name, "modality": modality, "path": f"{subject.name}/{filename}",
                     "site": subject.site.name})
    preview = None
    if with_preview:
        z = tumour_slice_index(subject.labels, subject.tissue > 0)
        preview = {"slices": {m: image[:, :, z] for m, image in subject.images.items()},
                   "labels": subject.labels[:, :, z], "tissue": subject.tissue[:, :, z]}
    tumour = subject.tumour
    return {
        "subject": subject.name,
        "site": subject.site.name,
        "available": subject.available,
        "rows": rows,
        "tumour": None if tumour is None else {
            "centre_mni_mm": [round(float(v), 2) for v in template.affine[:3, :3] @ (tumour.centre_mm / template.spacing_mm)
                              + template.affine[:3, 3]],
            "radius_mm": round(tumour.radius_mm, 2),
            "voxels": {str(k): int((subject.labels == k).sum()) for k in (1, 2, 4)},
        },
        "preview": preview,
    }


def _publish(out: Path, staging: Path, results: list[dict], spec: CohortSpec, resolution: int,
             tumour_fraction: float) -> Path:
    """Move finished subjects into ``out`` and write the manifest last (atomically)."""
    old_manifest = out / "manifest.csv"
    new_names = {r["subject"] for r in results}
    if old_manifest.exists():  # drop subjects of a previous, larger cohort in the same folder
        with old_manifest.open(newline="") as handle:
            stale = {row["subject"] for row in csv.DictReader(handle)} - new_names
        for name in stale:
            shutil.rmtree(out / name, ignore_errors=True)
    for result in results:
        target = out / result["subject"]
        if target.exists():
            shutil.rmtree(target)
        (staging / result["subject"]).rename(target)

    tmp = out / ".manifest.csv.tmp"
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for result in results:
            writer.writerows(result["rows"])
    facts = {
        "generator": "data_prep.phantom",
        "template": "MNI152 2009 (nilearn)",
        "seed": spec.seed, "resolution_mm": resolution, "modalities": list(spec.modalities),
        "availability_rates": spec.rates, "tumour_fraction": tumour_fraction,
        "subjects": {r["subject"]: {"site": r["site"], "available": r["available"], "tumour": r["tumour"]}
                     for r in results},
    }
    (out / "cohort.json").write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, old_manifest)
    return old_manifest
