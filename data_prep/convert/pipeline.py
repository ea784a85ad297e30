"""``convert``: discover -> stage subjects in parallel -> assemble whole shards -> mark complete."""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from raysys.data import layout

from . import assemble, scheduling
from .discover import IMAGE_MODALITIES, LABEL_MODALITIES, ConvertError, Problem, canonical_modality, \
    discover, parse_slices
from .normalise import METHODS, RAW_PERCENTILE, RAW_RANGE, VALUE_RANGES
from .subject import COMPRESSIONS, DEFAULT_COMPRESSION, SubjectJob, stage

CONVERTER_VERSION = "1.2"
DTYPES = ("float32", "float16")
DEFAULT_SHARD_SLICES = 32
"""Slices per shard: reads (bench/data_read.py sweep) and assembly got faster up to 16-64; 32 (docs/readme/30-store.md)."""


@dataclasses.dataclass
class ConversionReport:
    """What a conversion did. ``failures`` lists every bad input, one line each."""

    output: str
    subjects: list[str]                  # converted subjects, in store order
    failures: list[Problem]
    resumed: list[str]                   # subjects found finished from an earlier run (not redone)
    n_slices: int
    seconds: float
    already_complete: bool = False
    processed: list[str] = dataclasses.field(default_factory=list)   # subjects (re)processed by this run
    phase_seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # staging, assembly

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        """A table of failed subjects (empty string when none failed)."""
        if not self.failures:
            return ""
        rows = [("subject", "file", "problem")] + [(p.subject or "-", p.path, p.problem) for p in self.failures]
        widths = [max(len(r[i]) for r in rows) for i in range(2)]
        lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in rows]
        return "\n".join([f"{len(self.failures)} problem(s); converted {len(self.subjects)} subject(s):", *lines])


def _check_arguments(size, normalise, dtype, folds, workers, shard_slices, compression) -> tuple[int, int]:
    if len(tuple(size)) != 2 or any(int(s) < 8 for s in size):
        raise ConvertError(f"--size {size}: expected two integers H W, each >= 8")
    if normalise not in METHODS:
        raise ConvertError(f"--normalise {normalise!r}: expected one of {', '.join(METHODS)}")
    if dtype not in DTYPES:
        raise ConvertError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    if int(folds) < 3:
        raise ConvertError(f"--folds {folds}: need >= 3 (test = fold k, val = fold k+1, train = the rest)")
    if workers is not None and int(workers) < 1:
        raise ConvertError(f"--workers {workers}: must be >= 1")
    if compression not in COMPRESSIONS:
        raise ConvertError(f"--compression {compression!r}: expected one of {', '.join(COMPRESSIONS)}")
    if int(shard_slices) < 1:
        raise ConvertError(f"shard_slices {shard_slices}: must be >= 1")
    return int(size[0]), int(size[1])


def _resolve_modalities(modalities, cohort) -> list[str]:
    if modalities is None:
        found = {m for files in cohort.subjects.values() for m in files}
        chosen = [m for m in IMAGE_MODALITIES if m in found]
        if not chosen:
            raise ConvertError("no image modality found in --input")
        return chosen
    chosen = []
    for name in modalities:
        canonical = canonical_modality(name)
        if canonical is None or canonical in LABEL_MODALITIES:
            raise ConvertError(f"--modalities {name!r}: not an image modality alias "
                               f"(canonical: {', '.join(IMAGE_MODALITIES)})")
        if canonical not in chosen:
            chosen.append(canonical)
    return chosen


