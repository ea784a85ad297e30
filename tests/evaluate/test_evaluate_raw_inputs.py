"""raysys.evaluate on a model trained on raw inputs: it is given the raw images and scored
against the normalised ones (harmonisation cells: raw input -> normalised target)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raysys.data import open_store
from raysys.evaluate import evaluate
from raysys.evaluate.methods import ModelMethod
from raysys.evaluate.overlap import EvaluationError
from raysys.evaluate.scoring import score_slices
from raysys.evaluate.slices import read_subject
from raysys.models import build_model
from raysys.registry import load, save_model_dir
from raysys.registry.format import training_info


@pytest.fixture(scope="module")
def raw_model(raw_store, tmp_path_factory):
    store = open_store(raw_store)
    torch.manual_seed(0)
    config = {"image_size": 64, "data_range": list(store.value_range), "input_range": list(store.raw_range)}
    module = build_model("mmhvae", "tiny", store.modalities, **config)
    return save_model_dir(tmp_path_factory.mktemp("raw-model") / "m", "mmhvae", "tiny", store.modalities, config,
                          module.state_dict(), {"test": True}, training=training_info({"data": raw_store, "fold": 0, "inputs": "raw"}))


def test_the_model_is_given_the_raw_images(raw_store, raw_model):
    store = open_store(raw_store)
    method = ModelMethod("model", str(raw_model), load(str(raw_model)), store.modalities)
    assert method.raw_inputs
    subject = read_subject(store, int(store.split_subjects("test", 0)[0]), raw=True, max_slices=2)
    rows = np.arange(subject.n)
    assert np.array_equal(method.images(subject, rows), subject.raw[rows]) and subject.raw.any()
    with pytest.raises(ValueError, match="raw=True"):
        method.images(read_subject(store, int(store.split_subjects("test", 0)[0]), max_slices=2), rows)


def test_harmonisation_cells_score_raw_inputs_against_normalised_targets(raw_store, raw_model, tiny_store, tmp_path):
    result = evaluate(str(raw_model), raw_store, out=tmp_path / "raw", max_slices_per_subject=2, temperature=0.0)
    assert result.summary["inputs"] == {"model": "raw"}
    harmonisation = [r for r in result.per_subject if r["method"] == "model" and r["target"] in r["inputs"].split("+")]
    assert harmonisation and all(np.isfinite(r["psnr"]) for r in harmonisation)
    assert result.summary["copy_inputs"] == "raw"
    # one-input harmonisation: the copy row is the raw target itself, scored against the normalised one
    store = open_store(raw_store)
    target = store.modalities[0]
    copy_row = next(r for r in result.per_subject if r["method"] == "baseline:copy" and r["inputs"] == target
                    and r["target"] == target)
    subject = read_subject(store, copy_row["subject"], raw=True, max_slices=2)
    psnr, ssim = score_slices(subject.centre(0, raw=True), subject.centre(0), subject.mask, store.value_range)
    assert copy_row["psnr"] == pytest.approx(float(np.mean(psnr)), rel=1e-5)
    assert copy_row["ssim"] == pytest.approx(float(np.mean(ssim)), rel=1e-5)
    with pytest.raises(EvaluationError, match="trained on raw inputs"):
        evaluate(str(raw_model), tiny_store, out=tmp_path / "x", max_slices_per_subject=2)
