"""Refuse to score a model on subjects it was trained or validated on.

The model meta's ``training`` record (``raysys.registry.format.training_info``) names the
store id, fold and train/val subjects. The check is by subject NAME, so it also applies when
the evaluation store differs from the training store; with the same store id and no recorded
subject lists, the lists are recomputed from the recorded fold. Old model directories without
a ``training`` record are evaluated with a warning.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from raysys.data.store import Store


class EvaluationError(ValueError):
    """Bad evaluation input (split, fold, refused overlap, incompatible models); one-line message."""


def seen_subjects(meta: Mapping[str, Any], store: Store) -> set[str] | None:
    """Names of the subjects the model trained or validated on; None when the meta does not say."""
    training = meta.get("training")
    if not training:
        return None
    names = list(training.get("train_subjects") or []) + list(training.get("val_subjects") or [])
    if not names and training.get("store_id") == store.store_id and training.get("fold") is not None:
        fold = int(training["fold"])
        names = [store.subjects[i] for split in ("train", "val") for i in store.split_subjects(split, fold)]
    return set(names) if names else None


def check_overlap(uri: str, meta: Mapping[str, Any], store: Store, subjects: Sequence[str], split: str) -> str | None:
    """Raise ``EvaluationError`` naming the overlap; return a warning text when unverifiable, else None."""
    seen = seen_subjects(meta, store)
    if seen is None:
        return (f"model {uri} records no training subjects (a model directory from before the 'training' record): "
                f"cannot check that the {split} split was unseen")
    overlap = sorted(set(subjects) & seen)
    if overlap:
        training = meta.get("training", {})
        raise EvaluationError(
            f"refused: the {split} split shares {len(overlap)} subject(s) with the training/validation data of model {uri} "
            f"(store {training.get('store_id')}, fold {training.get('fold')}): {', '.join(overlap)}")
    return None