def convert(input: str, output: str, modalities=None, size=(64, 64), slices="auto",  # noqa: A002
            normalise="zscore", dtype="float32", scheduler="threads", workers=None, folds=5, seed=0,
            strict=False, shard_slices: int = DEFAULT_SHARD_SLICES, progress: bool = True,
            compression: str = DEFAULT_COMPRESSION, keep_raw: bool = False) -> ConversionReport:
    """Convert a NIfTI cohort (folder or manifest CSV) into a sharded Zarr v3 slice store.

    Bad subjects are reported and skipped (``strict=True`` raises at the first one). Re-running
    with the same arguments resumes an interrupted conversion. Raises ``ConvertError`` for bad
    arguments, an unusable output, or when no subject could be converted. ``compression``:
    ``"lz4"`` (default, Blosc-LZ4 chunks), ``"zstd"`` (Blosc-zstd) or ``"none"`` (no compressor:
    raw chunk bytes). ``keep_raw``: also store ``raw/<modality>``, the images with per-volume
    scaling only (``normalise.RAW_RANGE``; root attrs ``has_raw``, ``raw_range``, ``raw_scaling``).
    """
    began = time.perf_counter()
    size = _check_arguments(size, normalise, dtype, folds, workers, shard_slices, compression)
    slice_range = parse_slices(slices)
    output = str(output)
    if scheduler != "threads" and output.startswith("memory://"):
        raise ConvertError(f"--output {output}: a memory:// store lives in one process; use --scheduler threads")
    cohort = discover(input)
    chosen = _resolve_modalities(modalities, cohort)
    failures = list(cohort.problems)
    if strict and failures:
        raise ConvertError(failures[0].line())
    failed = {p.subject for p in failures}
    wanted = set(chosen) | set(LABEL_MODALITIES)
    jobs_files = {}
    for subject, files in sorted(cohort.subjects.items()):
        if subject in failed:
            continue
        files = {m: p for m, p in files.items() if m in wanted}
        if not any(m in chosen for m in files):
            failures.append(Problem(subject, next(iter(cohort.subjects[subject].values()), "-"),
                                    f"no image of modalities {chosen}"))
            if strict:
                raise ConvertError(failures[-1].line())
            continue
        jobs_files[subject] = files

    arguments = {"input": str(os.path.abspath(input)), "modalities": chosen, "size": list(size),
                 "slices": str(slices), "normalise": normalise, "dtype": dtype, "folds": int(folds),
                 "seed": int(seed), "shard_slices": int(shard_slices), "converter_version": CONVERTER_VERSION,
                 "files": {s: dict(sorted(f.items())) for s, f in jobs_files.items()}}
    if compression != "zstd":   # absent for zstd: zstd stores started before the option still resume
        arguments["compression"] = compression
    if keep_raw:                # absent when off: stores converted before the option keep their fingerprint
        arguments["keep_raw"] = True
    root, complete = assemble.open_output(output, assemble.fingerprint_of(arguments), arguments)
    if complete:
        attrs = dict(root.attrs)
        return ConversionReport(output, list(attrs["subjects"]), failures, list(attrs["subjects"]),
                                int(root[layout.SLICE_Z].shape[0]), time.perf_counter() - began,
                                already_complete=True)

    done = assemble.staged_subjects(root)
    root.require_group(layout.STAGING)  # created once here, so tasks never race on its metadata
    resumed = sorted(s for s in done if s in jobs_files)
    pending = [SubjectJob(output, s, files, size, slice_range, normalise, dtype, strict, compression, bool(keep_raw))
               for s, files in jobs_files.items() if s not in done]
    staging_began = time.perf_counter()
    try:
        results = scheduling.run(stage, [(job,) for job in pending], scheduler, workers,
                                 "staging subjects", progress)
    except Exception as error:
        if strict:
            raise ConvertError(f"{error} (--strict: stopped; re-run to resume)") from error
        raise
    for job, result in zip(pending, results):
        if result.error is not None:
            failures.append(Problem(job.subject, result.path or "-", result.error.split(": ", 1)[-1]))
    done = {s: m for s, m in assemble.staged_subjects(root).items() if s in jobs_files}
    if not done:
        raise ConvertError("no subject could be converted:\n" + "\n".join(p.line() for p in failures))
    subjects = sorted(done)
    assembly_began = time.perf_counter()
    _assemble(root, output, subjects, done, chosen, size, dtype, int(shard_slices), int(folds), int(seed),
              normalise, scheduler, workers, progress, failures, compression, bool(keep_raw))
    return ConversionReport(output, subjects, failures, resumed, int(sum(done[s]["n_slices"] for s in subjects)),
                            time.perf_counter() - began, processed=sorted(job.subject for job in pending),
                            phase_seconds={"staging": assembly_began - staging_began,
                                           "assembly": time.perf_counter() - assembly_began})


