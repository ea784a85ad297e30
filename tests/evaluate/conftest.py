"""Model directories for the evaluation tests: untrained ``tiny`` models of both families, saved
with the training record of fold 0 of the session's phantom store (``tiny_store``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def training_record(store_url: str, fold: int = 0) -> dict:
    from raysys.data import open_store

    store = open_store(store_url)
    return {"store_id": store.store_id, "fold": fold, "data": store.url,
            "train_subjects": [store.subjects[i] for i in store.split_subjects("train", fold)],
            "val_subjects": [store.subjects[i] for i in store.split_subjects("val", fold)]}


def save_tiny_model(directory: Path, family: str, store_url: str, training: dict | None, seed: int = 0) -> Path:
    from raysys.data import open_store
    from raysys.models import build_model
    from raysys.registry import save_model_dir

    modalities = open_store(store_url).modalities
    torch.manual_seed(seed)
    config = {"image_size": 64} if family == "mmhvae" else {"image_size": (64, 64)}
    module = build_model(family, "tiny", modalities, **config)
    return save_model_dir(directory, family, "tiny", modalities, config, module.state_dict(), {"test": True},
                          training=training)


@pytest.fixture(scope="session")
def model_dirs(tiny_store, tmp_path_factory) -> dict[str, Path]:
    """``{"mmhvae", "disentangle", "mmhvae_old"}``: the last has no training record (an old model dir)."""
    root = tmp_path_factory.mktemp("eval-models")
    record = training_record(tiny_store)
    return {"mmhvae": save_tiny_model(root / "mmhvae", "mmhvae", tiny_store, record),
            "disentangle": save_tiny_model(root / "disentangle", "disentangle", tiny_store, record),
            "mmhvae_old": save_tiny_model(root / "mmhvae_old", "mmhvae", tiny_store, None, seed=1)}
