"""A subject's NIfTI files preprocessed for a model give the training store's slices, bit for bit,
and the preprocessing travels with the registered model."""

from __future__ import annotations

import numpy as np
import pytest
from predict_helpers import subject_files

from raysys.data import SliceDataset, open_store
from raysys.predict.preprocess import Preprocessing, PredictError, prepare_subject, preprocessing_of, with_context
from raysys.registry.format import preprocessing_record, training_info


def test_preprocessed_slices_equal_the_stores(tiny_store, phantom_dir):
    store = open_store(tiny_store)
    spec = Preprocessing.from_record(preprocessing_record(store.attrs))
    missing_one = next(i for i in range(len(store.subjects)) if not all(store.available(i).values()))
    for index in (0, missing_one):
        subject = store.subjects[index]
        prepared = prepare_subject(subject, subject_files(phantom_dir, subject), spec)
        first, stop = store.subject_start[index], store.subject_start[index + 1]
        assert np.array_equal(prepared.keep, store.slice_z[first:stop])
        assert list(prepared.available) == [store.available(index)[m] for m in store.modalities]
        for m, modality in enumerate(store.modalities):
            expected = store.volume(index, modality) if prepared.available[m] else np.zeros_like(prepared.images[:, m])
            assert np.array_equal(prepared.images[:, m], expected), (subject, modality)


def test_training_info_records_the_stores_preprocessing(tiny_store):
    store = open_store(tiny_store)
    record = training_info({"data": tiny_store, "fold": 0})["preprocessing"]
    assert record == {"size": [64, 64], "slices": "auto", "normalise": "zscore", "value_range": [-5.0, 5.0],
                      "modalities": store.modalities, "dtype": "float32",
                      "converter_version": store.attrs["converter_version"]}


def test_a_model_without_the_record_asks_for_the_store(tiny_store):
    meta = {"family": "mmhvae", "modalities": open_store(tiny_store).modalities, "uri": "models:/mmhvae/1"}
    with pytest.raises(PredictError, match="--store STORE"):
        preprocessing_of(meta)
    assert preprocessing_of(meta, store=tiny_store).size == (64, 64)
    with pytest.raises(PredictError, match="not the model's"):
        preprocessing_of({**meta, "modalities": ["t1", "t2"]}, store=tiny_store)


def test_context_repeats_the_edge_slices_as_the_dataset_does(tiny_store):
    store = open_store(tiny_store)
    dataset = SliceDataset(tiny_store, split="all", context=3)
    first, stop = int(store.subject_start[0]), int(store.subject_start[1])
    volume = np.stack([store.volume(0, m) for m in store.modalities], axis=1)     # [Z, M, H, W]
    stacked = with_context(volume * np.array([store.available(0)[m] for m in store.modalities])[:, None, None],
                           3)
    for row in (0, 1, stop - first - 1):
        assert np.array_equal(stacked[row], dataset[first + row]["images"].numpy())