def _assemble(root, output, subjects, done, chosen, size, dtype, shard_slices, folds, seed, normalise,
              scheduler, workers, progress, failures, compression=DEFAULT_COMPRESSION, keep_raw=False) -> None:
    """Write the final arrays (whole shards per task), the index arrays and attrs; mark complete."""
    counts = [done[s]["n_slices"] for s in subjects]
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    arrays = [f"{layout.IMAGES}/{m}" for m in chosen] + [layout.MASK]
    if keep_raw:
        arrays += [f"{layout.RAW}/{m}" for m in chosen]
    arrays += [name for name, key in ((layout.LABELS, "has_labels"), (layout.TISSUE, "has_tissue"))
               if any(done[s][key] for s in subjects)]
    plan = assemble.Plan(output, tuple(subjects), tuple(int(x) for x in start), tuple(arrays),
                         staged=tuple(tuple(done[s]["arrays"]) for s in subjects))
    assemble.create_arrays(root, plan, size, dtype, shard_slices, compression)
    ranges = assemble.blocks(int(start[-1]), shard_slices, tasks_hint=4 * (workers or os.cpu_count() or 1))
    assembly_scheduler = "threads" if scheduler in ("processes", "synchronous") else scheduler
    scheduling.run(assemble.assemble_block, [(plan, a, b) for a, b in ranges], assembly_scheduler, workers,
                   "assembling shards", progress)

    availability = np.array([[m in done[s]["modalities"] for m in chosen] for s in subjects], dtype=bool)
    fold = assemble.assign_folds([tuple(row) for row in availability], folds, seed)
    index_arrays = {
        layout.AVAILABILITY: availability,
        layout.SLICE_SUBJECT: np.repeat(np.arange(len(subjects), dtype=np.int32), counts),
        layout.SLICE_Z: np.concatenate([np.asarray(done[s]["z"], dtype=np.int32) for s in subjects]),
        layout.SUBJECT_START: start,
        layout.FOLD: fold,
    }
    for name, data in index_arrays.items():
        root.create_array(name, shape=data.shape, dtype=data.dtype, chunks=data.shape, overwrite=True,
                          **({"compressors": None} if compression == "none" else {}))[...] = data
    spacing = np.median([done[s]["spacing"] for s in subjects], axis=0)
    attrs = dict(root.attrs)
    attrs.update({
        "modalities": list(chosen),
        "normalisation": normalise,
        "value_range": list(VALUE_RANGES[normalise]),
        "spacing": [float(x) for x in spacing],
        "size": list(size),
        "dtype": dtype,
        "shard_slices": shard_slices,
        "compression": compression,
        "subjects": list(subjects),
        "folds": folds,
        "seed": seed,
        "source_sha256": {s: done[s]["sha256"] for s in subjects},
        "subject_normalisation": {s: done[s]["normalisation"] for s in subjects},
        "subject_spacing": {s: done[s]["spacing"] for s in subjects},
        "has_labels": layout.LABELS in arrays,
        "has_tissue": layout.TISSUE in arrays,
        "has_raw": bool(keep_raw),
        **({"raw_range": list(RAW_RANGE), "raw_scaling": f"x / p{RAW_PERCENTILE:g} of the brain, clipped"} if keep_raw else {}),
        "labels_available": [bool(done[s]["has_labels"]) for s in subjects],
        "failed": [dataclasses.asdict(p) for p in failures],
        "converter_version": CONVERTER_VERSION,
        "complete": False,
    })
    root.attrs.put(attrs)
    if layout.STAGING in root:
        del root[layout.STAGING]
    root.attrs.update({"complete": True})  # last write: readers trust nothing before it
