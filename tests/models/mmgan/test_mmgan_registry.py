"""MM-GAN through the registry format and the held-out evaluation: save_model_dir -> load ->
MMGANInference computes what the trained module computes; raysys.evaluate scores every input
subset x target it synthesises (and no harmonisation: its inputs come back as given)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from raysys.models import build_family
from raysys.registry import load, save_model_dir
from raysys.registry.inference import MMGANInference, synthesises_from_subsets

torch.set_num_threads(1)
MODALITIES = ("t1", "t1gd", "t2", "flair")


def saved_model(directory, training=None, seed: int = 0):
    torch.manual_seed(seed)
    overrides = {"data_range": (-5.0, 5.0), "lambda_l1": 0.8}
    fam = build_family("mmgan", "tiny", MODALITIES, overrides)
    module = fam.inference_module()
    for p in module.parameters():  # not the initial weights: a round trip must carry trained values
        p.data.add_(0.01 * torch.randn_like(p))
    save_model_dir(directory, "mmgan", "tiny", MODALITIES, overrides, module.state_dict(), {"test": True}, training=training)
    return module.eval()


def test_save_and_load_round_trip(tmp_path):
    module = saved_model(tmp_path / "model")
    meta = json.loads((tmp_path / "model" / "raysys_model.json").read_text())
    assert meta["family"] == "mmgan" and meta["model_config"]["lambda_l1"] == 0.8
    model = load(str(tmp_path / "model"))
    assert isinstance(model, MMGANInference) and model.modalities == MODALITIES and synthesises_from_subsets("mmgan")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 64, 64)).astype("float32")
    available = np.array([[1, 1, 0, 1], [0, 1, 0, 0]], dtype=bool)
    y = model.synthesise(x, available, temperature=0.7, seed=3)
    expected = module.synthesise(torch.from_numpy(x) * torch.from_numpy(available)[:, :, None, None], torch.from_numpy(available))
    np.testing.assert_allclose(y, expected.numpy(), atol=1e-6)
    np.testing.assert_array_equal(y[available], x[available])  # inputs come back as given
    assert np.array_equal(y, model.synthesise(x, available, temperature=0.0, seed=None))  # deterministic
    other = model.synthesise(rng.normal(size=(2, 4, 3, 48, 80)).astype("float32"), available)  # any size, K slices
    assert other.shape == (2, 4, 48, 80) and np.isfinite(other).all()


@pytest.mark.slow
def test_evaluation_scores_every_subset_and_target_it_synthesises(tiny_store, tmp_path):
    from raysys.data import open_store
    from raysys.evaluate import evaluate
    from raysys.evaluate.cells import family_cells

    store = open_store(tiny_store)
    training = {"store_id": store.store_id, "fold": 0, "data": store.url,
                "train_subjects": [store.subjects[i] for i in store.split_subjects("train", 0)],
                "val_subjects": [store.subjects[i] for i in store.split_subjects("val", 0)]}
    saved_model(tmp_path / "model", training)
    cells = family_cells("mmgan", MODALITIES)
    assert len(cells) == 4 * 3 + 6 * 2 + 4 * 1 and all(c.target not in c.inputs for c in cells)
    result = evaluate(str(tmp_path / "model"), tiny_store, out=tmp_path / "eval", max_slices_per_subject=4)
    rows = [r for r in result.per_subject if r["method"] == "model"]
    assert rows and all(r["target"] not in r["inputs"].split("+") for r in rows)
    assert any("+" in r["inputs"] for r in rows)  # multi-input subsets, as mmhvae
    assert result.summary["family"] == "mmgan" and result.summary["n_cells"] + result.left_out == len(cells)
    assert all("synthesis" in t and "self" not in t for t in result.summary["targets"].values())
    assert all(np.isfinite(r["psnr"]) and np.isfinite(r["ssim"]) for r in rows)
