"""Find a cohort's files: a BraTS-like folder or a manifest CSV -> {subject: {modality: path}}.

Modality names in file names are mapped to canonical names through ``MODALITY_ALIASES``
(case-insensitive). Problems found here (unknown modality, duplicate subject) fail only the
subject they belong to; the caller decides whether to go on.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path

IMAGE_MODALITIES = ("t1", "t1gd", "t2", "flair", "us", "pet")
"""Canonical image modalities, in the order stores list them by default."""
LABEL_MODALITIES = ("labels", "tissue")
"""Canonical non-image volumes: tumour labels (BraTS ids) and a tissue map (0 bg, 1 CSF, 2 GM, 3 WM)."""

MODALITY_ALIASES: dict[str, str] = {
    **{a: "t1" for a in ("t1", "t1w", "t1n", "mprage")},
    **{a: "t1gd" for a in ("t1gd", "t1ce", "t1c", "cet1", "t1-gd", "t1post", "t1wce")},
    **{a: "t2" for a in ("t2", "t2w")},
    **{a: "flair" for a in ("flair", "t2f", "t2flair", "t2-flair")},
    **{a: "us" for a in ("us", "ius")},
    **{a: "pet" for a in ("pet", "fdg")},
    **{a: "labels" for a in ("seg", "label", "labels")},
    **{a: "tissue" for a in ("tissue", "tissues", "dseg")},
}

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".mgz", ".mgh")


class ConvertError(Exception):
    """A conversion cannot start or go on (bad argument, unusable output, --strict failure)."""


@dataclasses.dataclass(frozen=True)
class Problem:
    """One bad input: the subject it fails (None if it cannot be attributed), the file, what is wrong."""

    subject: str | None
    path: str
    problem: str

    def line(self) -> str:
        who = self.subject if self.subject is not None else "-"
        return f"{self.path}: {self.problem} (subject {who})"


@dataclasses.dataclass
class Cohort:
    """Discovered files: ``subjects[subject][modality] = path`` plus the problems met."""

    subjects: dict[str, dict[str, str]]
    problems: list[Problem]


def canonical_modality(name: str) -> str | None:
    """Canonical modality for a (case-insensitive) alias, or None when unknown."""
    return MODALITY_ALIASES.get(name.strip().lower())


def _split_name(path: Path) -> tuple[str, str] | None:
    """``sub-001_t1ce.nii.gz`` -> ("sub-001", "t1ce"); BraTS 2023 ``X-000-t1n`` splits at the last '-'."""
    name = path.name
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            stem = name[: -len(suffix)]
            break
    else:
        return None
    separator = "_" if "_" in stem else "-"
    subject, _, modality = stem.rpartition(separator)
    if not subject or not modality:
        return None
    return subject, modality


def _add(cohort: Cohort, origins: dict[str, set[str]], subject: str, modality_name: str,
         path: str, origin: str) -> None:
    modality = canonical_modality(modality_name)
    if modality is None:
        known = ", ".join(IMAGE_MODALITIES + LABEL_MODALITIES)
        cohort.problems.append(Problem(subject, path, f"unknown modality name {modality_name!r} "
                                                     f"(known: {known} and their aliases)"))
        cohort.subjects.setdefault(subject, {})
        return
    origins.setdefault(subject, set()).add(origin)
    files = cohort.subjects.setdefault(subject, {})
    if modality in files:
        cohort.problems.append(Problem(subject, path, f"duplicate subject/modality: {modality} of "
                                                     f"subject {subject} is also given by {files[modality]}"))
        return
    files[modality] = path


def discover(source: str | Path, flag: str = "--input") -> Cohort:
    """Discover a cohort from a folder (searched recursively) or a manifest CSV.

    Folder: files ``<subject>_<modality>.nii[.gz]|.mgz``; a subject found in two different
    directories is a duplicate subject. Manifest: columns ``subject,modality,path`` (paths
    relative to the manifest's folder; more columns are ignored). ``flag``: the command-line flag
    that named ``source``, for the error lines.
    """
    source = Path(source)
    cohort = Cohort(subjects={}, problems=[])
    origins: dict[str, set[str]] = {}
    if source.is_file() and source.suffix.lower() == ".csv":
        _read_manifest(source, cohort, origins, flag)
    elif source.is_dir():
        for path in sorted(p for p in source.rglob("*") if not p.is_dir()):
            if not path.name.lower().endswith(VOLUME_SUFFIXES):
                continue
            parts = _split_name(path)
            if parts is None:
                cohort.problems.append(Problem(None, str(path), "file name is not <subject>_<modality>"
                                                                "(.nii|.nii.gz|.mgz)"))
                continue
            _add(cohort, origins, parts[0], parts[1], str(path), str(path.parent))
        for subject, dirs in origins.items():
            if len(dirs) > 1:
                cohort.problems.append(Problem(subject, sorted(dirs)[1], f"duplicate subject {subject}: "
                                                                         f"found in {sorted(dirs)}"))
    else:
        raise ConvertError(f"{flag} {source}: not a folder or a .csv manifest")
    return cohort


def _read_manifest(manifest: Path, cohort: Cohort, origins: dict[str, set[str]], flag: str = "--input") -> None:
    with open(manifest, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"subject", "modality", "path"} - set(reader.fieldnames or ())
        if missing:
            raise ConvertError(f"{flag} {manifest}: manifest lacks columns {sorted(missing)} "
                               f"(needs subject,modality,path)")
        for row in reader:
            path = Path(row["path"])
            if not path.is_absolute():
                path = manifest.parent / path
            _add(cohort, origins, row["subject"].strip(), row["modality"], str(path), "manifest")


_RANGE = re.compile(r"^(\d+):(\d+)$")


def parse_slices(slices: str) -> tuple[int, int] | None:
    """``"auto"`` -> None; ``"a:b"`` -> (a, b) canonical axial indices, b exclusive."""
    if slices == "auto":
        return None
    match = _RANGE.match(str(slices))
    if not match or int(match.group(1)) >= int(match.group(2)):
        raise ConvertError(f"--slices {slices!r}: expected 'auto' or 'a:b' with a < b")
    return int(match.group(1)), int(match.group(2))
