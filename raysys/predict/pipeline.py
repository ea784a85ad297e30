"""Per-subject NIfTI prediction over a cohort with Ray Data: one model load per actor.

The driver discovers the subjects (``data_prep.convert.discover``: a folder in the converter's
layout or a manifest.csv), loads the model once (registry access stays on the driver) and
``ray.put``s (meta, state_dict), so actors on any node rebuild it without the registry. Subjects
are rows of a Ray Dataset; ``map_batches`` with an ``ActorPoolStrategy`` pool (a GPU or a share
of one per actor when the cluster has GPUs) preprocesses, predicts, maps back and writes each
subject (``process_subject``) and returns its manifest rows; Ray Data shows the progress bar.
``OUT`` must be a path every node sees. A bad subject becomes an error row naming its file;
the others are still written, and ``PredictionReport.exit_code`` is 1.

``OUT/manifest.csv``: ``subject,modality,path,synthesised``: the written files (paths relative
to OUT) and the subject's inputs (absolute paths, not copied), so OUT/manifest.csv is again an
input of the converter or of this pipeline.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from data_prep.convert.discover import ConvertError, discover
from data_prep.convert.volumes import InputError
from raysys.predict.native import Reference, to_native, write_atomic
from raysys.predict.predictor import Predictor
from raysys.predict.preprocess import Preprocessing, PredictError, prepare_subject, preprocessing_of

MANIFEST = "manifest.csv"
COLUMNS = ("subject", "modality", "path", "synthesised")


@dataclasses.dataclass
class PredictionReport:
    """What a run wrote: the manifest rows, and ``errors`` {subject: "<path>: <problem>"}."""

    out: Path
    rows: list[dict[str, Any]]
    errors: dict[str, str]

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    @property
    def written(self) -> int:
        return sum(bool(r["synthesised"]) for r in self.rows)

    def summary(self, what: str = "files") -> str:
        """The line a command prints at the end, e.g. ``wrote 6 files for 4 subjects into OUT; ...``."""
        subjects = len({r["subject"] for r in self.rows})
        return (f"wrote {self.written} {what} for {subjects} subjects into {self.out}; manifest "
                f"{os.path.join(self.out, MANIFEST)}; {len(self.errors)} subject(s) failed")


def output_path(out_dir: str, subject: str, name: str) -> tuple[str, str]:
    """(absolute path, path relative to OUT) of ``<subject>/<subject>_<name>.nii.gz``."""
    relative = f"{subject}/{subject}_{name}.nii.gz"
    return os.path.join(out_dir, relative), relative


def process_subject(subject: str, files: Mapping[str, str], predictor: Predictor, spec: Preprocessing,
                    out_dir: str) -> list[dict[str, Any]]:
    """Preprocess, predict, map back and write one subject -> its manifest rows (plus ``error``:
    "" or "<path>: <problem>" in a single row when the subject failed; nothing written then)."""
    try:
        prepared = prepare_subject(subject, files, spec)
        outputs = predictor.outputs(prepared)
        reference = Reference(prepared.reference)
        images = [(o, reference.image(to_native(o.slices, prepared.keep, prepared.brain, o.order, o.masked), o.dtype))
                  for o in outputs]
    except Exception as error:  # noqa: BLE001 - one bad subject must not stop the cohort
        if not isinstance(error, InputError):
            error = InputError(next(iter(files.values()), subject), f"unexpected {type(error).__name__}: {error}")
        return [{"subject": subject, "modality": "", "path": error.path, "synthesised": False, "error": str(error)}]
    rows = [{"subject": subject, "modality": m, "path": os.path.abspath(p), "synthesised": False, "error": ""}
            for m, p in prepared.inputs.items()]
    for output, image in images:     # every image is computed before the first file is written
        path, relative = output_path(out_dir, subject, output.name)
        write_atomic(image, path)
        rows.append({"subject": subject, "modality": output.name, "path": relative, "synthesised": True, "error": ""})
    return rows


class SubjectWorker:
    """The Ray Data actor: builds the model and the predictor once, then processes subjects."""

    def __init__(self, model, predictor: type[Predictor], options: Mapping[str, Any], spec: Preprocessing,
                 out_dir: str, use_gpu: bool):
        import ray
        import torch

        from raysys.registry.format import build_module
        from raysys.registry.inference import wrap

        meta, weights = ray.get(model) if isinstance(model, ray.ObjectRef) else model
        device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
        self.predictor = predictor(wrap(build_module(meta, weights, device), meta, device), **options)
        self.spec, self.out_dir = spec, out_dir

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, list]:
        rows = []
        for subject, files in zip(batch["subject"], batch["files"]):
            rows += process_subject(str(subject), json.loads(str(files)), self.predictor, self.spec, self.out_dir)
        return {key: [r[key] for r in rows] for key in (*COLUMNS, "error")}


def connect_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """``address`` (``--address``), else ``RAY_ADDRESS`` (``ray job submit``), else a new local Ray."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address)
    elif os.environ.get("RAY_ADDRESS"):
        ray.init()  # num_cpus would raise when connecting to a cluster
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False)


