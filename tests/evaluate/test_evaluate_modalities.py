"""raysys.evaluate on a model built on some of the store's modalities (train.modalities): the
cells, the model's and the baselines' rows, all within its modalities."""

from __future__ import annotations

import pytest
import torch

from raysys.data import open_store
from raysys.evaluate import evaluate
from raysys.evaluate.overlap import EvaluationError
from raysys.models import build_model
from raysys.registry import save_model_dir
from raysys.registry.format import training_info

PAIR = ["t1", "t2"]


@pytest.fixture(scope="module")
def pair_model(tiny_store, tmp_path_factory):
    torch.manual_seed(0)
    module = build_model("mmhvae", "tiny", PAIR, image_size=64, posterior="full")
    return save_model_dir(tmp_path_factory.mktemp("pair") / "mhvae", "mmhvae", "tiny", PAIR,
                          {"image_size": 64, "posterior": "full"}, module.state_dict(), {"test": True},
                          training=training_info({"data": tiny_store, "fold": 0, "modalities": PAIR}))


def test_a_two_modality_model_is_scored_on_its_cells_with_baselines_on_the_same(tiny_store, pair_model, model_dirs, tmp_path):
    result = evaluate(str(pair_model), tiny_store, out=tmp_path / "pair", compare=[str(model_dirs["mmhvae"])],
                      max_slices_per_subject=3, temperature=0.0)
    rows = result.per_subject
    assert rows and all(set(r["inputs"].split("+")) <= set(PAIR) and r["target"] in PAIR for r in rows)
    cells = {m: {(r["inputs"], r["target"]) for r in rows if r["method"] == m} for m in {r["method"] for r in rows}}
    assert {"model", "model:2", "baseline:zeros", "baseline:mean", "baseline:copy"} <= set(cells)
    assert cells["baseline:mean"] == cells["model"] == cells["model:2"]  # every method on the same cells
    store = open_store(tiny_store)
    test = [store.subjects[i] for i in store.split_subjects("test", 0)]
    both = [s for s in test if all(store.available(s)[m] for m in PAIR)]
    assert both and ("t1+t2", "t2") in cells["model"] and ("t1", "t2") in cells["model"]
    assert result.summary["model_modalities"] == PAIR
    assert result.summary["n_cells"] + result.left_out == 3 * 2  # 3 input subsets x 2 targets
    assert set(result.summary["targets"]) <= set(PAIR)


def test_a_compare_model_must_have_the_models_modalities(tiny_store, pair_model, model_dirs, tmp_path):
    with pytest.raises(EvaluationError, match=r"lacks the modalities \['t1gd', 'flair'\]"):
        evaluate(str(model_dirs["mmhvae"]), tiny_store, out=tmp_path / "x", compare=[str(pair_model)], max_slices_per_subject=2)
