"""Checks a driver runs before anything starts Ray, so a bad run fails in a second, not inside workers."""

from __future__ import annotations

from raysys.config import ConfigError


def check_batch_fits(data: str, fold: int, batch_size: int, flag: str = "--batch-size") -> None:
    """Batches hold slices of DISTINCT training subjects: ``batch_size`` may not exceed the train
    split's subjects of ``fold``. Raises ``ConfigError`` naming the flag, the store and the maximum."""
    from raysys.data import open_store

    store = open_store(data)
    subjects = len(store.split_subjects("train", fold))
    if batch_size > subjects:
        raise ConfigError(
            f"{flag} {batch_size}: the train split of fold {fold} in {store.url} has {subjects} subjects and a batch "
            f"holds slices of distinct subjects; use {flag} <= {subjects}"
        )