def load_model(model_uri: str, tracking_uri: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(meta, state_dict) of a model directory or ``models:/`` / ``runs:/`` URI, on the CPU."""
    from raysys.registry import RegistryError, load_model_flag

    try:
        inference = load_model_flag(model_uri, tracking_uri)
    except RegistryError as error:
        raise PredictError(str(error)) from error
    return inference.meta, inference.module.state_dict()


def gpus_per_actor(actors: int) -> float:
    """1 GPU per actor when the cluster has enough, else an equal share of them; 0 without GPUs."""
    import ray

    gpus = float(ray.cluster_resources().get("GPU", 0))
    return 0.0 if gpus == 0 else min(1.0, gpus / actors)


def run_predictions(model_uri: str, input_dir: str, out_dir: str, predictor: type[Predictor],
                    options: Mapping[str, Any] | None = None, *, tracking_uri: str | None = None,
                    store: str | None = None, address: str | None = None, actors: int = 1,
                    gpus: float | None = None, num_cpus: int | None = None, input_flag: str = "--input",
                    log: Callable[[str], None] = lambda line: None) -> PredictionReport:
    """Run ``predictor`` over every subject of ``input_dir``; write OUT/<subj>/... and OUT/manifest.csv.

    ``gpus``: GPUs per actor (None: ``gpus_per_actor``). ``store``: read the preprocessing from
    this training store instead of the model's record. ``input_flag``: the command's flag for
    ``input_dir``, named in its error lines. Raises ``PredictError`` before any work
    for a bad model, input or option; per-subject problems are in the report's ``errors``.
    """
    options = dict(options or {})
    if actors < 1:
        raise PredictError(f"--actors {actors}: must be >= 1")
    out_dir = os.path.abspath(out_dir)
    try:
        cohort = discover(os.path.abspath(input_dir), input_flag)
    except ConvertError as error:
        raise PredictError(str(error)) from error
    if not cohort.subjects:
        raise PredictError(f"{input_flag} {input_dir}: no subject found (expected <subject>/<subject>_<modality>.nii.gz or a manifest.csv)")
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
    meta, weights = load_model(model_uri, tracking_uri)
    predictor.check(meta, **options)
    spec = preprocessing_of(meta, store)

    errors = {p.subject: p.line() for p in cohort.problems if p.subject is not None}
    for p in cohort.problems:
        if p.subject is None:
            log(f"warning: {p.line()}")
    items = [{"subject": s, "files": json.dumps(files)} for s, files in sorted(cohort.subjects.items()) if s not in errors]
    rows: list[dict[str, Any]] = []
    if items:
        import ray

        connect_ray(address, num_cpus)
        gpus = gpus_per_actor(actors) if gpus is None else float(gpus)
        log(f"{len(items)} subjects, {actors} actor(s), {gpus:g} GPU(s) per actor")
        model = ray.put((meta, weights))
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            SubjectWorker, batch_size=1, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1,
            num_gpus=gpus or None,
            fn_constructor_kwargs={"model": model, "predictor": predictor, "options": options, "spec": spec,
                                   "out_dir": out_dir, "use_gpu": gpus > 0})
        for row in dataset.take_all():
            if row["error"]:
                errors[str(row["subject"])] = str(row["error"])
            else:
                rows.append({k: (bool(row[k]) if k == "synthesised" else str(row[k])) for k in COLUMNS})
    rows.sort(key=lambda r: r["subject"])     # stable: inputs, then outputs, each in model order
    write_manifest(out_dir, rows)
    for subject, error in sorted(errors.items()):
        log(f"error: {error}")
    return PredictionReport(Path(out_dir), rows, errors)


def write_manifest(out_dir: str, rows: list[dict[str, Any]]) -> None:
    os.makedirs(out_dir, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({**r, "synthesised": str(bool(r["synthesised"])).lower()} for r in rows)
    tmp = os.path.join(out_dir, f".{MANIFEST}.{uuid.uuid4().hex}.tmp")
    Path(tmp).write_text(text.getvalue())
    os.replace(tmp, os.path.join(out_dir, MANIFEST))
